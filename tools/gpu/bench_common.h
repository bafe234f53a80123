// Shared by tailor_gpu_bench and tailor_gpu_profile: timing helpers, the model-FLOP count of issue 7
// and the benchmark's LoRA training step (fixed inputs around the trainer's own step). Header-only,
// included by one file of each program.
#pragma once
#include <c10/cuda/CUDACachingAllocator.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include "model/model_dir.h"
#include "train/lora.h"
#include "train/optimizer.h"
#include "train/step.h"

namespace tailor {
using torch::Tensor;

inline void sync() { torch::cuda::synchronize(); }
inline double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
inline double peak_gib() {
  auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(0);
  return stats.allocated_bytes[0].peak / double(1ull << 30);
}
inline void reset_peak() { c10::cuda::CUDACachingAllocator::resetPeakStats(0); }

// Model FLOPs per training sample as the issue counts them: the frozen image side forward, the T5
// forward, and the T5 backward to its inputs (about one more forward).
struct Flops {
  double image = 0, t5 = 0;
};
inline Flops flops_per_sample(const Blip2Config& c, int64_t enc_len, int64_t dec_len) {
  Flops f;
  const auto& v = c.vision;
  double T = double(v.num_positions());
  double d = v.hidden_size;
  f.image += 2.0 * (T - 1) * 3 * v.patch_size * v.patch_size * d;
  f.image += v.num_hidden_layers * (2.0 * T * (4 * d * d + 2 * d * v.intermediate_size) + 4.0 * T * T * d);
  const auto& q = c.qformer;
  double Q = c.num_query_tokens, h = q.hidden_size;
  for (int64_t i = 0; i < q.num_hidden_layers; ++i) {
    f.image += 2.0 * Q * (4 * h * h + 2 * h * q.intermediate_size) + 4.0 * Q * Q * h;
    if (i % q.cross_attention_frequency == 0) f.image += 2.0 * (2 * Q * h * h + 2 * T * d * h) + 4.0 * Q * T * h;
  }
  f.image += 2.0 * Q * h * c.text.d_model;
  const auto& t = c.text;
  double D = t.d_model, I = double(t.num_heads) * t.d_kv, F = t.d_ff * (t.is_gated_act ? 3 : 2);
  double E = enc_len, L = dec_len;
  f.t5 += t.num_layers * (2.0 * E * (4 * D * I + D * F) + 4.0 * E * E * I);
  f.t5 += t.num_decoder_layers * (2.0 * L * (4 * D * I + D * F) + 4.0 * L * L * I + 2.0 * (2 * L * D * I + 2 * E * D * I) + 4.0 * L * E * I);
  f.t5 += 2.0 * L * D * t.vocab_size;
  return f;
}

// The LoRA training step of the benchmark on fixed random inputs: frozen image side (or cached
// features), then the trainer's own step (train/step.h fixed_shape_step: T5 forward with LoRA on q,v,
// backward, gradient clip, AdamW over FlatAdam), which `tailor train --cuda-graph` runs too. graph:
// the whole step captured as one CUDA graph (FlatAdam keeps its step count and learning rate on the GPU).
struct TrainStep {
  Blip2Bundle& b;
  int64_t B;
  bool cache;
  Tensor ids, mask, slot, labels, pixels, cached_q, loss;
  std::unique_ptr<FlatAdam> opt;

  Tensor image_side() {
    torch::NoGradGuard ng;
    return b.model->qformer_features(b.model->vision_model->forward(pixels.to(torch::kBFloat16)));
  }
  void run() {
    Tensor q = cache ? cached_q : image_side();  // no gradient: the image side is frozen
    fixed_shape_step(b.model, *opt, LmBatch{q, ids, mask, slot, labels}, /*max_grad_norm=*/1.0, loss);
  }
};

inline LoraSummary& lora_once(Blip2Bundle& b) {
  static LoraSummary ls;
  if (ls.modules.empty()) ls = attach_lora(*b.model, LoraOptions());
  return ls;
}

inline TrainStep make_train_step(Blip2Bundle& b, int64_t B, bool cache, uint64_t seed) {
  torch::Device dev(torch::kCUDA);
  auto& m = b.model;
  LoraSummary& ls = lora_once(b);
  (void)ls;
  std::vector<Tensor> params;
  {
    torch::NoGradGuard ng;
    torch::manual_seed(seed);
    for (auto& item : m->named_parameters(true)) {
      bool lora = item.key().find("lora_") != std::string::npos;
      item.value().set_requires_grad(lora);
      if (!lora) continue;
      item.value().mutable_grad() = Tensor();
      // Fresh adapter values (B nonzero, so the adapters change the loss from the first step).
      item.value().normal_(0, 0.02);
      params.push_back(item.value());
    }
  }
  m->train();
  m->vision_model->eval();
  m->qformer->eval();
  TrainStep s{b, B, cache};
  FlatAdamOptions ao;
  ao.lr = 1e-4;
  ao.weight_decay = 0.01;
  s.opt = std::make_unique<FlatAdam>(std::vector<std::vector<Tensor>>{params}, ao);
  const int64_t Q = b.cfg.num_query_tokens, Tq = 16, La = 8;
  auto lo_ = torch::TensorOptions().dtype(torch::kLong).device(dev);
  torch::manual_seed(seed);
  s.ids = torch::randint(3, 1000, {B, Q + Tq}, lo_);
  s.ids.narrow(1, 0, Q).fill_(b.cfg.image_token_index);
  s.mask = torch::ones({B, Q + Tq}, lo_);
  s.slot = m->image_slots(s.ids.cpu()).to(dev);
  s.labels = torch::randint(3, 1000, {B, La}, lo_);
  s.pixels = torch::randn({B, 3, b.cfg.vision.image_size, b.cfg.vision.image_size}, torch::TensorOptions().device(dev));
  s.loss = torch::zeros({}, torch::TensorOptions().device(dev));
  if (cache) s.cached_q = s.image_side();
  return s;
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace tailor
