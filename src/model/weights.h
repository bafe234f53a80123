// One strict loader and one writer for module trees whose parameter names are checkpoint keys.
#pragma once
#include <torch/torch.h>

#include <string>

#include "model/safetensors.h"

namespace tailor {

torch::Tensor tensor_from_view(const TensorView& v);  // a copy, in the view's dtype, on the CPU

// Copies every parameter of `model` from `ckpt` under NoGradGuard, converting dtype and checking
// shapes. Fails once, listing every missing, unexpected and mis-shaped tensor. The known exceptions
// (BLIP-2 / T5 checkpoints in the wild) are handled in one table in weights.cpp. Parameters whose
// name contains "lora_" (adapters) are not expected in a base checkpoint.
void load_weights(torch::nn::Module& model, const Checkpoint& ckpt);

// Writes every parameter (adapters included unless skip_lora) as safetensors in HF's layout.
void save_weights(const std::string& dir, torch::nn::Module& model, torch::ScalarType dtype, bool skip_lora = true);

}  // namespace tailor
