#include "train/optimizer.h"

#include <map>

#include "util/error.h"

namespace tailor {

using torch::Tensor;

FlatAdam::FlatAdam(const std::vector<std::vector<Tensor>>& groups, const FlatAdamOptions& o) : o_(o) {
  torch::NoGradGuard ng;
  torch::Device dev(torch::kCPU);
  bool have_device = false;
  for (size_t g = 0; g < groups.size(); ++g) {
    // One buffer per dtype within the group, parameters in their given order.
    std::map<torch::ScalarType, std::vector<Tensor>> by_dtype;
    for (const Tensor& p : groups[g]) {
      if (!have_device) dev = p.device(), have_device = true;
      if (p.device() != dev) throw Error("optimizer: parameters on more than one device");
      by_dtype[p.scalar_type()].push_back(p);
    }
    for (auto& [dtype, params] : by_dtype) {
      int64_t total = 0;
      for (const Tensor& p : params) total += p.numel();
      auto opts = torch::TensorOptions().dtype(dtype).device(dev);
      Buffer b{g, torch::empty({total}, opts), torch::zeros({total}, opts), torch::zeros({total}, opts),
               torch::zeros({total}, opts)};
      int64_t off = 0;
      for (const Tensor& p : params) {
        int64_t n = p.numel();
        Tensor view = b.param.narrow(0, off, n).view(p.sizes());
        view.copy_(p);
        Tensor leaf = p;  // the same parameter: its storage becomes the buffer's
        leaf.set_data(view);
        leaf.mutable_grad() = b.grad.narrow(0, off, n).view(p.sizes());
        grads_.emplace_back(leaf, leaf.grad());
        off += n;
      }
      buffers_.push_back(b);
    }
  }
  auto d64 = torch::TensorOptions().dtype(torch::kDouble).device(dev);
  for (size_t g = 0; g < groups.size(); ++g) lr_.push_back(torch::full({}, o.lr, d64));
  step_ = torch::zeros({}, d64);
}

void FlatAdam::zero_grad() {
  for (auto& [p, g] : grads_)
    if (!p.grad().defined() || !p.grad().is_same(g)) p.mutable_grad() = g;
  for (Buffer& b : buffers_) b.grad.zero_();
}

Tensor FlatAdam::clip_grad_norm(double max_norm) {
  torch::NoGradGuard ng;
  if (buffers_.empty()) return step_.new_zeros({});
  std::vector<Tensor> norms;
  for (Buffer& b : buffers_) norms.push_back(b.grad.norm(2).to(torch::kFloat));
  Tensor total = torch::stack(norms).norm(2);
  Tensor coef = torch::clamp_max(max_norm / (total + 1e-6), 1.0);
  for (Buffer& b : buffers_) b.grad.mul_(coef);
  return total;
}

void FlatAdam::set_lr(size_t group, double lr) {
  if (group >= lr_.size()) throw Error("optimizer: no group " + std::to_string(group));
  lr_[group].fill_(lr);
}

void FlatAdam::step() {
  torch::NoGradGuard ng;
  step_.add_(1);
  // Bias corrections as torch.optim computes them (in double), but on the device.
  Tensor bc1 = 1.0 - torch::pow(o_.beta1, step_);
  Tensor bc2_sqrt = (1.0 - torch::pow(o_.beta2, step_)).sqrt();
  for (Buffer& b : buffers_) {
    const Tensor& lr = lr_[b.group];
    Tensor grad = b.grad;
    if (o_.weight_decay != 0) {
      if (o_.decoupled) b.param.mul_(1.0 - lr * o_.weight_decay);
      else grad = grad.add(b.param, o_.weight_decay);
    }
    b.exp_avg.mul_(o_.beta1).add_(grad, 1.0 - o_.beta1);
    b.exp_avg_sq.mul_(o_.beta2).addcmul_(grad, grad, 1.0 - o_.beta2);
    Tensor denom = (b.exp_avg_sq.sqrt() / bc2_sqrt).add_(o_.eps);
    b.param.sub_(b.exp_avg * (lr / bc1) / denom);  // = addcdiv_(exp_avg, denom, -lr / bc1)
  }
}

std::vector<Tensor> FlatAdam::gradient_buffers() const {
  std::vector<Tensor> out;
  for (const Buffer& b : buffers_) out.push_back(b.grad);
  return out;
}

int64_t FlatAdam::steps_done() const { return static_cast<int64_t>(step_.item<double>()); }

std::vector<std::pair<std::string, Tensor>> FlatAdam::state() const {
  std::vector<std::pair<std::string, Tensor>> out;
  out.emplace_back("step", step_.to(torch::kCPU, torch::kFloat).reshape({1}));
  for (size_t i = 0; i < buffers_.size(); ++i) {
    std::string p = "buffer." + std::to_string(i) + ".";
    out.emplace_back(p + "exp_avg", buffers_[i].exp_avg.to(torch::kCPU));
    out.emplace_back(p + "exp_avg_sq", buffers_[i].exp_avg_sq.to(torch::kCPU));
  }
  return out;
}

void FlatAdam::load_state(const std::vector<std::pair<std::string, Tensor>>& named, const std::string& where) {
  std::map<std::string, Tensor> by_name(named.begin(), named.end());
  auto get = [&](const std::string& name, int64_t numel) {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw Error(where + ": optimizer state lacks " + name);
    if (it->second.numel() != numel)
      throw Error(where + ": optimizer state " + name + " has " + std::to_string(it->second.numel()) +
                  " values, the model " + std::to_string(numel));
    return it->second.reshape({numel});
  };
  if (by_name.size() != 1 + 2 * buffers_.size())
    throw Error(where + ": optimizer state has " + std::to_string(by_name.size()) + " tensors, expected " +
                std::to_string(1 + 2 * buffers_.size()));
  torch::NoGradGuard ng;
  step_.copy_(get("step", 1)[0]);
  for (size_t i = 0; i < buffers_.size(); ++i) {
    std::string p = "buffer." + std::to_string(i) + ".";
    buffers_[i].exp_avg.copy_(get(p + "exp_avg", buffers_[i].exp_avg.numel()));
    buffers_[i].exp_avg_sq.copy_(get(p + "exp_avg_sq", buffers_[i].exp_avg_sq.numel()));
  }
}

}  // namespace tailor
