// tailor's side of the GPU runs (tools/gpu/run.sh): full-size parity against HF and the
// side-by-side benchmark of issue 7. Built only with -DTAILOR_GPU_TOOLS=ON.
//
//   tailor_gpu_bench parity   MODEL_DIR INPUTS.safetensors OUT.safetensors f32|bf16
//   tailor_gpu_bench train    MODEL_DIR BATCH STEPS cache|nocache
//   tailor_gpu_bench generate MODEL_DIR IMAGE.jpg BATCH REPEATS
// Prints one JSON line per measurement.
#include <ATen/Context.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>

#include "catalog/images.h"
#include "infer/batch.h"
#include "infer/generate.h"
#include "model/model_dir.h"
#include "model/weights.h"
#include "train/lora.h"
#include "util/fs.h"

using namespace tailor;
using torch::Tensor;

static void sync() { torch::cuda::synchronize(); }
static double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
static double peak_gib() {
  auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(0);
  return stats.allocated_bytes[0].peak / double(1ull << 30);
}
static void reset_peak() { c10::cuda::CUDACachingAllocator::resetPeakStats(0); }

// Model FLOPs per training sample as the issue counts them: the frozen image side forward, the T5
// forward, and the T5 backward to its inputs (about one more forward).
struct Flops {
  double image = 0, t5 = 0;
};
static Flops flops_per_sample(const Blip2Config& c, int64_t enc_len, int64_t dec_len) {
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

static int parity(const std::string& dir, const std::string& inputs, const std::string& out, const std::string& dt) {
  at::globalContext().setAllowTF32CuBLAS(false);
  at::globalContext().setAllowTF32CuDNN(false);
  torch::Device dev(torch::kCUDA);
  auto dtype = dt == "bf16" ? torch::kBFloat16 : torch::kFloat;
  Blip2Bundle b = load_model_dir(dir, dev, dtype);
  torch::NoGradGuard ng;
  Checkpoint ck = Checkpoint::open(inputs);
  Tensor pv = tensor_from_view(ck.get("pixel_values")).to(dev), ids = tensor_from_view(ck.get("input_ids")).to(dev),
         mask = tensor_from_view(ck.get("attention_mask")).to(dev), labels = tensor_from_view(ck.get("labels")).to(dev);
  Tensor vision = b.model->vision_model->forward(pv);
  Tensor feats = b.model->image_features(pv);
  auto enc = b.model->encode(feats, ids, mask);
  Tensor logits = b.model->language_model->forward_labels(enc.first, enc.second, labels);
  GenerationOptions g;
  g.max_new_tokens = 10;
  Tensor greedy = generate_tokens(b.model->language_model, enc.first, enc.second, g);
  std::vector<Tensor> keep = {vision.to(torch::kCPU, torch::kFloat).contiguous(), feats.to(torch::kCPU, torch::kFloat).contiguous(),
                              enc.first.to(torch::kCPU, torch::kFloat).contiguous(),
                              logits.to(torch::kCPU, torch::kFloat).contiguous(), greedy.cpu().contiguous()};
  const char* names[] = {"vision_out", "image_features", "encoder_out", "logits", "greedy_ids"};
  std::vector<TensorToWrite> w;
  for (size_t i = 0; i < keep.size(); ++i)
    w.push_back({names[i], i == 4 ? DType::I64 : DType::F32, keep[i].sizes().vec(), keep[i].data_ptr(),
                 size_t(keep[i].numel() * keep[i].element_size())});
  write_safetensors(out, w);
  std::printf("{\"parity\": \"%s\", \"written\": \"%s\"}\n", dt.c_str(), out.c_str());
  return 0;
}

static int train_bench(const std::string& dir, int64_t B, int steps, bool cache) {
  torch::Device dev(torch::kCUDA);
  Blip2Bundle b = load_model_dir(dir, dev, torch::kBFloat16);
  auto& m = b.model;
  for (auto& p : m->parameters()) p.set_requires_grad(false);
  LoraOptions lo;
  LoraSummary ls = attach_lora(*m, lo);
  std::vector<Tensor> params;
  for (auto& p : m->parameters())
    if (p.requires_grad()) params.push_back(p);
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(1e-4));
  m->train();
  m->vision_model->eval();
  m->qformer->eval();
  const int64_t Q = b.cfg.num_query_tokens, Tq = 16, La = 8;
  auto lo_ = torch::TensorOptions().dtype(torch::kLong).device(dev);
  Tensor ids = torch::randint(3, 1000, {B, Q + Tq}, lo_);
  ids.narrow(1, 0, Q).fill_(b.cfg.image_token_index);
  Tensor mask = torch::ones({B, Q + Tq}, lo_);
  Tensor labels = torch::randint(3, 1000, {B, La}, lo_);
  Tensor pixels = torch::randn({B, 3, b.cfg.vision.image_size, b.cfg.vision.image_size}, torch::TensorOptions().device(dev));
  Tensor cached_q;
  if (cache) {
    torch::NoGradGuard ng;
    cached_q = m->qformer_features(m->vision_model->forward(pixels.to(torch::kBFloat16)));
  }
  auto step = [&] {
    Tensor q;
    if (cache) {
      q = cached_q;
    } else {
      torch::NoGradGuard ng;
      q = m->qformer_features(m->vision_model->forward(pixels.to(torch::kBFloat16)));
    }
    Tensor feats = m->language_projection->forward(q.to(torch::kBFloat16));
    auto enc = m->encode(feats, ids, mask);
    Tensor loss = lm_loss(m->language_model->forward_labels(enc.first, enc.second, labels), labels);
    opt.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(params, 1.0);
    opt.step();
    return loss;
  };
  for (int i = 0; i < 3; ++i) step();
  sync();
  reset_peak();
  std::vector<double> times;
  Tensor last;
  for (int i = 0; i < steps; ++i) {
    double t0 = now();
    last = step();
    sync();
    times.push_back(now() - t0);
  }
  std::sort(times.begin(), times.end());
  double med = times[times.size() / 2];
  Flops f = flops_per_sample(b.cfg, Q + Tq, La);
  double per_sample = (cache ? 0 : f.image) + 2 * f.t5;
  double sps = B / med;
  std::printf("{\"bench\": \"train\", \"impl\": \"tailor\", \"batch\": %lld, \"cache\": %s, \"step_ms\": %.1f, "
              "\"samples_per_s\": %.1f, \"tflop_per_sample\": %.3f, \"mfu_800\": %.3f, \"peak_gib\": %.1f, "
              "\"lora_modules\": %zu, \"lora_params\": %lld, \"loss\": %.4f}\n",
              (long long)B, cache ? "true" : "false", med * 1e3, sps, per_sample / 1e12, sps * per_sample / 800e12,
              peak_gib(), ls.modules.size(), (long long)ls.trainable_parameters, last.item<double>());
  return 0;
}

static int generate_bench(const std::string& dir, const std::string& image, int64_t B, int repeats) {
  torch::Device dev(torch::kCUDA);
  Blip2Bundle b = load_model_dir(dir, dev, torch::kBFloat16);
  std::vector<uint8_t> bytes = read_file_bytes(image);
  GenerationOptions g;
  g.max_new_tokens = 10;
  g.min_new_tokens = 10;  // the same amount of work as HF's run, whatever random weights predict
  std::string prompt = "Question: What is the sleeve length of the shirt in this picture? Answer: ";
  auto once = [&] {
    torch::NoGradGuard ng;
    std::vector<ImageRGB> imgs;
    for (int64_t i = 0; i < B; ++i) imgs.push_back(decode_image(bytes));  // from image bytes
    std::vector<const ImageRGB*> ptrs;
    for (auto& i : imgs) ptrs.push_back(&i);
    Tensor px = pixel_batch(ptrs, b.image_cfg).to(dev, /*non_blocking=*/true);
    Tensor feats = b.model->image_features(px);
    TokenBatch tb = prompt_batch(*b.tokenizer, std::vector<std::string>(B, prompt), b.cfg);
    auto enc = b.model->encode(feats, tb.ids.to(dev), tb.mask.to(dev));
    Tensor out = generate_tokens(b.model->language_model, enc.first, enc.second, g).cpu();
    std::string text = b.tokenizer->decode(strip_generated(out[0], 1, 0));
    return out.size(1);
  };
  for (int i = 0; i < 3; ++i) once();
  sync();
  reset_peak();
  std::vector<double> times;
  int64_t ntok = 0;
  for (int i = 0; i < repeats; ++i) {
    double t0 = now();
    ntok = once();
    sync();
    times.push_back(now() - t0);
  }
  std::sort(times.begin(), times.end());
  double med = times[times.size() / 2];
  std::printf("{\"bench\": \"generate\", \"impl\": \"tailor\", \"batch\": %lld, \"new_tokens\": %lld, \"ms\": %.1f, "
              "\"answers_per_s\": %.1f, \"peak_gib\": %.1f}\n",
              (long long)B, (long long)ntok, med * 1e3, B / med, peak_gib());
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: see the top of tools/gpu/tailor_gpu_bench.cpp\n");
    return 2;
  }
  std::string mode = argv[1];
  try {
    if (mode == "parity" && argc == 6) return parity(argv[2], argv[3], argv[4], argv[5]);
    if (mode == "train" && argc == 6) return train_bench(argv[2], std::atoll(argv[3]), std::atoi(argv[4]), std::string(argv[5]) == "cache");
    if (mode == "generate" && argc == 6) return generate_bench(argv[2], argv[3], std::atoll(argv[4]), std::atoi(argv[5]));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tailor_gpu_bench: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "bad arguments\n");
  return 2;
}
