// The --resume fingerprint (train/checkpoint.h) is derived from every option now; it must still equal
// the hand-kept list of the trainers before it, or their checkpoints would no longer resume.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "train/checkpoint.h"

using namespace tailor;
using json = nlohmann::json;

namespace {

// The fingerprint as train/trainer.cpp wrote it by hand before the options were derived.
json hand_kept_fingerprint(const TrainOptions& o, const std::string& train_jsonl_text) {
  return {{"full", o.full}, {"lora_r", o.lora.r}, {"lora_alpha", o.lora.alpha}, {"lora_targets", o.lora.targets},
          {"lora_dropout", o.lora.dropout}, {"optimizer", o.optimizer}, {"lr", o.lr}, {"batch_size", o.batch_size},
          {"grad_accum", o.grad_accum}, {"epochs", o.epochs}, {"max_steps", o.max_steps}, {"seed", o.seed},
          {"augment", o.augment}, {"attributes", o.attributes}, {"freeze", o.freeze},
          {"weight_decay", o.weight_decay}, {"warmup_ratio", o.warmup_ratio}, {"max_grad_norm", o.max_grad_norm},
          {"image_lr_scale", o.image_lr_scale}, {"adam_beta2", o.adam_beta2},
          {"pretrain", {{"epochs", o.pretrain.epochs}, {"lr", o.pretrain.lr}, {"weight_decay", o.pretrain.weight_decay},
                        {"batch_size", o.pretrain.batch_size}, {"augment", o.pretrain.augment}}},
          {"train_jsonl_fnv1a64", std::to_string(fnv1a64(train_jsonl_text))}};
}

}  // namespace

TEST(Checkpoint, FingerprintEqualsTheEarlierHandKeptOne) {
  TrainOptions o;
  EXPECT_EQ(run_fingerprint(o, "a\n"), hand_kept_fingerprint(o, "a\n"));
  o.full = true;
  o.freeze = {"vision", "qformer"};
  o.pretrain.epochs = 3;
  o.seed = 7;
  o.lr = 3e-4;
  o.image_lr_scale = 0.5;
  o.attributes = {"Pattern"};
  // Options that cannot change the weights stay out.
  o.model_dir = "/m";
  o.out_dir = "/o";
  o.cache = "off";
  o.device = "cuda";
  o.checkpoint_every = 5;
  o.progress = false;
  EXPECT_EQ(run_fingerprint(o, "b\n"), hand_kept_fingerprint(o, "b\n"));
  EXPECT_EQ(run_fingerprint(o, "b\n").dump(), hand_kept_fingerprint(o, "b\n").dump());  // pretrain/ metadata compares dumps
}

TEST(Checkpoint, EveryOptionThatShapesTheNumbersIsInIt) {
  TrainOptions a;
  const json base = run_fingerprint(a, "");
  auto differs = [&](auto change) {
    TrainOptions b;
    change(b);
    return run_fingerprint(b, "") != base;
  };
  EXPECT_TRUE(differs([](TrainOptions& o) { o.lora.r = 4; }));
  EXPECT_TRUE(differs([](TrainOptions& o) { o.quantize = "nf4"; }));
  EXPECT_FALSE(differs([](TrainOptions& o) { o.quantize = "none"; }));
  EXPECT_FALSE(differs([](TrainOptions& o) { o.gradient_checkpointing = true; }));
  EXPECT_TRUE(differs([](TrainOptions& o) { o.adam_beta2 = 0.99; }));
  EXPECT_TRUE(differs([](TrainOptions& o) { o.pretrain.augment = false; }));
  EXPECT_TRUE(differs([](TrainOptions& o) { o.max_steps = 3; }));
  EXPECT_FALSE(differs([](TrainOptions& o) { o.eval_each_epoch = false; }));
  EXPECT_FALSE(differs([](TrainOptions& o) { o.cuda_graph = "on"; }));
  EXPECT_NE(run_fingerprint(a, "x"), base);  // the pairs
}
