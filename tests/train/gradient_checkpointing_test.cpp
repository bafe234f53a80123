// --gradient-checkpointing: T5's blocks run without keeping activations and again in backward,
// replaying their dropout masks. With dropout in T5 and in LoRA, the per-step losses and the trained
// adapters equal those of the same run without it (eager and fixed-shape steps, dense and NF4 base).
#include <gtest/gtest.h>

#include "model/safetensors.h"
#include "model/weights.h"
#include "test_util.h"
#include "train/trainer.h"
#include "train_data.h"
#include "train_models.h"

using namespace tailor;
using test::tiny_setup;

namespace {

void expect_same_run(const TrainOptions& plain, const std::string& what) {
  TrainOptions ckpt = plain;
  ckpt.out_dir = plain.out_dir + "_ckpt";
  ckpt.gradient_checkpointing = true;
  TrainResult a = train_model(plain), b = train_model(ckpt);
  ASSERT_EQ(a.step_losses.size(), b.step_losses.size()) << what;
  for (size_t i = 0; i < a.step_losses.size(); ++i)
    EXPECT_NEAR(b.step_losses[i], a.step_losses[i], 1e-6 * std::abs(a.step_losses[i])) << what << " step " << i + 1;
  EXPECT_NE(a.step_losses.front(), a.step_losses.back()) << what;
  Checkpoint ca = Checkpoint::open(plain.out_dir + "/checkpoint/trainable.safetensors");
  Checkpoint cb = Checkpoint::open(ckpt.out_dir + "/checkpoint/trainable.safetensors");
  ASSERT_EQ(ca.names(), cb.names());
  for (const auto& name : ca.names())
    EXPECT_LT(test::rel_err(tensor_from_view(cb.get(name)), tensor_from_view(ca.get(name))), 1e-4) << what << " " << name;
}

TrainOptions options(const std::string& out) {
  TrainOptions o;
  o.model_dir = tiny_setup().model_dropout;  // dropout 0.1 in T5
  o.data_dir = tiny_setup().data;
  o.out_dir = out;
  o.batch_size = 8;
  o.epochs = 2;
  o.max_steps = 5;
  o.lr = 3e-3;
  o.seed = 11;
  o.progress = false;
  o.eval_each_epoch = false;
  o.lora.dropout = 0.2;
  return o;
}

}  // namespace

TEST(GradientCheckpointing, SameLossesAndAdaptersWithDropout) {
  expect_same_run(options(test::temp_dir("gc_eager")), "eager, dense");
  TrainOptions fixed = options(test::temp_dir("gc_fixed"));
  fixed.cuda_graph = "on";  // the captured step's fixed shapes (eager on the CPU)
  fixed.quantize = "nf4";
  expect_same_run(fixed, "fixed-shape step, nf4");
}

TEST(GradientCheckpointing, RefusedWithFull) {
  TrainOptions o = options(test::temp_dir("gc_full"));
  o.full = true;
  o.gradient_checkpointing = true;
  std::string msg = test::train_error(o);
  EXPECT_NE(msg.find("--gradient-checkpointing is for LoRA"), std::string::npos) << msg;
}
