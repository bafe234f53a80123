#include "train/pretrain.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "core/rng.h"
#include "infer/batch.h"
#include "train/augment.h"
#include "train/reframe.h"
#include "train/schedule.h"
#include "util/error.h"
#include "util/parallel.h"
#include "util/progress.h"

namespace tailor {

namespace {

// One row per photo: its path, product id (the augmentation key) and a class index per attribute
// (-100: the photo has no pair of that attribute; -1: a value the heads never saw).
struct PhotoLabels {
  std::vector<std::string> paths, ids;
  std::vector<std::vector<int64_t>> labels;
};

PhotoLabels photo_labels(const std::vector<VqaPair>& pairs, std::vector<std::string>& attributes,
                         std::vector<std::map<std::string, int64_t>>& values, bool grow) {
  PhotoLabels t;
  std::map<std::string, size_t> row_of;
  for (const auto& p : pairs) {
    auto a = std::find(attributes.begin(), attributes.end(), p.attribute);
    if (a == attributes.end()) {
      if (!grow) continue;  // an attribute the heads were not made for
      attributes.push_back(p.attribute);
      values.emplace_back();
      for (auto& row : t.labels) row.push_back(-100);
      a = attributes.end() - 1;
    }
    size_t ai = static_cast<size_t>(a - attributes.begin());
    auto r = row_of.find(p.image);
    if (r == row_of.end()) {
      r = row_of.emplace(p.image, t.paths.size()).first;
      t.paths.push_back(p.image);
      t.ids.push_back(p.id);
      t.labels.emplace_back(attributes.size(), -100);
    }
    auto& vocab = values[ai];
    auto v = vocab.find(p.value);
    if (v == vocab.end()) {
      if (grow) v = vocab.emplace(p.value, static_cast<int64_t>(vocab.size())).first;
      t.labels[r->second][ai] = grow ? v->second : -1;
    } else {
      t.labels[r->second][ai] = v->second;
    }
  }
  return t;
}

}  // namespace

// Long (~130 lines) on purpose: one small training program read in one pass, as llm.c's main (labels,
// heads, optimizer, then the epoch loop with its validation); its pieces share most of their state.
std::vector<PretrainEpoch> pretrain_image_side(Blip2ForConditionalGeneration& m, const ImageProcessorConfig& image_cfg,
                                               const std::vector<VqaPair>& train, const std::vector<VqaPair>& val,
                                               const std::map<std::string, std::shared_ptr<const ImageRGB>>& images,
                                               const PretrainOptions& o, const torch::Device& dev,
                                               const std::function<void(const PretrainEpoch&)>& on_epoch) {
  std::vector<PretrainEpoch> out;
  if (o.epochs <= 0) return out;
  if (o.batch_size < 1) throw Error("--pretrain-batch-size must be >= 1");
  if (train.empty()) throw Error("image-side pre-training: no training pairs");
  std::vector<std::string> attributes;
  std::vector<std::map<std::string, int64_t>> values;
  PhotoLabels tr = photo_labels(train, attributes, values, true);
  PhotoLabels va = photo_labels(val, attributes, values, false);
  std::vector<std::shared_ptr<const ImageRGB>> val_images;
  for (const auto& path : va.paths) val_images.push_back(std::make_shared<const ImageRGB>(load_image(path)));

  // What trains: the image side, plus one head per attribute. Flags are restored at the end.
  std::vector<torch::Tensor> image_params;
  for (auto& p : m->vision_model->parameters()) image_params.push_back(p);
  for (auto& p : m->qformer->parameters()) image_params.push_back(p);
  image_params.push_back(m->query_tokens);
  std::vector<bool> had_grad;
  for (auto& p : image_params) {
    had_grad.push_back(p.requires_grad());
    p.set_requires_grad(true);
  }
  if (m->query_tokens.scalar_type() != torch::kFloat)
    throw Error("image-side pre-training trains in float32 (use --full, whose weights are float32)");
  const int64_t width = m->query_tokens.size(2);
  std::vector<torch::nn::Linear> heads;
  std::vector<torch::Tensor> params = image_params;
  for (const auto& v : values) {
    heads.emplace_back(torch::nn::LinearOptions(width, std::max<int64_t>(1, static_cast<int64_t>(v.size()))));
    heads.back()->to(dev);
    for (auto& p : heads.back()->parameters()) params.push_back(p);
  }
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));

  const int64_t photos = static_cast<int64_t>(tr.paths.size());
  const int64_t steps_per_epoch = (photos + o.batch_size - 1) / o.batch_size;
  const int64_t total = steps_per_epoch * o.epochs;
  std::unique_ptr<Progress> bar;
  if (o.progress) bar = std::make_unique<Progress>("pretrain", total, "steps");
  // The mean query output of each photo: what the heads read.
  auto pooled = [&](const std::vector<const ImageRGB*>& inputs) {
    torch::Tensor px = pixel_batch(inputs, image_cfg).to(dev);
    return m->qformer_features(m->vision_model->forward(px)).mean(1);
  };
  int64_t step = 0;
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    // A seeded shuffle of the photos (Fisher-Yates), reproducible from (seed, epoch).
    std::vector<int64_t> order(static_cast<size_t>(photos));
    for (int64_t i = 0; i < photos; ++i) order[i] = i;
    Rng rng(splitmix64_mix(o.seed ^ (0xA24BAED4963EE407ull * static_cast<uint64_t>(epoch + 1))));
    rng.shuffle(order);
    m->vision_model->train();
    m->qformer->train();
    double loss_sum = 0;
    for (int64_t s = 0; s < photos; s += o.batch_size) {
      const int64_t n = std::min(photos, s + o.batch_size) - s;
      std::vector<ImageRGB> augmented(static_cast<size_t>(n));
      std::vector<const ImageRGB*> inputs(static_cast<size_t>(n));
      std::vector<int64_t> rows(order.begin() + s, order.begin() + s + n);
      // Each photo's framing and flip come from (seed, epoch, product) alone, so the threads that
      // draw them do not change them. No random crops: a from-scratch ViT has no translation
      // invariance to spare, and crops cost the collar and neck a few points (docs/demo.md); a
      // reframing moves and scales the whole photo instead.
      parallel_for(n, worker_count(0), [&](int64_t i) {
        const int64_t r = rows[static_cast<size_t>(i)];
        const ImageRGB* img = images.at(tr.paths[r]).get();
        const uint64_t draw = splitmix64_mix(o.seed ^ fnv1a64(tr.ids[r]) ^ (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(epoch + 1)));
        ImageRGB& out = augmented[static_cast<size_t>(i)];
        if (o.reframe) {
          Rng rng(draw ^ 0x2545F4914F6CDD1Dull);
          out = random_reframe(*img, rng);
          img = &out;
        }
        if (o.augment && (draw & 1)) {
          out = flip_horizontal(*img);
          img = &out;
        }
        inputs[static_cast<size_t>(i)] = img;
      });
      torch::Tensor labels = torch::empty({static_cast<int64_t>(rows.size()), static_cast<int64_t>(attributes.size())}, torch::kLong);
      for (size_t i = 0; i < rows.size(); ++i)
        for (size_t a = 0; a < attributes.size(); ++a) labels[i][a] = tr.labels[rows[i]][a];
      labels = labels.to(dev);
      torch::Tensor h = pooled(inputs);
      torch::Tensor loss = torch::zeros({}, h.options());
      for (size_t a = 0; a < attributes.size(); ++a) {
        torch::Tensor y = labels.select(1, static_cast<int64_t>(a));
        if (!(y >= 0).any().item<bool>()) continue;  // no photo of this batch has the attribute
        loss = loss + torch::nn::functional::cross_entropy(
                          heads[a]->forward(h), y, torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
      }
      for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(warmup_cosine_lr(o.lr, 0.05, step, total));
      opt.zero_grad();
      loss.backward();
      opt.step();
      ++step;
      double l = loss.item<double>();
      loss_sum += l;
      if (bar) {
        char extra[48];
        std::snprintf(extra, sizeof extra, "loss %.4f", l);
        bar->add(1, extra);
      }
    }
    PretrainEpoch e;
    e.epoch = epoch + 1;
    e.loss = loss_sum / static_cast<double>(steps_per_epoch);
    if (!va.paths.empty()) {
      torch::NoGradGuard ng;
      m->vision_model->eval();
      m->qformer->eval();
      std::vector<int64_t> correct(attributes.size(), 0), count(attributes.size(), 0);
      for (size_t s = 0; s < va.paths.size(); s += 64) {
        std::vector<const ImageRGB*> inputs;
        for (size_t i = s; i < std::min(va.paths.size(), s + 64); ++i) inputs.push_back(val_images[i].get());
        torch::Tensor h = pooled(inputs);
        for (size_t a = 0; a < attributes.size(); ++a) {
          torch::Tensor pred = heads[a]->forward(h).argmax(1).cpu();
          for (size_t i = 0; i < inputs.size(); ++i) {
            int64_t y = va.labels[s + i][a];
            if (y == -100) continue;
            count[a]++;
            if (pred[static_cast<int64_t>(i)].item<int64_t>() == y) correct[a]++;
          }
        }
      }
      for (size_t a = 0; a < attributes.size(); ++a)
        if (count[a] > 0) e.val_accuracy[attributes[a]] = static_cast<double>(correct[a]) / static_cast<double>(count[a]);
    }
    out.push_back(e);
    if (on_epoch) on_epoch(e);
  }
  if (bar) bar->finish();
  for (size_t i = 0; i < image_params.size(); ++i) image_params[i].set_requires_grad(had_grad[i]);
  return out;
}

}  // namespace tailor
