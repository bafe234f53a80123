// Does the BLIP-2 image side (vision tower + Q-Former) of a model directory learn the synthetic
// attributes when it is supervised directly? One softmax head per attribute on the mean of the
// Q-Former's query outputs, trained from the model directory's weights on a prepared dataset.
//
//   vit_learn_bench MODEL_DIR DATASET_DIR [seconds=120] [lr=1e-3] [source=qformer|vision]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "catalog/dataset.h"
#include "catalog/images.h"
#include "infer/batch.h"
#include "model/model_dir.h"
#include "util/fs.h"
#include "util/runtime_env.h"

using namespace tailor;

static const std::vector<std::string> kAttrs = {"Sleeve Length", "Neck", "Collar", "Pattern", "baseColour"};

struct Split {
  torch::Tensor x, y;
};

static Split load(const std::vector<VqaPair>& pairs, std::vector<std::map<std::string, int64_t>>& vocab,
                  const ImageProcessorConfig& cfg) {
  std::map<std::string, std::string> image_of;
  std::map<std::string, std::map<std::string, std::string>> values;
  for (const auto& p : pairs) {
    image_of[p.id] = p.image;
    values[p.id][p.attribute] = p.value;
  }
  std::vector<ImageRGB> imgs;
  Split s;
  s.y = torch::full({(int64_t)image_of.size(), (int64_t)kAttrs.size()}, -100, torch::kLong);
  int64_t i = 0;
  for (const auto& [id, path] : image_of) {
    imgs.push_back(load_image(path));
    for (size_t a = 0; a < kAttrs.size(); ++a) {
      auto it = values[id].find(kAttrs[a]);
      if (it == values[id].end()) continue;
      auto& v = vocab[a];
      if (!v.count(it->second)) v[it->second] = (int64_t)v.size();
      s.y[i][a] = v[it->second];
    }
    ++i;
  }
  std::vector<const ImageRGB*> ptrs;
  for (auto& im : imgs) ptrs.push_back(&im);
  s.x = pixel_batch(ptrs, cfg);
  return s;
}

int main(int argc, char** argv) {
  ensure_runtime_env();
  if (argc < 3) {
    std::fprintf(stderr, "usage: vit_learn_bench MODEL_DIR DATASET_DIR [seconds] [lr] [source]\n");
    return 2;
  }
  double budget = argc > 3 ? std::atof(argv[3]) : 120;
  double lr = argc > 4 ? std::atof(argv[4]) : 1e-3;
  std::string source = argc > 5 ? argv[5] : "qformer";
  at::set_num_threads(2);
  torch::manual_seed(0);
  Blip2Bundle b = load_model_dir(argv[1], torch::kCPU, torch::kFloat);
  auto& m = b.model;
  std::vector<std::map<std::string, int64_t>> vocab(kAttrs.size());
  Split train = load(read_pairs(join_path(argv[2], "train.jsonl")), vocab, b.image_cfg);
  Split val = load(read_pairs(join_path(argv[2], "val.jsonl")), vocab, b.image_cfg);
  int64_t width = source == "vision" ? b.cfg.vision.hidden_size : b.cfg.qformer.hidden_size;
  torch::nn::ModuleList heads;
  for (auto& v : vocab) heads->push_back(torch::nn::Linear(width, std::max<int64_t>((int64_t)v.size(), 1)));
  std::vector<torch::Tensor> params;
  for (auto& p : m->vision_model->parameters()) params.push_back(p);
  if (source != "vision") {
    for (auto& p : m->qformer->parameters()) params.push_back(p);
    params.push_back(m->query_tokens);
  }
  for (auto& p : heads->parameters()) params.push_back(p);
  for (auto& p : params) p.set_requires_grad(true);
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(lr).weight_decay(0.01));
  auto features = [&](const torch::Tensor& x) {
    torch::Tensor v = m->vision_model->forward(x);
    if (source == "vision") return v.mean(1);
    return m->qformer_features(v).mean(1);
  };
  auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  int64_t n = train.x.size(0), batch = 64, epoch = 0;
  std::printf("train %lld, val %lld photos at %lld px; source %s, lr %g\n", (long long)n, (long long)val.x.size(0),
              (long long)train.x.size(2), source.c_str(), lr);
  while (elapsed() < budget) {
    torch::Tensor perm = torch::randperm(n);
    double loss_sum = 0;
    int steps = 0;
    m->train();
    for (int64_t s = 0; s + batch <= n && elapsed() < budget; s += batch) {
      torch::Tensor idx = perm.slice(0, s, s + batch);
      torch::Tensor h = features(train.x.index_select(0, idx)), y = train.y.index_select(0, idx);
      torch::Tensor loss = torch::zeros({});
      for (size_t a = 0; a < kAttrs.size(); ++a)
        loss = loss + torch::nn::functional::cross_entropy(
                          heads[a]->as<torch::nn::Linear>()->forward(h), y.select(1, a),
                          torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
      opt.zero_grad();
      loss.backward();
      opt.step();
      loss_sum += loss.item<double>();
      ++steps;
    }
    ++epoch;
    torch::NoGradGuard ng;
    m->eval();
    torch::Tensor h = features(val.x);
    std::printf("epoch %3lld  %6.1f s  loss %.3f  val:", (long long)epoch, elapsed(), loss_sum / std::max(1, steps));
    for (size_t a = 0; a < kAttrs.size(); ++a) {
      torch::Tensor y = val.y.select(1, a), mask = y >= 0;
      torch::Tensor pred = heads[a]->as<torch::nn::Linear>()->forward(h).argmax(1);
      double acc = (pred.eq(y) & mask).sum().item<double>() / std::max<double>(1, mask.sum().item<double>());
      std::printf("  %s %.3f", kAttrs[a].c_str(), acc);
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  return 0;
}
