// Where the GPU time goes (issue 7): runs one piece of work under libtorch's Kineto profiler and
// prints the kernels that take the most GPU time, grouped by name, with the region's wall time.
// Built only with -DTAILOR_GPU_TOOLS=ON, apart from tailor_gpu_bench (its profiler API is the part
// most likely to change between libtorch versions).
//
//   tailor_gpu_profile MODEL_DIR IMAGE.jpg     regions: image side b128, T5 train step b128 (cached
//                                              features), graphed generation b1 and b128
#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/torch.h>

#include <cstdio>
#include <map>
#include <set>

#include "bench_common.h"
#include "catalog/images.h"
#include "infer/batch.h"
#include "infer/static_generate.h"
#include "util/fs.h"

using namespace tailor;
namespace P = torch::autograd::profiler;

static void profile(const char* region, int reps, const std::function<void()>& fn) {
  fn();  // warm
  sync();
  P::ProfilerConfig cfg(P::ProfilerState::KINETO);
  std::set<P::ActivityType> acts{P::ActivityType::CPU, P::ActivityType::CUDA};
  P::prepareProfiler(cfg, acts);
  P::enableProfiler(cfg, acts);
  double t0 = now();
  for (int i = 0; i < reps; ++i) fn();
  sync();
  double wall = (now() - t0) / reps;
  auto res = P::disableProfiler();
  std::map<std::string, std::pair<double, int64_t>> by;  // name -> (ns, count)
  double total = 0;
  for (const auto& e : res->events()) {
    if (e.deviceType() != c10::DeviceType::CUDA || e.activityType() != 5 /* kernel */) continue;
    auto& x = by[e.name()];
    x.first += double(e.durationNs());
    x.second += 1;
    total += double(e.durationNs());
  }
  std::vector<std::pair<double, std::string>> top;
  for (auto& [n, v] : by) top.emplace_back(v.first, n);
  std::sort(top.rbegin(), top.rend());
  std::printf("== %s: wall %.2f ms, kernels %.2f ms (%lld launches) per repetition\n", region, wall * 1e3,
              total / reps / 1e6, (long long)(res->events().size() / reps));
  for (size_t i = 0; i < top.size() && i < 22; ++i) {
    std::string n = top[i].second.substr(0, 110);
    std::printf("  %7.3f ms %5.1f%%  x%-5lld %s\n", top[i].first / reps / 1e6, 100 * top[i].first / total,
                (long long)(by[top[i].second].second / reps), n.c_str());
  }
  std::fflush(stdout);
}

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: tailor_gpu_profile MODEL_DIR IMAGE.jpg\n");
    return 2;
  }
  try {
    {
      // The ViT-g fc1 at batch 128 three ways: does the bias land in the GEMM's epilogue?
      auto o = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
      Tensor x = torch::randn({128, 257, 1408}, o), w = torch::randn({6144, 1408}, o) * 0.02, bias = torch::randn({6144}, o);
      profile("F::linear, [128,257,1408] x [6144,1408]^T + bias", 5, [&] { torch::nn::functional::linear(x, w, bias); });
      profile("at::addmm on the flattened rows", 5, [&] { at::addmm(bias, x.view({-1, 1408}), w.t()); });
      profile("at::mm alone (no bias)", 5, [&] { at::mm(x.view({-1, 1408}), w.t()); });
    }
    Blip2Bundle b = load_model_dir(argv[1], torch::Device(torch::kCUDA), torch::kBFloat16);
    {
      TrainStep s = make_train_step(b, 128, /*cache=*/true, 1);
      profile("image side (vision + Q-Former), batch 128", 3, [&] { s.image_side(); });
      profile("T5 LoRA train step from cached features, batch 128 (eager)", 3, [&] { s.run(); });
    }
    c10::cuda::CUDACachingAllocator::emptyCache();
    b.model->eval();
    StaticGreedyGenerator fast(b.model, true);
    std::vector<uint8_t> bytes = read_file_bytes(argv[2]);
    GenerationOptions g;
    g.max_new_tokens = 10;
    g.min_new_tokens = 10;
    for (int64_t B : {1, 128}) {
      std::vector<ImageRGB> imgs(B, decode_image(bytes));
      std::vector<const ImageRGB*> ptrs;
      for (auto& i : imgs) ptrs.push_back(&i);
      Tensor px = pixel_batch(ptrs, b.image_cfg).cuda();
      TokenBatch tb = prompt_batch(*b.tokenizer, std::vector<std::string>(B, "Question: What is the sleeve length of the shirt in this picture? Answer: "), b.cfg);
      std::vector<int64_t> rows(B);
      for (int64_t i = 0; i < B; ++i) rows[i] = i;
      std::string name = "graphed generation (image side, encoder, 10 steps), batch " + std::to_string(B);
      profile(name.c_str(), 3, [&] { fast.generate(px, rows, tb.ids, tb.mask, g); });
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tailor_gpu_profile: %s\n", e.what());
    return 1;
  }
  return 0;
}
