// Building blocks shared by the ViT, Q-Former and T5: a Linear that can carry a LoRA adapter with
// PEFT's parameter names, activations by HF name, and attention (SDPA on libtorch >= 2).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "model/quantize.h"

namespace tailor {

// While one is alive on this thread, Linear layers leave their weight and bias uninitialised: for a
// model whose every weight the strict loader overwrites next (load_model_dir). Drawing the default
// initial values first (Kaiming-uniform on one thread) cost seconds for blip2-flan-t5-xl's 3.9 B.
class LinearInitSkipped {
 public:
  LinearInitSkipped();
  ~LinearInitSkipped();
  LinearInitSkipped(const LinearInitSkipped&) = delete;
  LinearInitSkipped& operator=(const LinearInitSkipped&) = delete;

 private:
  bool before_;
};

// nn.Linear with HF's parameter names (weight [out, in], bias [out]) plus an optional LoRA adapter
// registered as lora_A / lora_B (PEFT's names): y = x W^T + b + scaling * B(A(dropout(x))).
struct LinearImpl : torch::nn::Module {
  LinearImpl(int64_t in_features, int64_t out_features, bool with_bias);
  torch::Tensor forward(const torch::Tensor& x);

  // A: Kaiming-uniform (a = sqrt(5)), B: zeros, scaling = alpha / r, as PEFT does.
  void attach_lora(int64_t r, double alpha, double dropout);
  bool has_lora() const { return !lora_A.is_empty(); }
  // Folds scaling * B A into weight and removes the adapter. Refused on a quantized weight (the merged
  // model is written from the original weights: train/trainer.cpp).
  void merge_lora();

  // Replaces the dense weight by its quantized form (model/quantize.h): `weight` then holds the int8
  // or packed NF4 codes and `weight_scale` the scales, both frozen; the matmul runs in compute_dtype.
  void quantize(QuantFormat f, int64_t group, torch::ScalarType compute_dtype, const torch::Device& dev,
                const std::string& where);
  // The same storage, empty, for a model saved quantized that load_weights fills next.
  void make_quantized_storage(QuantFormat f, int64_t group, torch::ScalarType compute_dtype);
  bool is_quantized() const { return quant != QuantFormat::kNone; }
  // The dtype the layer computes in: the weight's, or the dequantized weight's.
  torch::ScalarType dtype() const { return is_quantized() ? compute_dtype : weight.scalar_type(); }

  int64_t in_features, out_features;
  torch::Tensor weight, bias;
  torch::Tensor weight_scale;  // quantized only
  QuantFormat quant = QuantFormat::kNone;
  int64_t quant_group = 0;
  torch::ScalarType compute_dtype = torch::kFloat;
  torch::nn::Linear lora_A{nullptr}, lora_B{nullptr};
  double lora_scaling = 0.0;
  double lora_dropout = 0.0;
};
TORCH_MODULE(Linear);

// LayerNorm with HF names (weight, bias) and eps from the config.
struct LayerNormImpl : torch::nn::Module {
  LayerNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias;
  double eps;
};
TORCH_MODULE(LayerNorm);

// Dropout as the fused kernel applies it (at::native_dropout, which F::dropout runs on a GPU), with
// its mask recorded, or replayed, while a DropoutTape is active on this thread: a checkpointed
// block's recomputation must drop exactly what its first pass dropped.
torch::Tensor dropout(const torch::Tensor& x, double p, bool training);

class DropoutTape {
 public:
  // replay false: each dropout's mask is appended to `masks`; true: taken from it, in order.
  DropoutTape(std::vector<torch::Tensor>* masks, bool replay);
  ~DropoutTape();
  DropoutTape(const DropoutTape&) = delete;
  DropoutTape& operator=(const DropoutTape&) = delete;
  static DropoutTape* active();
  std::vector<torch::Tensor>* masks;
  bool replay;
  size_t next = 0;

 private:
  DropoutTape* before_;
};

// Gradient checkpointing (HF's gradient_checkpointing, torch.utils.checkpoint's reentrant form):
// fn(inputs) runs without keeping its activations, and again in backward, replaying its dropout
// masks, to get the gradients of its inputs and of the parameters it uses. `inputs` are one or two
// tensors (a block's hidden states, and the decoder's encoder output); fn must outlive the backward
// pass (the caller keeps it until its next forward). Parameters reach fn only through its captures,
// so they must be leaves (LoRA's adapters); other captured tensors must not need gradients.
using CheckpointedFn = std::function<torch::Tensor(const std::vector<torch::Tensor>&)>;
torch::Tensor checkpointed(const CheckpointedFn& fn, const std::vector<torch::Tensor>& inputs);

// "gelu" (exact erf), "gelu_new" / "gelu_pytorch_tanh" (tanh form), "relu", "silu".
torch::Tensor activation(const torch::Tensor& x, const std::string& name);

// softmax(q k^T * scale + bias) v for q [B,H,T,d], k/v [B,H,S,d], bias broadcastable to [B,H,T,S]
// (undefined = none). Uses the fused kernel where libtorch has it.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& bias, double scale, double dropout_p, bool training);

}  // namespace tailor
