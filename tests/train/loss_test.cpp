// Loss masking: label positions padded with -100 take no part in the loss. lm_loss is compared with a
// cross-entropy summed by hand over the real tokens only, and a sample's loss does not change when
// the batch around it adds padding (to its prompt and to its labels).
#include <gtest/gtest.h>

#include <cmath>

#include "infer/batch.h"
#include "model/tokenizer.h"
#include "test_util.h"
#include "train_models.h"

using namespace tailor;
using tailor::test::small_config;
using torch::Tensor;

namespace {

Blip2ForConditionalGeneration make_model() {
  torch::manual_seed(11);
  Blip2ForConditionalGeneration m(small_config(), T5Untied{false, false, /*lm_head=*/true});
  torch::NoGradGuard ng;
  m->query_tokens.normal_(0, 0.5);
  m->eval();
  return m;
}

// Mean over the real (non -100) positions of -log p(label), from the logits, in float64.
double hand_loss(const Tensor& logits, const Tensor& labels) {
  Tensor lp = torch::log_softmax(logits.to(torch::kDouble), -1);
  double sum = 0;
  int64_t n = 0;
  for (int64_t b = 0; b < labels.size(0); ++b)
    for (int64_t t = 0; t < labels.size(1); ++t) {
      int64_t y = labels[b][t].item<int64_t>();
      if (y == -100) continue;
      sum -= lp[b][t][y].item<double>();
      ++n;
    }
  return sum / static_cast<double>(n);
}

}  // namespace

TEST(LossMasking, EqualsHandCrossEntropyOverRealTokens) {
  Blip2ForConditionalGeneration m = make_model();
  torch::NoGradGuard ng;
  Tensor px = torch::randn({3, 3, 32, 32});
  Tensor ids = torch::tensor({5, 6, 7, 1, 9, 1, 0, 0, 3, 4, 1, 0}, torch::kLong).view({3, 4});
  Tensor mask = (ids != 0).to(torch::kLong);
  Tensor labels = torch::tensor({11, 12, 13, 14, 1, 15, 1, -100, -100, -100, 16, 17, 1, -100, -100}, torch::kLong).view({3, 5});
  Tensor logits = m->forward(px, ids, mask, labels);
  double want = hand_loss(logits, labels);
  double got = lm_loss(logits, labels).item<double>();
  EXPECT_NEAR(got, want, 1e-6 * want);
  // Counting the padding (as pad id 0, as the original did) gives a different number: the test can tell.
  Tensor unmasked = labels.masked_fill(labels == -100, 0);
  EXPECT_GT(std::abs(hand_loss(logits, unmasked) - want), 1e-3);
}

TEST(LossMasking, PaddingInTheBatchDoesNotChangeASamplesLoss) {
  Blip2ForConditionalGeneration m = make_model();
  torch::NoGradGuard ng;
  Tensor px = torch::randn({2, 3, 32, 32});
  // Sample 0 alone: short prompt, short answer.
  Tensor ids0 = torch::tensor({5, 6, 1}, torch::kLong).view({1, 3});
  Tensor lab0 = torch::tensor({11, 1}, torch::kLong).view({1, 2});
  double alone = lm_loss(m->forward(px.narrow(0, 0, 1), ids0, torch::ones_like(ids0), lab0), lab0).item<double>();
  // The same sample beside a longer one: its prompt and labels are padded.
  Tensor ids = torch::tensor({5, 6, 1, 0, 0, 0, 7, 8, 9, 10, 12, 1}, torch::kLong).view({2, 6});
  Tensor mask = torch::tensor({1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1}, torch::kLong).view({2, 6});
  Tensor lab = torch::tensor({11, 1, -100, -100, -100, -100, 20, 21, 22, 23, 24, 1}, torch::kLong).view({2, 6});
  Tensor logits = m->forward(px, ids, mask, lab);
  double in_batch = lm_loss(logits.narrow(0, 0, 1), lab.narrow(0, 0, 1)).item<double>();
  EXPECT_NEAR(in_batch, alone, 1e-5 * alone);
  // The batch loss is the token-weighted mean of the two samples' losses (2 and 6 real tokens).
  double other = lm_loss(logits.narrow(0, 1, 1), lab.narrow(0, 1, 1)).item<double>();
  double batch = lm_loss(logits, lab).item<double>();
  EXPECT_NEAR(batch, (2 * in_batch + 6 * other) / 8, 1e-6 * batch);
}

TEST(LossMasking, LabelBatchPadsWithIgnoreIndex) {
  T5Tokenizer tok = T5Tokenizer::load(test::repo_root() + "/tests/fixtures/parity_tiny/spiece.model");
  std::vector<std::string> answers = {"Fit: Slim Fit", "baseColour: Navy Blue and some more words"};
  Tensor labels = label_batch(tok, answers);
  ASSERT_EQ(labels.size(0), 2);
  for (int64_t i = 0; i < 2; ++i) {
    std::vector<int64_t> want = tok.encode(answers[i], true);  // eos at the end
    ASSERT_EQ(want.back(), tok.eos_id());
    ASSERT_LE(static_cast<int64_t>(want.size()), labels.size(1));
    for (int64_t t = 0; t < labels.size(1); ++t) {
      int64_t expect = t < static_cast<int64_t>(want.size()) ? want[t] : -100;
      EXPECT_EQ(labels[i][t].item<int64_t>(), expect) << "row " << i << " position " << t;
    }
  }
}
