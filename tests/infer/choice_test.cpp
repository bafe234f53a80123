// Choice answering (infer/choice.h) on the HF parity fixture: the batched scorer equals each
// candidate's log-likelihood computed by hand, one candidate at a time, from the teacher-forced
// logits; padding and the other candidates don't change a score; the Answerer picks the likeliest
// candidate with its softmax probability, and mixes choice and free requests in one call.
#include <gtest/gtest.h>

#include "catalog/images.h"
#include "infer/batch.h"
#include "infer/blip2_answerer.h"
#include "infer/choice.h"
#include "model/model_dir.h"
#include "model/weights.h"
#include "parity_fixture.h"
#include "test_util.h"

using namespace tailor;
using torch::Tensor;

namespace {

using Fixture = test::ParityFixture;
Fixture& fixture() { return test::parity_fixture(); }

// Teacher forcing for one candidate: log_softmax of the model's logits at each answer token, summed.
double by_hand(Fixture& f, int64_t row, const std::string& answer) {
  torch::NoGradGuard ng;
  Tensor labels = label_batch(*f.b.tokenizer, {answer});
  Tensor logits = f.b.model->forward(f.ref["pixel_values"].narrow(0, row, 1), f.ref["input_ids"].narrow(0, row, 1),
                                     f.ref["attention_mask"].narrow(0, row, 1), labels);
  Tensor logp = torch::log_softmax(logits.to(torch::kDouble), -1)[0];
  double sum = 0;
  for (int64_t t = 0; t < labels.size(1); ++t) sum += logp[t][labels[0][t].item<int64_t>()].item<double>();
  return sum;
}

const std::vector<std::string> kCandidates = {"Sleeve Length: Short Sleeves", "Sleeve Length: Long Sleeves",
                                              "Pattern: Solid", "baseColour: Navy Blue", "Neck: Round Neck"};

}  // namespace

TEST(Choice, BatchedScoresEqualOneCandidateAtATimeByHand) {
  auto& f = fixture();
  // Two requests (photo + prompt rows 0 and 2 of the fixture), all candidates each, of different lengths.
  std::vector<int64_t> request_of;
  std::vector<std::string> texts;
  for (int64_t r : {0L, 1L}) {
    for (const auto& c : kCandidates) {
      request_of.push_back(r);
      texts.push_back(c);
    }
  }
  const int64_t rows[2] = {0, 2};
  torch::NoGradGuard ng;
  Tensor pv = torch::cat({f.ref["pixel_values"].narrow(0, 0, 1), f.ref["pixel_values"].narrow(0, 2, 1)});
  Tensor ids = torch::cat({f.ref["input_ids"].narrow(0, 0, 1), f.ref["input_ids"].narrow(0, 2, 1)});
  Tensor mask = torch::cat({f.ref["attention_mask"].narrow(0, 0, 1), f.ref["attention_mask"].narrow(0, 2, 1)});
  auto enc = f.b.model->encode(f.b.model->image_features(pv), ids, mask);
  Tensor batched = candidate_log_likelihoods(f.b.model->language_model, enc.first, enc.second,
                                             torch::tensor(request_of, torch::kLong), label_batch(*f.b.tokenizer, texts));
  ASSERT_EQ(batched.size(0), static_cast<int64_t>(texts.size()));
  for (size_t i = 0; i < texts.size(); ++i) {
    double want = by_hand(f, rows[request_of[i]], texts[i]);
    EXPECT_NEAR(batched[static_cast<int64_t>(i)].item<double>(), want, 1e-5 * std::max(1.0, std::abs(want))) << texts[i];
  }
  // A candidate scored alone (no padding, no other rows) gets the same score.
  Tensor alone = candidate_log_likelihoods(f.b.model->language_model, enc.first.narrow(0, 0, 1), enc.second.narrow(0, 0, 1),
                                           torch::tensor({0L}, torch::kLong), label_batch(*f.b.tokenizer, {texts[2]}));
  EXPECT_NEAR(alone[0].item<double>(), batched[2].item<double>(), 1e-5);
  // The scores tell the candidates apart (the test would pass trivially if they were all equal).
  EXPECT_GT((batched.max() - batched.min()).item<double>(), 0.1);
}

TEST(Choice, AnswererPicksTheLikeliestWithItsProbabilityAndMixesFreeRequests) {
  auto& f = fixture();
  auto answerer = make_blip2_answerer(f.b, torch::kCPU);
  // One photo (decoded once), a choice and a free request about it.
  auto image = std::make_shared<const ImageRGB>(load_image(test::fashion_catalog() + "/images/10003.jpg"));
  AnswerRequest choice{image, "Question: What is the sleeve length of the shirt in this picture? Answer: ", kCandidates, 1.0};
  AnswerRequest free_text{image, choice.prompt, {}, 1.0};
  GenerationOptions g;
  g.max_new_tokens = 8;
  std::vector<Answer> both = answerer->answer({choice, free_text}, g);
  std::vector<Answer> only_free = answerer->answer({free_text}, g);
  ASSERT_EQ(both.size(), 2u);
  ASSERT_EQ(both[0].log_likelihoods.size(), kCandidates.size());
  std::vector<double> p = choice_probabilities(both[0].log_likelihoods);
  size_t best = static_cast<size_t>(std::max_element(p.begin(), p.end()) - p.begin());
  EXPECT_EQ(both[0].text, kCandidates[best]);
  EXPECT_NEAR(both[0].confidence, p[best], 1e-12);
  double total = 0;
  for (double x : p) total += x;
  EXPECT_NEAR(total, 1.0, 1e-12);
  EXPECT_FALSE(both[1].has_confidence());
  EXPECT_EQ(both[1].text, only_free[0].text);
  // A temperature flattens the distribution without changing the choice.
  choice.temperature = 4.0;
  Answer warm = answerer->answer({choice}, g)[0];
  EXPECT_EQ(warm.text, both[0].text);
  EXPECT_LT(warm.confidence, both[0].confidence);
}
