// LoRA on a quantized base (--quantize int8|nf4): the adapters train (the loss falls, the captured
// step's fixed shapes give the eager step's losses), the merged model is the ORIGINAL weights plus the
// adapter (as PEFT merges into a base loaded unquantized), and what can't be done is refused.
#include <gtest/gtest.h>

#include <filesystem>

#include "model/model_dir.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "test_util.h"
#include "train/lora.h"
#include "train/trainer.h"
#include "train_data.h"
#include "train_models.h"
#include "util/error.h"
#include "util/fs.h"

using namespace tailor;
using test::tiny_setup;
namespace fs = std::filesystem;

namespace {

TrainOptions quantized_options(const std::string& out, const std::string& format) {
  TrainOptions o;
  o.model_dir = tiny_setup().model;
  o.data_dir = tiny_setup().data;
  o.out_dir = out;
  o.batch_size = 8;
  o.epochs = 20;
  o.max_steps = 24;
  o.lr = 1e-2;
  o.seed = 4;
  o.progress = false;
  o.lora.dropout = 0;
  o.eval_each_epoch = false;
  o.quantize = format;
  return o;
}

double mean(const std::vector<double>& v, size_t from, size_t to) {
  double s = 0;
  for (size_t i = from; i < to; ++i) s += v[i];
  return s / static_cast<double>(to - from);
}

}  // namespace

TEST(QuantizedTraining, LoraTrainsAndMergesIntoTheOriginalWeights) {
  for (const char* format : {"int8", "nf4"}) {
    TrainOptions o = quantized_options(test::temp_dir(std::string("qtrain_") + format), format);
    TrainResult r = train_model(o);
    ASSERT_EQ(r.step_losses.size(), 24u);
    // It learns (measured: 5.56 over the first 6 steps, 4.91 over the last 6), and as the same
    // adapters on the unquantized base do (4.91 there too).
    TrainOptions dense = o;
    dense.out_dir = test::temp_dir(std::string("qtrain_dense_") + format);
    dense.quantize = "none";
    TrainResult d = train_model(dense);
    const double first = mean(r.step_losses, 0, 6), last = mean(r.step_losses, 18, 24);
    EXPECT_LT(last, first - 0.3) << format;
    EXPECT_NEAR(last, mean(d.step_losses, 18, 24), 0.02 * last) << format;

    // The written model is dense and equals base (original f32 weights) + adapter merged, computed
    // here independently of the trainer: load, attach, read the PEFT adapter, merge.
    Blip2Bundle expect = load_model_dir(o.model_dir, torch::kCPU, torch::kFloat, "none");
    attach_lora(*expect.model, o.lora);
    load_peft_adapter(o.out_dir + "/adapter", *expect.model);
    merge_lora(*expect.model);
    Blip2Bundle written = load_model_dir(o.out_dir + "/model", torch::kCPU, torch::kFloat);
    EXPECT_TRUE(written.cfg.weight_format.empty()) << format;
    std::map<std::string, torch::Tensor> want;
    for (auto& p : expect.model->named_parameters(true)) want[p.key()] = p.value();
    int64_t compared = 0, changed = 0;
    Blip2Bundle base = load_model_dir(o.model_dir, torch::kCPU, torch::kFloat, "none");
    std::map<std::string, torch::Tensor> original;
    for (auto& p : base.model->named_parameters(true)) original[p.key()] = p.value();
    for (auto& p : written.model->named_parameters(true)) {
      ASSERT_TRUE(want.count(p.key())) << p.key();
      EXPECT_TRUE(torch::equal(p.value(), want.at(p.key()))) << format << " " << p.key();
      changed += !torch::equal(p.value(), original.at(p.key()));
      ++compared;
    }
    EXPECT_EQ(compared, static_cast<int64_t>(want.size()));
    // Only the adapted weights moved: T5's q and v in every attention (self and cross).
    Blip2Config cfg = load_blip2_config(o.model_dir);
    EXPECT_EQ(changed, 2 * cfg.text.num_layers + 4 * cfg.text.num_decoder_layers) << format;
  }
}

// The fixed-shape step (what a GPU captures; eager on the CPU) trains the quantized base like the
// default step: the custom matmul's backward is the same in both.
TEST(QuantizedTraining, FixedShapeStepSameLossesAsDefault) {
  TrainOptions plain = quantized_options(test::temp_dir("qstep_plain"), "nf4");
  plain.max_steps = 6;
  plain.batch_size = 7;
  TrainOptions fixed = plain;
  fixed.out_dir = test::temp_dir("qstep_fixed");
  fixed.cuda_graph = "on";
  TrainResult a = train_model(plain), b = train_model(fixed);
  ASSERT_EQ(a.step_losses.size(), b.step_losses.size());
  for (size_t i = 0; i < a.step_losses.size(); ++i)
    EXPECT_NEAR(b.step_losses[i], a.step_losses[i], 1e-5 * std::abs(a.step_losses[i])) << "step " << i + 1;
}

TEST(QuantizedTraining, WhatCannotTrainIsRefused) {
  TrainOptions full = quantized_options(test::temp_dir("qfull"), "nf4");
  full.full = true;
  std::string msg = test::train_error(full);
  EXPECT_NE(msg.find("--quantize nf4 needs LoRA"), std::string::npos) << msg;

  // A directory saved quantized has no original weights to merge into.
  std::string saved = test::temp_dir("qsaved");
  fs::remove_all(saved);
  test::CmdResult q = test::run_cmd(test::tailor_bin() + " quantize --model " + tiny_setup().model + " --out " + saved + " 2>&1");
  ASSERT_EQ(q.status, 0) << q.output;
  TrainOptions on_saved = quantized_options(test::temp_dir("qon_saved"), "auto");
  on_saved.model_dir = saved;
  msg = test::train_error(on_saved);
  EXPECT_NE(msg.find("was saved quantized (nf4)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("original checkpoint"), std::string::npos) << msg;
}
