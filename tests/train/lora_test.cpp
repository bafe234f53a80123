// LoRA as PEFT does it: which modules `q,v` selects (names listed independently from the config),
// the trainable count r*(in+out) per module (also for the blip2-flan-t5-xl shape), A's Kaiming-uniform
// bound, B zeros, scaling alpha/r, dropout only on the adapter's input and only in training mode.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "model/blip2.h"
#include "model/presets.h"
#include "train/lora.h"
#include "util/error.h"
#include "train_models.h"

using namespace tailor;
using tailor::test::small_config;
using torch::Tensor;

namespace {

// The names PEFT's suffix match of {q, v} selects in a Blip2ForConditionalGeneration with a T5:
// written out from HF's module layout, not from the model object.
std::vector<std::string> expected_qv_names(const T5Config& t) {
  std::vector<std::string> names;
  for (int64_t i = 0; i < t.num_layers; ++i)
    for (const char* p : {"q", "v"})
      names.push_back("language_model.encoder.block." + std::to_string(i) + ".layer.0.SelfAttention." + p);
  for (int64_t i = 0; i < t.num_decoder_layers; ++i) {
    for (const char* p : {"q", "v"})
      names.push_back("language_model.decoder.block." + std::to_string(i) + ".layer.0.SelfAttention." + p);
    for (const char* p : {"q", "v"})
      names.push_back("language_model.decoder.block." + std::to_string(i) + ".layer.1.EncDecAttention." + p);
  }
  std::sort(names.begin(), names.end());
  return names;
}

int64_t expected_qv_count(const T5Config& t, int64_t r) {
  int64_t in = t.d_model, out = t.num_heads * t.d_kv;  // q and v: d_model -> heads * d_kv
  int64_t modules = 2 * t.num_layers + 4 * t.num_decoder_layers;
  return modules * r * (in + out);
}

std::set<std::string> linear_names(torch::nn::Module& m) {
  std::set<std::string> s;
  for (auto& item : m.named_modules())
    if (dynamic_cast<LinearImpl*>(item.value().get())) s.insert(item.key());
  return s;
}

}  // namespace

TEST(Lora, SuffixMatchSelectsOnlyT5QAndV) {
  torch::manual_seed(0);
  Blip2Config c = small_config();
  Blip2ForConditionalGeneration m(c, T5Untied{false, false, /*lm_head=*/true});
  // The negative cases must exist in the model for the check to mean anything.
  std::set<std::string> linears = linear_names(*m);
  EXPECT_TRUE(linears.count("vision_model.encoder.layers.0.self_attn.qkv"));
  EXPECT_TRUE(linears.count("qformer.encoder.layer.0.attention.attention.query"));
  EXPECT_TRUE(linears.count("qformer.encoder.layer.0.attention.attention.value"));
  EXPECT_TRUE(linears.count("language_model.encoder.block.0.layer.0.SelfAttention.k"));

  LoraOptions o;
  o.r = 4;
  o.alpha = 16;
  LoraSummary s = attach_lora(*m, o);
  std::vector<std::string> got = s.modules;
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, expected_qv_names(c.text));
  EXPECT_EQ(got.size(), static_cast<size_t>(2 * c.text.num_layers + 4 * c.text.num_decoder_layers));
  for (const auto& n : got) {
    EXPECT_EQ(n.find("qformer"), std::string::npos) << n;
    EXPECT_EQ(n.find("vision_model"), std::string::npos) << n;
  }
  EXPECT_EQ(s.trainable_parameters, expected_qv_count(c.text, o.r));

  // Count the adapter tensors in the module tree, independently of the summary.
  int64_t lora_params = 0;
  for (auto& p : m->named_parameters(true))
    if (p.key().find(".lora_A.") != std::string::npos || p.key().find(".lora_B.") != std::string::npos)
      lora_params += p.value().numel();
  EXPECT_EQ(lora_params, expected_qv_count(c.text, o.r));
}

TEST(Lora, SuffixRules) {
  std::vector<std::string> qv = {"q", "v"};
  EXPECT_TRUE(lora_target_matches("language_model.encoder.block.0.layer.0.SelfAttention.q", qv));
  EXPECT_TRUE(lora_target_matches("language_model.decoder.block.3.layer.1.EncDecAttention.v", qv));
  EXPECT_TRUE(lora_target_matches("q", qv));
  EXPECT_FALSE(lora_target_matches("qformer.encoder.layer.0.attention.attention.query", qv));
  EXPECT_FALSE(lora_target_matches("qformer.encoder.layer.0.attention.attention.value", qv));
  EXPECT_FALSE(lora_target_matches("vision_model.encoder.layers.0.self_attn.qkv", qv));
  EXPECT_FALSE(lora_target_matches("language_model.encoder.block.0.layer.0.SelfAttention.k", qv));
  EXPECT_FALSE(lora_target_matches("language_model.encoder.block.0.layer.0.SelfAttentionq", qv));
  // A longer suffix (a dotted path) matches on a dot boundary only, as PEFT.
  EXPECT_TRUE(lora_target_matches("language_model.decoder.block.0.layer.1.EncDecAttention.q", {"EncDecAttention.q"}));
  EXPECT_FALSE(lora_target_matches("language_model.decoder.block.0.layer.1.XEncDecAttention.q", {"EncDecAttention.q"}));
}

TEST(Lora, UnknownTargetIsAnError) {
  Blip2ForConditionalGeneration m(small_config(), T5Untied{false, false, /*lm_head=*/true});
  LoraOptions o;
  o.targets = {"nonexistent_proj"};
  try {
    attach_lora(*m, o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nonexistent_proj"), std::string::npos) << e.what();
  }
}

// The real checkpoint's structure (39 ViT layers, 12 Q-Former layers, 24+24 T5 blocks) at tiny widths:
// the selection is structural; the count at the real widths follows from the formula.
TEST(Lora, FlanT5XlShape) {
  Blip2Config xl = preset_config("blip2-flan-t5-xl", 32100);
  EXPECT_EQ(xl.text.num_layers, 24);
  EXPECT_EQ(xl.text.num_decoder_layers, 24);
  int64_t modules = 2 * xl.text.num_layers + 4 * xl.text.num_decoder_layers;
  EXPECT_EQ(modules, 144);
  EXPECT_EQ(expected_qv_count(xl.text, 8), 4718592);
  EXPECT_EQ(expected_qv_count(xl.text, 8), 144 * 8 * (2048 + 2048));

  Blip2Config c = xl;
  c.vision.hidden_size = 16;
  c.vision.intermediate_size = 16;
  c.vision.num_attention_heads = 2;
  c.vision.image_size = 28;
  c.qformer.hidden_size = 16;
  c.qformer.intermediate_size = 16;
  c.qformer.num_attention_heads = 2;
  c.qformer.encoder_hidden_size = 16;
  c.num_query_tokens = 2;
  c.text.vocab_size = 16;
  c.text.d_model = 16;
  c.text.d_kv = 4;
  c.text.num_heads = 2;
  c.text.d_ff = 8;
  Blip2ForConditionalGeneration m(c, T5Untied{false, false, /*lm_head=*/true});
  LoraOptions o;  // defaults: r 8, alpha 32, dropout 0.05, q,v
  LoraSummary s = attach_lora(*m, o);
  std::vector<std::string> got = s.modules;
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got.size(), 144u);
  EXPECT_EQ(got, expected_qv_names(c.text));
  EXPECT_EQ(s.trainable_parameters, expected_qv_count(c.text, 8));
}

TEST(Lora, InitScalingAndDropout) {
  torch::manual_seed(1);
  const int64_t in = 256, out = 96, r = 16;
  Linear lin(in, out, true);
  Tensor w0 = lin->weight.detach().clone();
  lin->attach_lora(r, 32, 0.5);
  EXPECT_DOUBLE_EQ(lin->lora_scaling, 32.0 / 16.0);
  ASSERT_EQ(lin->lora_A->weight.sizes(), (std::vector<int64_t>{r, in}));
  ASSERT_EQ(lin->lora_B->weight.sizes(), (std::vector<int64_t>{out, r}));
  EXPECT_EQ(lin->lora_B->weight.abs().max().item<float>(), 0.0f);
  // Kaiming-uniform with a = sqrt(5): gain sqrt(2 / (1 + 5)), bound gain * sqrt(3 / fan_in) = 1/sqrt(fan_in).
  double bound = std::sqrt(2.0 / 6.0) * std::sqrt(3.0 / in);
  EXPECT_NEAR(bound, 1.0 / std::sqrt(in), 1e-12);
  Tensor A = lin->lora_A->weight.detach().to(torch::kDouble);
  EXPECT_LE(A.abs().max().item<double>(), bound);
  EXPECT_GE(A.abs().max().item<double>(), 0.99 * bound);  // 4096 draws: the maximum comes close
  EXPECT_NEAR(A.mean().item<double>(), 0.0, 0.05 * bound);
  EXPECT_NEAR(A.var().item<double>(), bound * bound / 3.0, 0.1 * bound * bound / 3.0);  // uniform variance
  // The base weight is untouched.
  EXPECT_TRUE(torch::equal(lin->weight, w0));

  // Give B values, then compare each mode with the formula computed by hand.
  {
    torch::NoGradGuard ng;
    lin->lora_B->weight.normal_(0, 0.1);
  }
  Tensor x = torch::randn({5, in});
  Tensor base = torch::matmul(x, lin->weight.t()) + lin->bias;
  Tensor delta_full = torch::matmul(torch::matmul(x, lin->lora_A->weight.t()), lin->lora_B->weight.t()) * 2.0;

  lin->eval();
  torch::NoGradGuard ng;
  Tensor y_eval = lin->forward(x);
  EXPECT_TRUE(torch::allclose(y_eval, base + delta_full, 1e-5, 1e-5));

  lin->train();
  torch::manual_seed(42);
  Tensor y_train = lin->forward(x);
  torch::manual_seed(42);
  Tensor xd = torch::dropout(x, 0.5, true);  // the same mask: the adapter input is the only random draw
  ASSERT_FALSE(torch::equal(xd, x));
  Tensor delta_drop = torch::matmul(torch::matmul(xd, lin->lora_A->weight.t()), lin->lora_B->weight.t()) * 2.0;
  EXPECT_TRUE(torch::allclose(y_train, base + delta_drop, 1e-5, 1e-5));
  EXPECT_FALSE(torch::allclose(y_train, y_eval, 1e-3, 1e-3));
  // The base path never sees dropout: with B = 0 training mode gives exactly the base output.
  lin->lora_B->weight.zero_();
  Tensor y_b0 = lin->forward(x);
  EXPECT_TRUE(torch::allclose(y_b0, base, 1e-6, 1e-6));
}
