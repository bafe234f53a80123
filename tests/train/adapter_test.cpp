// Merged vs unmerged LoRA give the same logits; the PEFT adapter round trip keeps every tensor, uses
// PEFT's key names from the Blip2ForConditionalGeneration root, and writes the adapter_config.json
// fields PEFT 0.21's LoraConfig reads.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/safetensors.h"
#include "model/weights.h"
#include "test_util.h"
#include "train/lora.h"
#include "train_models.h"
#include "util/error.h"
#include "util/fs.h"

using namespace tailor;
using tailor::test::rel_err;
using tailor::test::small_config;
using torch::Tensor;

namespace {

struct Inputs {
  Tensor pixels, ids, mask, labels;
};

Inputs make_inputs(const Blip2Config& c) {
  Inputs in;
  in.pixels = torch::randn({2, 3, c.vision.image_size, c.vision.image_size});
  in.ids = torch::tensor({5, 6, 7, 8, 1, 9, 10, 1, 0, 0}, torch::kLong).view({2, 5});
  in.mask = torch::tensor({1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, torch::kLong).view({2, 5});
  in.labels = torch::tensor({11, 12, 13, 1, 14, 1, -100, -100}, torch::kLong).view({2, 4});
  return in;
}

Blip2ForConditionalGeneration make_model(uint64_t seed) {
  torch::manual_seed(seed);
  Blip2ForConditionalGeneration m(small_config(), T5Untied{false, false, /*lm_head=*/true});
  torch::NoGradGuard ng;
  m->query_tokens.normal_(0, 0.5);  // zeros by construction: give the image side something to carry
  m->eval();
  return m;
}

void randomise_b(torch::nn::Module& m) {
  torch::NoGradGuard ng;
  for (auto& p : m.named_parameters(true))
    if (p.key().find(".lora_B.") != std::string::npos) p.value().normal_(0, 0.2);
}

std::map<std::string, Tensor> lora_tensors(torch::nn::Module& m) {
  std::map<std::string, Tensor> out;
  for (auto& p : m.named_parameters(true))
    if (p.key().find("lora_") != std::string::npos) out[p.key()] = p.value().detach().clone();
  return out;
}

}  // namespace

TEST(Adapter, MergedEqualsUnmerged) {
  Blip2ForConditionalGeneration m = make_model(3);
  torch::NoGradGuard ng;
  LoraOptions o;
  o.r = 4;
  o.alpha = 8;
  attach_lora(*m, o);
  Inputs in = make_inputs(m->cfg);
  Tensor plain = m->forward(in.pixels, in.ids, in.mask, in.labels);
  randomise_b(*m);
  Tensor unmerged = m->forward(in.pixels, in.ids, in.mask, in.labels);
  // The adapter must matter, or the comparison below proves nothing.
  ASSERT_GT(rel_err(unmerged, plain), 1e-2);
  merge_lora(*m);
  EXPECT_TRUE(lora_tensors(*m).empty());
  for (auto& item : m->named_modules())
    if (auto* lin = dynamic_cast<LinearImpl*>(item.value().get())) EXPECT_FALSE(lin->has_lora()) << item.key();
  Tensor merged = m->forward(in.pixels, in.ids, in.mask, in.labels);
  double err = rel_err(merged, unmerged);
  EXPECT_LE(err, 1e-5);
  std::printf("merged vs unmerged logits: relative error %.3g\n", err);
}

TEST(Adapter, PeftRoundTripAndNames) {
  std::string dir = test::temp_dir("adapter_roundtrip");
  Blip2ForConditionalGeneration m = make_model(4);
  LoraOptions o;
  o.r = 4;
  o.alpha = 32;
  o.dropout = 0.05;
  LoraSummary s = attach_lora(*m, o);
  randomise_b(*m);
  save_peft_adapter(dir, *m, o, "/models/base");

  // Key names: PEFT's, from the Blip2ForConditionalGeneration root.
  Checkpoint ck = Checkpoint::open(join_path(dir, "adapter_model.safetensors"));
  std::vector<std::string> expected;
  for (const auto& mod : s.modules)
    for (const char* ab : {".lora_A.weight", ".lora_B.weight"}) expected.push_back("base_model.model." + mod + ab);
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(ck.names(), expected);
  EXPECT_TRUE(ck.has("base_model.model.language_model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight"));
  EXPECT_TRUE(ck.has("base_model.model.language_model.decoder.block.1.layer.1.EncDecAttention.v.lora_B.weight"));
  const TensorView& a = ck.get("base_model.model.language_model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{4, m->cfg.text.d_model}));
  EXPECT_EQ(a.dtype, DType::F32);

  // adapter_config.json: the fields PEFT's LoraConfig needs to rebuild the same adapter.
  nlohmann::json cfg = nlohmann::json::parse(read_file(join_path(dir, "adapter_config.json")));
  EXPECT_EQ(cfg["peft_type"], "LORA");
  EXPECT_EQ(cfg["r"], 4);
  EXPECT_TRUE(cfg["lora_alpha"].is_number_integer());  // LoraConfig.lora_alpha: int
  EXPECT_EQ(cfg["lora_alpha"], 32);
  EXPECT_DOUBLE_EQ(cfg["lora_dropout"].get<double>(), 0.05);
  EXPECT_EQ(cfg["target_modules"], nlohmann::json({"q", "v"}));
  EXPECT_EQ(cfg["bias"], "none");
  EXPECT_EQ(cfg["base_model_name_or_path"], "/models/base");
  EXPECT_EQ(cfg["fan_in_fan_out"], false);
  EXPECT_EQ(cfg["use_rslora"], false);  // scaling alpha/r, not alpha/sqrt(r)
  EXPECT_EQ(cfg["use_dora"], false);
  EXPECT_TRUE(cfg["modules_to_save"].is_null());
  EXPECT_TRUE(cfg.contains("task_type"));
  EXPECT_TRUE(cfg["rank_pattern"].is_object() && cfg["rank_pattern"].empty());
  EXPECT_TRUE(cfg["alpha_pattern"].is_object() && cfg["alpha_pattern"].empty());

  // A fresh model with fresh adapters gets exactly the saved tensors and the same logits.
  Blip2ForConditionalGeneration m2 = make_model(4);
  attach_lora(*m2, o);
  load_peft_adapter(dir, *m2);
  auto t1 = lora_tensors(*m), t2 = lora_tensors(*m2);
  ASSERT_EQ(t1.size(), t2.size());
  for (const auto& kv : t1) EXPECT_TRUE(torch::equal(kv.second, t2.at(kv.first))) << kv.first;
  torch::NoGradGuard ng;
  Inputs in = make_inputs(m->cfg);
  EXPECT_TRUE(torch::equal(m->forward(in.pixels, in.ids, in.mask, in.labels),
                           m2->forward(in.pixels, in.ids, in.mask, in.labels)));
}

TEST(Adapter, LoadMismatchIsAnError) {
  std::string dir = test::temp_dir("adapter_mismatch");
  Blip2ForConditionalGeneration m = make_model(5);
  LoraOptions o;
  o.r = 4;
  attach_lora(*m, o);
  save_peft_adapter(dir, *m, o, "base");

  auto expect_error = [&](LoraOptions other, const std::string& needle) {
    Blip2ForConditionalGeneration m2 = make_model(5);
    attach_lora(*m2, other);
    try {
      load_peft_adapter(dir, *m2);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(dir), std::string::npos) << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
  };
  LoraOptions k = o;
  k.targets = {"q", "k"};  // the file has no k adapters
  expect_error(k, "SelfAttention.k.lora_A.weight");
  LoraOptions q = o;
  q.targets = {"q"};  // the file's v adapters would be left unused
  expect_error(q, "SelfAttention.v.lora_A.weight");
  LoraOptions r8 = o;
  r8.r = 8;
  expect_error(r8, "shape");
}
