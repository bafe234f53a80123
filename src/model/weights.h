// One strict loader and one writer for module trees whose parameter names are checkpoint keys.
#pragma once
#include <torch/torch.h>

#include <string>

#include "model/safetensors.h"
#include "model/t5.h"

namespace tailor {

torch::Tensor tensor_from_view(const TensorView& v);  // a copy, in the view's dtype, on the CPU

// T5's tie rule as transformers 5.x applies it on load (PreTrainedModel.tie_weights with the checkpoint's
// keys; T5's config always ties): for each copy of `shared` in the order lm_head, encoder.embed_tokens,
// decoder.embed_tokens, a copy stored with values other than `shared`'s stays a tensor of its own; a copy
// stored equal to `shared`, or not stored, is `shared`. When `shared` itself is not stored, the first
// stored copy in that order takes its place. `prefix` is the language model's key prefix.
struct T5Ties {
  T5Untied untied;
  std::string shared_key;  // the checkpoint key `shared` loads from; empty when no copy is stored
};
T5Ties resolve_t5_ties(const Checkpoint& ckpt, const std::string& prefix = "language_model.");

// Copies every parameter of `model` from `ckpt` under NoGradGuard, converting dtype and checking
// shapes. Fails once, listing every missing, unexpected and mis-shaped tensor. The known exceptions
// (BLIP-2 / T5 checkpoints in the wild) are handled in one table in weights.cpp; `model` must have the
// untied copies resolve_t5_ties finds (a copy the checkpoint keeps apart but the model ties is refused,
// never dropped). Parameters whose name contains "lora_" (adapters) are not expected in a base checkpoint.
void load_weights(torch::nn::Module& model, const Checkpoint& ckpt);

// The dtype the checkpoint stores its weights in: that of its largest floating-point tensor.
torch::ScalarType checkpoint_float_dtype(const Checkpoint& ckpt);

// Writes every parameter (adapters included unless skip_lora) as safetensors in HF's layout.
void save_weights(const std::string& dir, torch::nn::Module& model, torch::ScalarType dtype, bool skip_lora = true);

}  // namespace tailor
