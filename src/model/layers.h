// Building blocks shared by the ViT, Q-Former and T5: a Linear that can carry a LoRA adapter with
// PEFT's parameter names, activations by HF name, and attention (SDPA on libtorch >= 2).
#pragma once
#include <torch/torch.h>

#include <string>

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
  // Folds scaling * B A into weight and removes the adapter.
  void merge_lora();

  int64_t in_features, out_features;
  torch::Tensor weight, bias;
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

// "gelu" (exact erf), "gelu_new" / "gelu_pytorch_tanh" (tanh form), "relu", "silu".
torch::Tensor activation(const torch::Tensor& x, const std::string& name);

// softmax(q k^T * scale + bias) v for q [B,H,T,d], k/v [B,H,S,d], bias broadcastable to [B,H,T,S]
// (undefined = none). Uses the fused kernel where libtorch has it.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& bias, double scale, double dropout_p, bool training);

}  // namespace tailor
