#include "app/quantize_run.h"

#include <cstdio>
#include <filesystem>

#include "model/model_dir.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "util/error.h"
#include "util/fs.h"

namespace tailor {

namespace {

int64_t weight_bytes(const std::string& dir) {
  int64_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".safetensors") n += static_cast<int64_t>(e.file_size());
  return n;
}

}  // namespace

void run_quantize(const QuantizeOptions& o) {
  if (o.format != "int8" && o.format != "nf4") throw Error("--format must be int8 or nf4");
  if (std::filesystem::absolute(o.model_dir) == std::filesystem::absolute(o.out_dir))
    throw Error("--out must be another directory than --model (the original weights are what LoRA training merges into)");
  torch::Device dev(o.device);
  if (dev.is_cuda() && !torch::cuda::is_available()) throw Error("--device cuda: no CUDA device is available");
  const torch::ScalarType original = checkpoint_float_dtype(Checkpoint::open(o.model_dir));
  Blip2Bundle b = load_model_dir(o.model_dir, dev, torch::kFloat, o.format);
  save_model_dir(o.out_dir, b, original);
  std::printf("%s: frozen Linear weights as %s, the rest as in %s; weights %.1f MiB -> %.1f MiB\n", o.out_dir.c_str(),
              o.format.c_str(), o.model_dir.c_str(), weight_bytes(o.model_dir) / 1048576.0, weight_bytes(o.out_dir) / 1048576.0);
}

}  // namespace tailor
