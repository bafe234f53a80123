// Image-side pre-training (train/pretrain.h): it trains the vision tower, Q-Former and query tokens
// only, learns a visible attribute (colour) well above its majority baseline on held-out synthetic
// photos, and a run resumed from its saved result (a kill before the first checkpoint) ends exactly
// as an uninterrupted run; bad combinations give clear errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "core/attributes.h"
#include "catalog/dataset.h"
#include "catalog/prepare.h"
#include "catalog/synth.h"
#include "model/model_dir.h"
#include "model/presets.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "test_util.h"
#include "train/pretrain.h"
#include "train/trainer.h"
#include "train_data.h"
#include "util/error.h"
#include "util/fs.h"

using namespace tailor;
namespace fs = std::filesystem;

namespace {

std::map<std::string, torch::Tensor> snapshot(Blip2ForConditionalGeneration& m) {
  std::map<std::string, torch::Tensor> s;
  for (auto& item : m->named_parameters(true)) s[item.key()] = item.value().detach().clone();
  return s;
}

TrainOptions pretrain_run(const std::string& out) {
  TrainOptions o;
  o.model_dir = test::tiny_setup().model;
  o.data_dir = test::tiny_setup().data;
  o.out_dir = out;
  o.full = true;
  o.freeze = {"vision", "qformer"};
  o.pretrain.epochs = 2;
  o.pretrain.batch_size = 4;
  o.batch_size = 8;
  o.epochs = 2;
  o.max_steps = 5;
  o.lr = 1e-3;
  o.seed = 4;
  o.progress = false;
  return o;
}

}  // namespace

TEST(Pretrain, TrainsTheImageSideOnlyAndLearnsColour) {
  Progress::quiet = true;
  std::string root = test::temp_dir("pretrain_learn");
  SynthOptions so;
  so.products = 150;
  so.out_dir = root + "/catalog";
  so.seed = 7;
  so.progress = false;
  synth_catalog(so);
  PrepareOptions po;
  po.catalog_dir = so.out_dir;
  po.out_dir = root + "/data";
  po.val_fraction = 0.2;
  po.attributes = select_attributes(default_attributes(), {"baseColour", "Sleeve Length"});
  po.progress = false;
  prepare_catalog(po);
  InitOptions io;
  io.preset = "tiny";
  io.init = "fan-in";
  io.out_dir = root + "/model";
  io.seed = 2;
  init_model_dir(io);

  Blip2Bundle b = load_model_dir(io.out_dir, torch::kCPU, torch::kFloat);
  for (auto& p : b.model->parameters()) p.set_requires_grad(false);
  std::vector<VqaPair> train = read_pairs(po.out_dir + "/train.jsonl"), val = read_pairs(po.out_dir + "/val.jsonl");
  std::map<std::string, std::shared_ptr<const ImageRGB>> images;
  for (const auto& p : train)
    if (!images.count(p.image)) images[p.image] = std::make_shared<const ImageRGB>(load_image(p.image));
  auto before = snapshot(b.model);
  PretrainOptions o;
  o.epochs = 8;
  o.batch_size = 8;
  o.progress = false;
  int calls = 0;
  auto epochs = pretrain_image_side(b.model, b.image_cfg, train, val, images, o, torch::kCPU,
                                    [&](const PretrainEpoch&) { ++calls; });
  ASSERT_EQ(epochs.size(), 8u);
  EXPECT_EQ(calls, 8);
  EXPECT_LT(epochs.back().loss, epochs.front().loss);

  // Only the image side moved; every flag is as it was.
  for (auto& item : b.model->named_parameters(true)) {
    const std::string& k = item.key();
    bool image_side = k.rfind("vision_model.", 0) == 0 || k.rfind("qformer.", 0) == 0 || k == "query_tokens";
    EXPECT_FALSE(item.value().requires_grad()) << k;
    if (!image_side) EXPECT_TRUE(torch::equal(item.value(), before[k])) << k << " changed";
  }
  EXPECT_FALSE(torch::equal(b.model->vision_model->embeddings->patch_embedding->weight,
                            before["vision_model.embeddings.patch_embedding.weight"]));
  EXPECT_FALSE(torch::equal(b.model->query_tokens, before["query_tokens"]));

  // Colour, on photos it never saw, well above the majority answer (counted from val.jsonl).
  std::map<std::string, int> counts;
  int n = 0;
  for (const auto& p : val)
    if (p.attribute == "baseColour") {
      counts[p.value]++;
      n++;
    }
  int majority = 0;
  for (const auto& kv : counts) majority = std::max(majority, kv.second);
  double baseline = static_cast<double>(majority) / n;
  double acc = epochs.back().val_accuracy.at("baseColour");
  std::printf("baseColour on %d validation photos: %.3f (majority baseline %.3f)\n", n, acc, baseline);
  EXPECT_GE(acc, std::max(0.6, 2 * baseline));
  EXPECT_TRUE(epochs.back().val_accuracy.count("Sleeve Length"));
}

TEST(Pretrain, ResumedFromItsResultEqualsUninterrupted) {
  Progress::quiet = true;
  std::string a = test::temp_dir("pretrain_a"), b = test::temp_dir("pretrain_b");
  TrainResult ra = train_model(pretrain_run(a));
  ASSERT_EQ(ra.steps, 5);
  ASSERT_TRUE(fs::exists(a + "/pretrain/image_side.safetensors"));
  EXPECT_TRUE(ra.cache_used);  // the image side is frozen after pre-training

  // A kill between the pre-training and the first checkpoint: only its result and log remain.
  train_model(pretrain_run(b));
  for (const char* d : {"checkpoint", "checkpoint.old", "model"}) fs::remove_all(b + "/" + d);
  TrainOptions resume = pretrain_run(b);
  resume.resume = true;
  TrainResult rb = train_model(resume);
  ASSERT_EQ(rb.step_losses.size(), ra.step_losses.size());
  for (size_t i = 0; i < ra.step_losses.size(); ++i) EXPECT_EQ(rb.step_losses[i], ra.step_losses[i]) << "step " << i + 1;
  EXPECT_TRUE(read_file(a + "/model/model.safetensors") == read_file(b + "/model/model.safetensors"));
  // The log holds each pre-training epoch once (loss and held-out accuracy as the first run's), then the steps.
  EXPECT_EQ(test::log_lines_with(b, "\"stage\":\"pretrain\"").size(), 2u);
  EXPECT_EQ(test::log_lines_with(a, "\"stage\":\"pretrain\""), test::log_lines_with(b, "\"stage\":\"pretrain\""));
}

TEST(Pretrain, BadCombinationsAreClearErrors) {
  Progress::quiet = true;
  TrainOptions lora = pretrain_run(test::temp_dir("pretrain_lora"));
  lora.full = false;
  lora.freeze.clear();
  EXPECT_NE(test::train_error(lora).find("--pretrain-epochs needs --full"), std::string::npos);
  TrainOptions negative = pretrain_run(test::temp_dir("pretrain_negative"));
  negative.pretrain.epochs = -1;
  EXPECT_NE(test::train_error(negative).find("--pretrain-epochs must be 0 or more"), std::string::npos);
  TrainOptions no_batch = pretrain_run(test::temp_dir("pretrain_batch0"));
  no_batch.pretrain.batch_size = 0;
  EXPECT_NE(test::train_error(no_batch).find("--pretrain-batch-size must be >= 1"), std::string::npos);

  // Resuming from a pre-training result made with other options.
  std::string out = test::temp_dir("pretrain_other");
  train_model(pretrain_run(out));
  for (const char* d : {"checkpoint", "checkpoint.old"}) fs::remove_all(out + "/" + d);
  TrainOptions other = pretrain_run(out);
  other.pretrain.lr = 5e-4;
  other.resume = true;
  std::string e = test::train_error(other);
  EXPECT_NE(e.find("image_side.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("other options"), std::string::npos) << e;

  // A checkpoint without the pre-training result it was trained on.
  std::string out2 = test::temp_dir("pretrain_missing");
  train_model(pretrain_run(out2));
  fs::remove_all(out2 + "/pretrain");
  TrainOptions again = pretrain_run(out2);
  again.resume = true;
  e = test::train_error(again);
  EXPECT_NE(e.find("is missing"), std::string::npos) << e;
}

// --pretrain-data: more photos and fields for the pre-training alone. The validation split's products
// are left out before any photo is read (their photos here do not exist: reading one would fail), the
// others are read (one that does not exist is an error naming --pretrain-data), and they change what
// the image side learns. --pretrain-reframe draws framings (another result again), and both need
// --pretrain-epochs.
TEST(Pretrain, ExtraDataLeavesTheValidationSplitOutAndShapesTheImageSide) {
  Progress::quiet = true;
  const std::string data = test::tiny_setup().data;
  std::vector<VqaPair> train = read_pairs(data + "/train.jsonl"), val = read_pairs(data + "/val.jsonl");
  ASSERT_FALSE(val.empty());
  // An extra field of every product (a made-up "Shop"), and the validation products' photos missing.
  auto write_extra = [&](const std::string& dir, const std::string& broken_id) {
    make_dirs(dir);
    std::string text;
    for (const auto* split : {&train, &val})
      for (VqaPair p : *split) {
        if (p.attribute != "baseColour") continue;
        p.attribute = "Shop";
        p.value = p.id.back() % 2 ? "north" : "south";
        p.answer = answer_text(p.attribute, p.value);
        if (split == &val || p.id == broken_id) p.image = dir + "/missing-" + p.id + ".jpg";
        text += pair_to_json_line(p) + "\n";
      }
    write_file_atomic(dir + "/train.jsonl", text);
    return dir;
  };
  // The pre-trained image side's weights (the file's metadata holds the options, which differ anyway).
  auto image_side = [](const std::string& out) {
    Checkpoint ck = Checkpoint::open(out + "/pretrain/image_side.safetensors");
    std::vector<torch::Tensor> flat;
    for (const auto& name : ck.names()) flat.push_back(tensor_from_view(ck.get(name)).flatten().to(torch::kFloat));
    return torch::cat(flat);
  };
  auto same = [](const torch::Tensor& a, const torch::Tensor& b) { return a.sizes() == b.sizes() && torch::equal(a, b); };
  const std::string plain = test::temp_dir("pretrain_plain");
  train_model(pretrain_run(plain));

  TrainOptions extra = pretrain_run(test::temp_dir("pretrain_extra"));
  extra.pretrain_data = write_extra(test::temp_dir("pretrain_extra_data"), "");
  TrainResult r = train_model(extra);
  EXPECT_EQ(r.steps, 5);
  EXPECT_FALSE(same(image_side(extra.out_dir), image_side(plain))) << "--pretrain-data changed nothing";

  TrainOptions broken = pretrain_run(test::temp_dir("pretrain_broken"));
  broken.pretrain_data = write_extra(test::temp_dir("pretrain_broken_data"), train.front().id);
  std::string e = test::train_error(broken);
  EXPECT_NE(e.find("--pretrain-data " + broken.pretrain_data), std::string::npos) << e;
  EXPECT_NE(e.find("missing-" + train.front().id + ".jpg"), std::string::npos) << e;

  TrainOptions reframe = pretrain_run(test::temp_dir("pretrain_reframe"));
  reframe.pretrain.reframe = true;
  train_model(reframe);
  EXPECT_FALSE(same(image_side(reframe.out_dir), image_side(plain))) << "--pretrain-reframe changed nothing";

  TrainOptions no_epochs = pretrain_run(test::temp_dir("pretrain_data_no_epochs"));
  no_epochs.pretrain.epochs = 0;
  no_epochs.pretrain_data = extra.pretrain_data;
  EXPECT_NE(test::train_error(no_epochs).find("--pretrain-data needs --pretrain-epochs"), std::string::npos);
  TrainOptions no_dir = pretrain_run(test::temp_dir("pretrain_data_no_dir"));
  no_dir.pretrain_data = test::temp_dir("pretrain_data_empty");
  EXPECT_NE(test::train_error(no_dir).find("--pretrain-data: " + no_dir.pretrain_data + "/train.jsonl not found"), std::string::npos);
  no_epochs.pretrain_data.clear();
  no_epochs.pretrain.reframe = true;
  EXPECT_NE(test::train_error(no_epochs).find("--pretrain-reframe needs --pretrain-epochs"), std::string::npos);
}
