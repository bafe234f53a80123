// StaticGreedyGenerator (infer/static_generate.h) run eagerly on the CPU, the same functions that
// are captured as CUDA graphs on a GPU: its ids equal HF's greedy ids from the parity fixture, and
// generate_tokens()'s for what the fixture lacks (shared photos, a batch and prompt lengths off the
// buckets, min_new_tokens, one new token, older checkpoints without <image> tokens).
#include <gtest/gtest.h>

#include "catalog/images.h"
#include "infer/batch.h"
#include "infer/blip2_answerer.h"
#include "infer/generate.h"
#include "infer/static_generate.h"
#include "model/model_dir.h"
#include "model/weights.h"
#include "parity_fixture.h"
#include "test_util.h"
#include "util/error.h"

using namespace tailor;
using torch::Tensor;

namespace {

using Fixture = test::ParityFixture;
Fixture& fixture() { return test::parity_fixture(); }

// generate_tokens() on the same inputs: image side per row, encoder, eager greedy.
Tensor eager_ids(Fixture& f, const Tensor& pixels, const std::vector<int64_t>& row_image, const Tensor& ids,
                 const Tensor& mask, const GenerationOptions& o) {
  torch::NoGradGuard ng;
  Tensor feats = f.b.model->image_features(pixels).index_select(0, torch::tensor(row_image, torch::kLong));
  auto enc = f.b.model->encode(feats, ids, mask);
  return generate_tokens(f.b.model->language_model, enc.first, enc.second, o);
}

std::vector<std::string> questions() {
  return {"What is the sleeve length of the shirt in this picture?", "What is the colour?",
          "Describe the pattern of the shirt in this picture, please, in a few words?"};
}

}  // namespace

TEST(StaticGreedy, IdsEqualHfGreedy) {
  auto& f = fixture();
  StaticGreedyGenerator gen(f.b.model, /*use_graphs=*/false);
  GenerationOptions o;
  o.max_new_tokens = 12;  // as make_fixtures.py
  Tensor ours = gen.generate(f.ref["pixel_values"].narrow(0, 0, 4), {0, 1, 2, 3}, f.ref["input_ids"],
                             f.ref["attention_mask"], o);
  Tensor hf = f.ref["greedy_ids"];
  hf = hf.narrow(1, 1, hf.size(1) - 1);  // HF keeps the start token
  ASSERT_EQ(ours.sizes(), hf.sizes()) << ours << "\n" << hf;
  EXPECT_TRUE(torch::equal(ours, hf)) << ours << "\n" << hf;
  EXPECT_EQ(gen.graphs_captured(), 0u);
}

TEST(StaticGreedy, SharedPhotosOddBatchAndPromptLengthsEqualEagerGreedy) {
  auto& f = fixture();
  StaticGreedyGenerator gen(f.b.model, false);
  std::vector<std::string> prompts;
  for (const auto& q : questions()) prompts.push_back("Question: " + q + " Answer: ");
  prompts.push_back(prompts[0]);
  prompts.push_back(prompts[2]);
  TokenBatch tb = prompt_batch(*f.b.tokenizer, prompts, f.b.cfg);  // 5 rows (bucket 8), ragged lengths
  ASSERT_NE(tb.ids.size(1) % 8, 0);
  std::vector<int64_t> rows = {2, 0, 2, 1, 0};  // three photos, two asked twice
  Tensor pixels = f.ref["pixel_values"].narrow(0, 0, 3);
  for (int max_new : {1, 7}) {
    for (int min_new : {0, 5}) {
      GenerationOptions o;
      o.max_new_tokens = max_new;
      o.min_new_tokens = min_new;
      Tensor want = eager_ids(f, pixels, rows, tb.ids, tb.mask, o);
      Tensor got = gen.generate(pixels, rows, tb.ids, tb.mask, o);
      ASSERT_EQ(got.sizes(), want.sizes()) << "max " << max_new << " min " << min_new;
      EXPECT_TRUE(torch::equal(got, want)) << "max " << max_new << " min " << min_new << "\n" << got << "\n" << want;
    }
  }
  // A smaller batch after a larger one (another bucket), and the same one again (reused stage).
  GenerationOptions o;
  o.max_new_tokens = 9;
  for (int rep = 0; rep < 2; ++rep) {
    Tensor got = gen.generate(pixels.narrow(0, 1, 1), {0}, tb.ids.narrow(0, 3, 1), tb.mask.narrow(0, 3, 1), o);
    Tensor want = eager_ids(f, pixels.narrow(0, 1, 1), {0}, tb.ids.narrow(0, 3, 1), tb.mask.narrow(0, 3, 1), o);
    EXPECT_TRUE(torch::equal(got, want)) << got << "\n" << want;
  }
}

TEST(StaticGreedy, OlderCheckpointsWithoutImageTokens) {
  auto& f = fixture();
  int64_t saved = f.b.model->cfg.image_token_index;
  f.b.model->cfg.image_token_index = -1;
  Blip2Config cfg = f.b.cfg;
  cfg.image_token_index = -1;
  TokenBatch tb = prompt_batch(*f.b.tokenizer, {"Question: " + questions()[0] + " Answer: ", "Question: hi? Answer: "}, cfg);
  GenerationOptions o;
  o.max_new_tokens = 6;
  Tensor pixels = f.ref["pixel_values"].narrow(0, 0, 2);
  Tensor want = eager_ids(f, pixels, {1, 0}, tb.ids, tb.mask, o);
  StaticGreedyGenerator gen(f.b.model, false);
  Tensor got = gen.generate(pixels, {1, 0}, tb.ids, tb.mask, o);
  f.b.model->cfg.image_token_index = saved;
  EXPECT_TRUE(torch::equal(got, want)) << got << "\n" << want;
}

TEST(StaticGreedy, BadInputsAreNamed) {
  auto& f = fixture();
  StaticGreedyGenerator gen(f.b.model, false);
  TokenBatch tb = prompt_batch(*f.b.tokenizer, {"Question: x? Answer: "}, f.b.cfg);
  GenerationOptions o;
  Tensor pixels = f.ref["pixel_values"].narrow(0, 0, 1);
  try {
    gen.generate(pixels, {3}, tb.ids, tb.mask, o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("photo index 3 out of range"), std::string::npos) << e.what();
  }
  Tensor no_image = tb.ids.clone();
  no_image[0][0] = 5;  // one <image> token short
  try {
    gen.generate(pixels, {0}, no_image, tb.mask, o);
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string want = "holds " + std::to_string(f.b.cfg.num_query_tokens - 1) + " <image> tokens";
    EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
  }
  o.num_beams = 2;
  EXPECT_FALSE(StaticGreedyGenerator::supports(o));
  EXPECT_THROW(gen.generate(pixels, {0}, tb.ids, tb.mask, o), Error);
}

// The answerer behind ask/eval/serve with the static path (as on a GPU, here without graphs) gives
// the eager answerer's texts for a batch where photos are shared between questions.
TEST(StaticGreedy, AnswererTextsEqualTheEagerAnswerer) {
  auto& f = fixture();
  std::vector<std::shared_ptr<const ImageRGB>> photos;
  for (const char* id : {"10003", "10005", "10006"})
    photos.push_back(std::make_shared<ImageRGB>(load_image(test::fashion_catalog() + "/images/" + id + ".jpg")));
  std::vector<AnswerRequest> reqs;
  for (int i = 0; i < 5; ++i) reqs.push_back({photos[(i * 2) % 3], "Question: " + questions()[i % 3] + " Answer: "});
  GenerationOptions o;
  o.max_new_tokens = 8;
  auto eager = make_blip2_answerer(f.b, torch::kCPU, /*static_greedy=*/false);
  auto fast = make_blip2_answerer(f.b, torch::kCPU, /*static_greedy=*/true);
  std::vector<std::string> want = answer_texts(eager->answer(reqs, o)), got = answer_texts(fast->answer(reqs, o));
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got, want);
  size_t with_text = 0;
  for (const auto& t : got) with_text += !t.empty();
  EXPECT_GT(with_text, 0u);  // the comparison is not between empty answers
  o.num_beams = 2;  // beam search takes the eager path in both
  EXPECT_EQ(answer_texts(fast->answer(reqs, o)), answer_texts(eager->answer(reqs, o)));
}

// Every max_new_tokens is a shape of its own: the kept stages stay bounded, and answers stay right
// after the older ones are dropped.
TEST(StaticGreedy, StagesStayBounded) {
  auto& f = fixture();
  StaticGreedyGenerator gen(f.b.model, false);
  TokenBatch tb = prompt_batch(*f.b.tokenizer, {"Question: " + questions()[1] + " Answer: "}, f.b.cfg);
  Tensor pixels = f.ref["pixel_values"].narrow(0, 2, 1);
  const int last = int(StaticGreedyGenerator::kMaxTextStages) + 3;
  Tensor got;
  for (int n = 1; n <= last; ++n) {
    GenerationOptions o;
    o.max_new_tokens = n;
    o.min_new_tokens = n;  // every step runs
    got = gen.generate(pixels, {0}, tb.ids, tb.mask, o);
    EXPECT_LE(gen.text_stages(), StaticGreedyGenerator::kMaxTextStages);
  }
  GenerationOptions o;
  o.max_new_tokens = last;
  o.min_new_tokens = last;
  EXPECT_TRUE(torch::equal(got, eager_ids(f, pixels, {0}, tb.ids, tb.mask, o)));
  EXPECT_EQ(got.size(1), last);
}

TEST(StaticGreedy, BucketPow2) {
  EXPECT_EQ(bucket_pow2(1), 1);
  EXPECT_EQ(bucket_pow2(3), 4);
  EXPECT_EQ(bucket_pow2(8), 8);
  EXPECT_EQ(bucket_pow2(65), 128);
}
