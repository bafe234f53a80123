// The training loop in-process on a tiny model and a synthetic catalog: the frozen-feature cache gives
// the same per-step losses as recomputing the image side (also across an epoch's evaluation, with
// dropout in the Q-Former), the cache switches itself off when it would be wrong, the outputs (PEFT
// adapter from the Blip2 root, merged model) agree with each other, and bad inputs give errors that
// name the file or attribute.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "catalog/dataset.h"
#include "catalog/images.h"
#include "infer/batch.h"
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

TrainOptions base_options(const std::string& out) {
  TrainOptions o;
  o.model_dir = tiny_setup().model;
  o.data_dir = tiny_setup().data;
  o.out_dir = out;
  o.batch_size = 8;
  o.epochs = 2;
  o.max_steps = 4;
  o.lr = 1e-3;
  o.seed = 9;
  o.progress = false;
  o.lora.dropout = 0.2;
  return o;
}

int64_t line_count(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  int64_t n = 0;
  while (std::getline(f, line))
    if (!line.empty()) ++n;
  return n;
}

void expect_same_losses(const std::vector<double>& a, const std::vector<double>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6 * std::abs(b[i])) << "step " << i + 1;
}

}  // namespace

TEST(Trainer, CacheOnOffSameLossesLora) {
  // Enough steps to cross an epoch boundary (and its evaluation) with the dropout model.
  int64_t pairs = line_count(tiny_setup().data + "/train.jsonl");
  TrainOptions on = base_options(test::temp_dir("cache_on"));
  on.model_dir = tiny_setup().model_dropout;
  on.max_steps = (pairs + on.batch_size - 1) / on.batch_size + 2;
  on.cache = "on";
  TrainOptions off = on;
  off.out_dir = test::temp_dir("cache_off");
  off.cache = "off";
  TrainResult r_on = train_model(on), r_off = train_model(off);
  EXPECT_TRUE(r_on.cache_used);
  EXPECT_FALSE(r_off.cache_used);
  EXPECT_TRUE(r_on.evaluated);  // an epoch ended inside the run
  ASSERT_EQ(static_cast<int64_t>(r_on.step_losses.size()), on.max_steps);
  expect_same_losses(r_on.step_losses, r_off.step_losses);
  // The losses are not all the same number (the test would pass trivially then).
  EXPECT_NE(r_on.step_losses.front(), r_on.step_losses.back());
}

TEST(Trainer, CacheOnOffSameLossesFullWithFrozenImageSide) {
  TrainOptions on = base_options(test::temp_dir("full_cache_on"));
  on.full = true;
  on.freeze = {"vision", "qformer"};
  on.max_steps = 3;
  on.cache = "on";
  TrainOptions off = on;
  off.out_dir = test::temp_dir("full_cache_off");
  off.cache = "off";
  TrainResult r_on = train_model(on), r_off = train_model(off);
  EXPECT_TRUE(r_on.cache_used);
  expect_same_losses(r_on.step_losses, r_off.step_losses);
}

// --cuda-graph's fixed-shape step (run eagerly on the CPU, as it is captured on a GPU) trains like the
// default step: batches padded to batch_size rows and the data's longest prompt and answer give the
// same losses, across an epoch's short last batch and its evaluation (dropout off: its random draws
// would fall differently on the padded tensors).
TEST(Trainer, FixedShapeStepSameLossesAsDefault) {
  int64_t pairs = line_count(tiny_setup().data + "/train.jsonl");
  TrainOptions plain = base_options(test::temp_dir("step_plain"));
  plain.lora.dropout = 0;
  plain.batch_size = 7;  // leaves a short batch at the epoch's end
  plain.max_steps = (pairs + plain.batch_size - 1) / plain.batch_size + 2;
  ASSERT_NE(pairs % plain.batch_size, 0);
  TrainOptions fixed = plain;
  fixed.out_dir = test::temp_dir("step_fixed");
  fixed.cuda_graph = "on";
  TrainResult a = train_model(plain), b = train_model(fixed);
  ASSERT_EQ(a.step_losses.size(), b.step_losses.size());
  for (size_t i = 0; i < a.step_losses.size(); ++i)
    EXPECT_NEAR(b.step_losses[i], a.step_losses[i], 1e-5 * std::abs(a.step_losses[i])) << "step " << i + 1;
  EXPECT_NE(a.step_losses.front(), a.step_losses.back());
  EXPECT_TRUE(b.evaluated);
  EXPECT_NEAR(b.final_eval.accuracy, a.final_eval.accuracy, 1e-9);
  // The trained adapters agree too (to rounding: other GEMM shapes sum in another order, and Adam's
  // normalisation magnifies that in components whose gradients are near zero).
  Checkpoint ca = Checkpoint::open(plain.out_dir + "/checkpoint/trainable.safetensors");
  Checkpoint cb = Checkpoint::open(fixed.out_dir + "/checkpoint/trainable.safetensors");
  ASSERT_EQ(ca.names(), cb.names());
  for (const auto& name : ca.names())
    EXPECT_LT(test::rel_err(tensor_from_view(cb.get(name)), tensor_from_view(ca.get(name))), 1e-3) << name;
}

// The captured step with gradient accumulation and without the feature cache (the frozen image side
// computed for each batch before the step's fixed buffers are filled) trains like the eager step:
// the same per-step losses, across an epoch's short last step.
TEST(Trainer, CapturedStepWithAccumulationWithoutCacheSameLossesAsEager) {
  int64_t pairs = line_count(tiny_setup().data + "/train.jsonl");
  TrainOptions eager = base_options(test::temp_dir("acc_eager"));
  eager.lora.dropout = 0;
  eager.batch_size = 5;
  eager.grad_accum = 2;
  eager.cache = "off";
  eager.cuda_graph = "off";
  eager.eval_each_epoch = false;
  eager.max_steps = (pairs + 9) / 10 + 1;
  ASSERT_NE(pairs % 10, 0);  // a short last step
  TrainOptions captured = eager;
  captured.out_dir = test::temp_dir("acc_captured");
  captured.cuda_graph = "on";
  TrainResult a = train_model(eager), b = train_model(captured);
  EXPECT_FALSE(b.cache_used);
  EXPECT_NE(b.step_kind.find("fixed shapes"), std::string::npos) << b.step_kind;
  EXPECT_NE(a.step_kind.find("eager"), std::string::npos) << a.step_kind;
  ASSERT_EQ(a.step_losses.size(), b.step_losses.size());
  for (size_t i = 0; i < a.step_losses.size(); ++i)
    EXPECT_NEAR(b.step_losses[i], a.step_losses[i], 1e-5 * std::abs(a.step_losses[i])) << "step " << i + 1;
  EXPECT_NE(a.step_losses.front(), a.step_losses.back());
}

TEST(Trainer, CacheOffAutomaticallyWhenInvalid) {
  TrainOptions o = base_options(test::temp_dir("auto_cache"));
  o.max_steps = 1;
  o.epochs = 1;
  EXPECT_TRUE(train_model(o).cache_used);  // LoRA on T5 only: the image side is frozen
  TrainOptions aug = o;
  aug.augment = true;
  EXPECT_FALSE(train_model(aug).cache_used);
  TrainOptions full = o;
  full.full = true;
  EXPECT_FALSE(train_model(full).cache_used);
  TrainOptions full_frozen_vision = full;
  full_frozen_vision.freeze = {"vision"};  // the Q-Former still trains
  EXPECT_FALSE(train_model(full_frozen_vision).cache_used);
  TrainOptions full_frozen = full;
  full_frozen.freeze = {"vision", "qformer"};
  EXPECT_TRUE(train_model(full_frozen).cache_used);
  TrainOptions qformer_lora = o;
  qformer_lora.lora.targets = {"q", "v", "query"};  // adapters in the Q-Former: not frozen any more
  EXPECT_FALSE(train_model(qformer_lora).cache_used);
  // Asking for the cache where it would be wrong is an error, not a silent switch.
  TrainOptions bad = aug;
  bad.cache = "on";
  EXPECT_NE(test::train_error(bad).find("--cache on"), std::string::npos);
  bad = full;
  bad.cache = "on";
  EXPECT_NE(test::train_error(bad).find("--cache on"), std::string::npos);
}

TEST(Trainer, OutputsAdapterFromBlip2RootAndMergedModel) {
  TrainOptions o = base_options(test::temp_dir("outputs"));
  o.max_steps = 3;
  TrainResult r = train_model(o);
  // Trainable count: r*(in+out) over the T5 q and v linears, from the model's config.
  Blip2Config cfg = load_blip2_config(o.model_dir);
  int64_t per_module = o.lora.r * (cfg.text.d_model + cfg.text.num_heads * cfg.text.d_kv);
  EXPECT_EQ(r.trainable_parameters, per_module * (2 * cfg.text.num_layers + 4 * cfg.text.num_decoder_layers));

  std::string adapter = o.out_dir + "/adapter";
  Checkpoint ck = Checkpoint::open(adapter + "/adapter_model.safetensors");
  EXPECT_TRUE(ck.has("base_model.model.language_model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight"));
  for (const auto& n : ck.names()) EXPECT_EQ(n.rfind("base_model.model.language_model.", 0), 0u) << n;
  EXPECT_EQ(static_cast<int64_t>(ck.names().size()), 2 * (2 * cfg.text.num_layers + 4 * cfg.text.num_decoder_layers));

  // Base + adapter (unmerged) and the written merged model give the same logits.
  Blip2Bundle base = load_model_dir(o.model_dir, torch::kCPU, torch::kFloat);
  attach_lora(*base.model, o.lora);
  load_peft_adapter(adapter, *base.model);
  Blip2Bundle merged = load_model_dir(o.out_dir + "/model", torch::kCPU, torch::kFloat);
  base.model->eval();
  merged.model->eval();
  std::vector<VqaPair> pairs = read_pairs(o.data_dir + "/train.jsonl");
  ImageRGB img = load_image(pairs[0].image);
  torch::NoGradGuard ng;
  torch::Tensor px = pixel_batch({&img}, base.image_cfg);
  TokenBatch tb = prompt_batch(*base.tokenizer, {pairs[0].prompt}, base.cfg);
  torch::Tensor labels = label_batch(*base.tokenizer, {pairs[0].answer});
  torch::Tensor a = base.model->forward(px, tb.ids, tb.mask, labels);
  torch::Tensor b = merged.model->forward(px, tb.ids, tb.mask, labels);
  EXPECT_LE(test::rel_err(b, a), 1e-5);
  // Training moved the adapter: B is no longer zero.
  bool any_nonzero = false;
  for (auto& p : base.model->named_parameters(true))
    if (p.key().find("lora_B") != std::string::npos) any_nonzero = any_nonzero || p.value().abs().max().item<float>() > 0;
  EXPECT_TRUE(any_nonzero);

  // The log has one line per step with its loss, in order.
  std::ifstream log(o.out_dir + "/train_log.jsonl");
  std::string line;
  int64_t step = 0;
  while (std::getline(log, line)) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (!j.contains("loss")) continue;
    ++step;
    EXPECT_EQ(j["step"], step);
    EXPECT_NEAR(j["loss"].get<double>(), r.step_losses[step - 1], 1e-12);
  }
  EXPECT_EQ(step, 3);
}

// ---- bad inputs -----------------------------------------------------------------------------

namespace {

// A copy of the prepared data (pairs still point at the shared catalog's images).
std::string data_copy(const std::string& name) {
  std::string d = test::temp_dir(name);
  fs::remove_all(d);
  fs::copy(tiny_setup().data, d, fs::copy_options::recursive);
  return d;
}

void expect_error_mentions(const TrainOptions& o, const std::vector<std::string>& needles) {
  std::string msg = test::train_error(o);
  ASSERT_FALSE(msg.empty()) << "no error";
  for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "\"" << msg << "\" lacks \"" << n << "\"";
}

}  // namespace

TEST(TrainerErrors, EmptyDataset) {
  TrainOptions o = base_options(test::temp_dir("err_empty_out"));
  o.data_dir = data_copy("err_empty");
  write_file_atomic(o.data_dir + "/train.jsonl", "");
  expect_error_mentions(o, {o.data_dir + "/train.jsonl", "no training pairs"});
}

TEST(TrainerErrors, MissingTrainJsonl) {
  TrainOptions o = base_options(test::temp_dir("err_missing_out"));
  o.data_dir = data_copy("err_missing");
  fs::remove(o.data_dir + "/train.jsonl");
  expect_error_mentions(o, {o.data_dir + "/train.jsonl", "not found"});
}

TEST(TrainerErrors, UnknownAttribute) {
  TrainOptions o = base_options(test::temp_dir("err_attr_out"));
  o.attributes = {"Sleeve Length", "Foo"};
  expect_error_mentions(o, {"\"Foo\"", o.data_dir + "/train.jsonl"});
}

TEST(TrainerErrors, MalformedLine) {
  TrainOptions o = base_options(test::temp_dir("err_malformed_out"));
  o.data_dir = data_copy("err_malformed");
  std::string path = o.data_dir + "/train.jsonl";
  int64_t lines = line_count(path);
  std::ofstream(path, std::ios::app) << "{\"id\": \"1\", \"image\": \n";
  expect_error_mentions(o, {path + ":" + std::to_string(lines + 1), "invalid JSON"});
}

TEST(TrainerErrors, MissingImage) {
  // A catalog of its own, prepared, then one photo deleted.
  std::string root = test::temp_dir("err_image");
  fs::copy(tiny_setup().catalog, root + "/catalog", fs::copy_options::recursive);
  PrepareOptions po;
  po.catalog_dir = root + "/catalog";
  po.out_dir = root + "/data";
  po.threads = 1;
  po.progress = false;
  prepare_catalog(po);
  std::vector<VqaPair> pairs = read_pairs(root + "/data/train.jsonl");
  ASSERT_FALSE(pairs.empty());
  std::string victim = pairs.back().image;
  ASSERT_EQ(victim.rfind(root, 0), 0u) << victim;  // the copy's photo, not the shared one
  fs::remove(victim);
  TrainOptions o = base_options(root + "/out");
  o.data_dir = root + "/data";
  expect_error_mentions(o, {victim, root + "/data/train.jsonl", pairs.back().id});
}

TEST(TrainerErrors, BadOptions) {
  TrainOptions o = base_options(test::temp_dir("err_opts"));
  TrainOptions f = o;
  f.full = true;
  f.freeze = {"vision", "wheels"};
  expect_error_mentions(f, {"--freeze", "\"wheels\""});
  TrainOptions t = o;
  t.lora.targets = {"nonexistent"};
  expect_error_mentions(t, {"--lora-targets", "nonexistent"});
  TrainOptions opt = o;
  opt.optimizer = "sgd";
  expect_error_mentions(opt, {"--optimizer"});
  TrainOptions c = o;
  c.cache = "maybe";
  expect_error_mentions(c, {"--cache"});
  TrainOptions g = o;
  g.cuda_graph = "sometimes";
  expect_error_mentions(g, {"--cuda-graph", "auto, on or off"});
  g.cuda_graph = "on";
  g.full = true;  // the image side trains: its backward cannot run inside the captured step
  expect_error_mentions(g, {"--cuda-graph on", "frozen image side"});
  TrainOptions r = o;
  r.out_dir = test::temp_dir("err_no_ckpt");
  r.resume = true;
  expect_error_mentions(r, {"--resume", r.out_dir + "/checkpoint"});
}
