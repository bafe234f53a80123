// Parity with HF transformers 5.x: fixtures made by tools/parity/make_fixtures.py on the GPU machine
// (a tiny BLIP-2 of the Flan-T5 kind with fixed random weights, real catalog photos). Every stage is
// compared: pixels, vision tower, Q-Former, projection, T5 encoder, logits, loss, greedy and beam ids,
// and the tokenizer.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "catalog/images.h"
#include "infer/batch.h"
#include "infer/generate.h"
#include "model/model_dir.h"
#include "model/weights.h"
#include "test_util.h"
#include "util/fs.h"

using namespace tailor;
using torch::Tensor;

namespace {

std::string fixture_dir() { return test::repo_root() + "/tests/fixtures/parity_tiny"; }

struct Fixture {
  Blip2Bundle b;
  std::map<std::string, Tensor> ref;
  nlohmann::json info;
};

Fixture& fixture() {
  static Fixture* f = nullptr;
  if (!f) {
    f = new Fixture();
    f->b = load_model_dir(fixture_dir(), torch::kCPU, torch::kFloat);
    Checkpoint ck = Checkpoint::open(fixture_dir() + "/reference.safetensors");
    for (const auto& n : ck.names()) f->ref[n] = tensor_from_view(ck.get(n));
    f->info = nlohmann::json::parse(read_file(fixture_dir() + "/reference.json"));
  }
  return *f;
}

double rel_err(const Tensor& a, const Tensor& b) {
  return ((a.to(torch::kDouble) - b.to(torch::kDouble)).norm() / b.to(torch::kDouble).norm()).item<double>();
}

std::vector<ImageRGB> fixture_images() {
  std::vector<ImageRGB> imgs;
  for (const auto& id : fixture().info["ids"])
    imgs.push_back(load_image(test::fashion_catalog() + "/images/" + id.get<std::string>() + ".jpg"));
  // The two derived inputs, made exactly as make_fixtures.py makes them.
  ImageRGB crop;
  crop.width = 200;
  crop.height = 150;
  crop.pixels.resize(200 * 150 * 3);
  for (int y = 0; y < 150; ++y)
    for (int x = 0; x < 200; ++x)
      for (int c = 0; c < 3; ++c) crop.at(x, y)[c] = imgs[1].at(x + 10, y + 30)[c];
  ImageRGB big;
  big.width = imgs[3].width * 2;
  big.height = imgs[3].height * 2;
  big.pixels.resize(static_cast<size_t>(big.width) * big.height * 3);
  for (int y = 0; y < big.height; ++y)
    for (int x = 0; x < big.width; ++x)
      for (int c = 0; c < 3; ++c) big.at(x, y)[c] = imgs[3].at(x / 2, y / 2)[c];
  imgs.push_back(crop);
  imgs.push_back(big);
  return imgs;
}

}  // namespace

TEST(Parity, PixelValuesMatchHfImageProcessor) {
  auto& f = fixture();
  std::vector<ImageRGB> imgs = fixture_images();
  std::vector<const ImageRGB*> ptrs;
  for (auto& i : imgs) ptrs.push_back(&i);
  Tensor ours = pixel_batch(ptrs, f.b.image_cfg);
  Tensor ref = f.ref["pixel_values"];
  ASSERT_EQ(ours.sizes(), ref.sizes());
  // One uint8 step is 1/255/std ~ 0.015 after normalisation.
  double real = (ours.narrow(0, 0, 4) - ref.narrow(0, 0, 4)).abs().max().item<double>();
  double resized = (ours.narrow(0, 4, 2) - ref.narrow(0, 4, 2)).abs().max().item<double>();
  std::printf("max |pixel - HF|: real 224x224 photos %.6f, resized inputs %.6f\n", real, resized);
  EXPECT_LT(real, 1e-5) << "JPEG decoding or normalisation differs from HF on the real photos";
  EXPECT_LE(resized, 0.0153 * 1.01) << "bicubic resize differs from HF by more than one uint8 step";
}

TEST(Parity, VisionQformerProjectionMatchHf) {
  auto& f = fixture();
  torch::NoGradGuard ng;
  Tensor pv = f.ref["pixel_values"].narrow(0, 0, 4);
  Tensor vision = f.b.model->vision_model->forward(pv);
  EXPECT_LT(rel_err(vision, f.ref["vision_out"]), 1e-5);
  Tensor q = f.b.model->qformer_features(f.ref["vision_out"]);
  EXPECT_LT(rel_err(q, f.ref["qformer_out"]), 1e-5);
  Tensor feats = f.b.model->image_features(pv);
  EXPECT_LT(rel_err(feats, f.ref["image_features"]), 1e-5);
}

TEST(Parity, EncoderLogitsAndLossMatchHf) {
  auto& f = fixture();
  torch::NoGradGuard ng;
  Tensor pv = f.ref["pixel_values"].narrow(0, 0, 4);
  Tensor feats = f.b.model->image_features(pv);
  auto enc = f.b.model->encode(feats, f.ref["input_ids"], f.ref["attention_mask"]);
  EXPECT_LT(rel_err(enc.first, f.ref["encoder_out"]), 1e-5);
  Tensor logits = f.b.model->forward(pv, f.ref["input_ids"], f.ref["attention_mask"], f.ref["labels"]);
  double e = rel_err(logits, f.ref["logits"]);
  std::printf("logits relative error vs HF: %.3g\n", e);
  EXPECT_LT(e, 1e-4);
  double loss = lm_loss(logits, f.ref["labels"]).item<double>();
  EXPECT_NEAR(loss, f.ref["loss"].item<double>(), 1e-4 * std::abs(loss));
}

TEST(Parity, PromptBatchEqualsHfInputIds) {
  auto& f = fixture();
  std::vector<std::string> prompts;
  for (auto& q : f.info["questions"]) prompts.push_back("Question: " + q.get<std::string>() + " Answer: ");
  TokenBatch tb = prompt_batch(*f.b.tokenizer, prompts, f.b.cfg);
  EXPECT_TRUE(torch::equal(tb.ids, f.ref["input_ids"]));
  EXPECT_TRUE(torch::equal(tb.mask, f.ref["attention_mask"]));
  std::vector<std::string> answers;
  for (auto& a : f.info["answers"]) answers.push_back(a.get<std::string>());
  EXPECT_TRUE(torch::equal(label_batch(*f.b.tokenizer, answers), f.ref["labels"]));
}

static Tensor run_generate(Fixture& f, const GenerationOptions& o) {
  torch::NoGradGuard ng;
  Tensor feats = f.b.model->image_features(f.ref["pixel_values"].narrow(0, 0, 4));
  auto enc = f.b.model->encode(feats, f.ref["input_ids"], f.ref["attention_mask"]);
  return generate_tokens(f.b.model->language_model, enc.first, enc.second, o);
}

static void expect_same_ids(const Tensor& ours, const Tensor& hf_with_start) {
  Tensor hf = hf_with_start.narrow(1, 1, hf_with_start.size(1) - 1);  // HF keeps the start token
  ASSERT_EQ(ours.sizes(), hf.sizes()) << "ours " << ours << "\nHF " << hf;
  EXPECT_TRUE(torch::equal(ours, hf)) << "ours " << ours << "\nHF " << hf;
}

TEST(Parity, GreedyIdsMatchHf) {
  GenerationOptions o;
  o.max_new_tokens = 12;
  expect_same_ids(run_generate(fixture(), o), fixture().ref["greedy_ids"]);
}

TEST(Parity, BeamSearchIdsMatchHf) {
  GenerationOptions o;
  o.max_new_tokens = 12;
  o.num_beams = 3;
  expect_same_ids(run_generate(fixture(), o), fixture().ref["beam3_ids"]);
}

TEST(Parity, BeamSearchWithLengthPenaltyAndMinTokensMatchesHf) {
  GenerationOptions o;
  o.max_new_tokens = 10;
  o.num_beams = 4;
  o.length_penalty = 0.5f;
  o.min_new_tokens = 3;
  expect_same_ids(run_generate(fixture(), o), fixture().ref["beam4_lp05_min3_ids"]);
}

TEST(Parity, TokenizerMatchesHf) {
  auto& f = fixture();
  for (const auto& t : f.info["tokenizer"]) {
    std::string text = t["text"];
    std::vector<int64_t> want = t["ids"].get<std::vector<int64_t>>();
    EXPECT_EQ(f.b.tokenizer->encode(text), want) << "text: " << text;
    EXPECT_EQ(f.b.tokenizer->decode(want), t["decoded"].get<std::string>()) << "text: " << text;
  }
}

// Older checkpoints (no image_token_index) put the query embeddings before the prompt; the result
// must equal the newer form with the image tokens at the front.
TEST(Parity, PrependedQueryEmbeddingsEqualImageTokens) {
  auto& f = fixture();
  torch::NoGradGuard ng;
  Tensor pv = f.ref["pixel_values"].narrow(0, 0, 4);
  Tensor ids = f.ref["input_ids"], mask = f.ref["attention_mask"];
  int64_t Q = f.b.cfg.num_query_tokens;
  Tensor newer = f.b.model->forward(pv, ids, mask, f.ref["labels"]);
  int64_t saved = f.b.model->cfg.image_token_index;
  f.b.model->cfg.image_token_index = -1;
  Tensor older = f.b.model->forward(pv, ids.narrow(1, Q, ids.size(1) - Q), mask.narrow(1, Q, mask.size(1) - Q),
                                    f.ref["labels"]);
  f.b.model->cfg.image_token_index = saved;
  EXPECT_LT(rel_err(older, newer), 1e-6);
}
