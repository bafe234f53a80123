// Loads a model directory (HF layout + tailor_task.json) as an Answerer on a device ("cpu", "cuda").
#pragma once
#include <memory>
#include <string>

#include "infer/answerer.h"

namespace tailor {

struct LoadOptions {
  std::string device = "cpu";
  std::string dtype = "auto";  // auto: bf16 on CUDA, f32 on CPU; or f32, bf16, f16
  std::string quantize = "auto";  // frozen weights: auto (as saved), none, int8, nf4 (model/quantize.h)
};

std::unique_ptr<Answerer> load_answerer(const std::string& model_dir, const LoadOptions& opts = {});

}  // namespace tailor
