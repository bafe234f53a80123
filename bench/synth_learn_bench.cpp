// Is the synthetic catalog learnable by a tiny model on a CPU? Synthesizes a catalog, prepares it,
// trains a small CNN from scratch on 64x64 images (one softmax head per visual attribute) for a
// fixed time budget, and prints the validation accuracy per attribute.
//
//   synth_learn_bench [products=2000] [seconds=120] [seed=1]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>

#include "catalog/dataset.h"
#include "catalog/images.h"
#include "catalog/prepare.h"
#include "catalog/synth.h"
#include "util/fs.h"
#include "util/progress.h"

using namespace tailor;

static const std::vector<std::string> kAttrs = {"Sleeve Length", "Neck", "Collar", "Pattern", "baseColour"};
static const int kSide = 64;

struct Split {
  torch::Tensor x;  // N x 3 x 64 x 64, float in [0,1]
  torch::Tensor y;  // N x attrs, class index or -100
};

static Split load(const std::vector<VqaPair>& pairs, std::vector<std::map<std::string, int64_t>>& vocab) {
  std::map<std::string, std::string> image_of;
  std::map<std::string, std::map<std::string, std::string>> values;
  for (const auto& p : pairs) {
    image_of[p.id] = p.image;
    values[p.id][p.attribute] = p.value;
  }
  int64_t n = static_cast<int64_t>(image_of.size());
  Split s;
  s.x = torch::empty({n, 3, kSide, kSide});
  s.y = torch::full({n, static_cast<int64_t>(kAttrs.size())}, -100, torch::kLong);
  int64_t i = 0;
  for (const auto& [id, path] : image_of) {
    ImageRGB img = load_image(path);
    torch::Tensor t = torch::from_blob(img.pixels.data(), {img.height, img.width, 3}, torch::kUInt8)
                          .permute({2, 0, 1})
                          .to(torch::kFloat)
                          .div(255.0)
                          .unsqueeze(0);
    s.x[i] = torch::adaptive_avg_pool2d(t, {kSide, kSide})[0];
    for (size_t a = 0; a < kAttrs.size(); ++a) {
      auto it = values[id].find(kAttrs[a]);
      if (it == values[id].end()) continue;
      auto& v = vocab[a];
      if (!v.count(it->second)) v[it->second] = static_cast<int64_t>(v.size());
      s.y[i][a] = v[it->second];
    }
    ++i;
  }
  return s;
}

struct NetImpl : torch::nn::Module {
  torch::nn::Sequential body{nullptr};
  torch::nn::ModuleList heads{nullptr};
  explicit NetImpl(const std::vector<int64_t>& classes) {
    // Small on purpose: a strided stem, then three conv blocks (about 25 MFLOP per image).
    torch::nn::Sequential seq;
    seq->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 16, 3).stride(2).padding(1)));  // 32x32
    seq->push_back(torch::nn::BatchNorm2d(16));
    seq->push_back(torch::nn::ReLU());
    int64_t in = 16;
    for (int64_t out : {32, 64, 64}) {
      seq->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1)));
      seq->push_back(torch::nn::BatchNorm2d(out));
      seq->push_back(torch::nn::ReLU());
      seq->push_back(torch::nn::MaxPool2d(2));
      in = out;
    }  // 64 x 4 x 4
    seq->push_back(torch::nn::Flatten());
    seq->push_back(torch::nn::Linear(64 * 16, 128));
    seq->push_back(torch::nn::ReLU());
    body = register_module("body", seq);
    heads = register_module("heads", torch::nn::ModuleList());
    for (int64_t c : classes) heads->push_back(torch::nn::Linear(128, std::max<int64_t>(c, 1)));
  }
  std::vector<torch::Tensor> forward(torch::Tensor x) {
    torch::Tensor h = body->forward(x);
    std::vector<torch::Tensor> out;
    for (auto& m : *heads) out.push_back(m->as<torch::nn::Linear>()->forward(h));
    return out;
  }
};
TORCH_MODULE(Net);

int main(int argc, char** argv) {
  int products = argc > 1 ? std::atoi(argv[1]) : 2000;
  double budget = argc > 2 ? std::atof(argv[2]) : 120;
  uint64_t seed = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 1;
  at::set_num_threads(2);
  torch::manual_seed(0);
  Progress::quiet = true;
  std::string dir = "/tmp/tailor-synth-learn-" + std::to_string(products) + "-" + std::to_string(seed);
  SynthOptions so;
  so.products = products;
  so.out_dir = join_path(dir, "catalog");
  so.seed = seed;
  so.progress = false;
  synth_catalog(so);
  PrepareOptions po;
  po.catalog_dir = so.out_dir;
  po.out_dir = join_path(dir, "dataset");
  po.progress = false;
  prepare_catalog(po);
  std::vector<std::map<std::string, int64_t>> vocab(kAttrs.size());
  Split train = load(read_pairs(join_path(po.out_dir, "train.jsonl")), vocab);
  Split val = load(read_pairs(join_path(po.out_dir, "val.jsonl")), vocab);
  std::vector<int64_t> classes;
  for (const auto& v : vocab) classes.push_back(static_cast<int64_t>(v.size()));
  std::printf("train %lld images, val %lld images, 64x64\n", (long long)train.x.size(0), (long long)val.x.size(0));

  Net net(classes);
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(2e-3));
  auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  int64_t n = train.x.size(0), batch = 64, epoch = 0;
  auto evaluate = [&] {
    torch::NoGradGuard ng;
    net->eval();
    auto out = net->forward(val.x);
    std::vector<double> acc;
    for (size_t a = 0; a < kAttrs.size(); ++a) {
      torch::Tensor y = val.y.select(1, a), mask = y >= 0;
      torch::Tensor pred = out[a].argmax(1);
      acc.push_back(mask.sum().item<int64_t>() ? (pred.eq(y) & mask).sum().item<double>() / mask.sum().item<double>()
                                               : 1.0);
    }
    net->train();
    return acc;
  };
  while (elapsed() < budget) {
    torch::Tensor perm = torch::randperm(n);
    double loss_sum = 0;
    int steps = 0;
    for (int64_t b = 0; b + batch <= n && elapsed() < budget; b += batch) {
      torch::Tensor idx = perm.slice(0, b, b + batch);
      torch::Tensor x = train.x.index_select(0, idx), y = train.y.index_select(0, idx);
      auto out = net->forward(x);
      torch::Tensor loss = torch::zeros({});
      for (size_t a = 0; a < kAttrs.size(); ++a)
        if ((y.select(1, a) >= 0).any().item<bool>())
          loss = loss + torch::nn::functional::cross_entropy(
                            out[a], y.select(1, a), torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
      opt.zero_grad();
      loss.backward();
      opt.step();
      loss_sum += loss.item<double>();
      ++steps;
    }
    ++epoch;
    auto acc = evaluate();
    std::printf("epoch %3lld  %6.1f s  loss %.3f  val acc:", (long long)epoch, elapsed(), loss_sum / std::max(1, steps));
    for (size_t a = 0; a < kAttrs.size(); ++a) std::printf("  %s %.3f", kAttrs[a].c_str(), acc[a]);
    std::printf("\n");
    std::fflush(stdout);
  }
  return 0;
}
