// Adam / AdamW over flat buffers. Each group's parameters are packed into one contiguous tensor per
// dtype (the parameters become views of it) and their .grad are views of one gradient buffer, so
// zero_grad, the gradient-norm clip and a step are a handful of kernels whatever the number of
// tensors (LoRA r=8 on q,v of blip2-flan-t5-xl: 288 tensors; torch.optim runs ~10 kernels for each).
// The step count and the learning rates live on the parameters' device, so a step makes no host
// synchronisation and can be captured in a CUDA graph. The arithmetic is torch.optim's AdamW / Adam
// (no amsgrad); the state is saved and loaded as named tensors for checkpoints.
#pragma once
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace tailor {

struct FlatAdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool decoupled = true;  // AdamW (p -= lr * wd * p); false = Adam (grad += wd * p)
};

class FlatAdam {
 public:
  // groups[g]: the parameters of group g (each with its own learning rate, set_lr). Parameters must be
  // leaves without a gradient yet; they are moved into the flat buffers (values kept).
  FlatAdam(const std::vector<std::vector<torch::Tensor>>& groups, const FlatAdamOptions& o);

  // Also puts back any parameter's .grad that something else replaced or reset (another optimizer's
  // zero_grad sets them to none on libtorch 2), so gradients always land in the flat buffer.
  void zero_grad();
  // Scales all gradients so that their global L2 norm is at most max_norm (as
  // torch.nn.utils.clip_grad_norm_); returns that norm as a device scalar, without waiting for it.
  torch::Tensor clip_grad_norm(double max_norm);
  void set_lr(size_t group, double lr);
  void step();
  // The flat gradient buffers (every parameter's .grad is a view of one of them): a data-parallel
  // step sums these over the ranks, one collective per buffer.
  std::vector<torch::Tensor> gradient_buffers() const;

  int64_t steps_done() const;  // reads the device counter (synchronises)
  // Checkpoint state: "step" and, per buffer i, "buffer.i.exp_avg" / "buffer.i.exp_avg_sq" (copies on
  // the CPU in the parameters' dtype; the trainer's are float32). load_state checks every name and shape and says which one is wrong.
  std::vector<std::pair<std::string, torch::Tensor>> state() const;
  void load_state(const std::vector<std::pair<std::string, torch::Tensor>>& named, const std::string& where);

 private:
  struct Buffer {
    size_t group;
    torch::Tensor param, grad, exp_avg, exp_avg_sq;  // 1-D, same length and dtype
  };
  FlatAdamOptions o_;
  std::vector<Buffer> buffers_;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> grads_;  // (parameter, its view of a gradient buffer)
  std::vector<torch::Tensor> lr_;  // per group, float64 scalar on the device
  torch::Tensor step_;             // float64 scalar on the device
};

}  // namespace tailor
