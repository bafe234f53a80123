#include "model/layers.h"

#include <torch/csrc/autograd/custom_function.h>
#include <torch/version.h>

#include <cmath>

#include "util/error.h"

namespace tailor {

namespace {
thread_local bool linear_init_skipped = false;
}

LinearInitSkipped::LinearInitSkipped() : before_(linear_init_skipped) { linear_init_skipped = true; }
LinearInitSkipped::~LinearInitSkipped() { linear_init_skipped = before_; }

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias) : in_features(in), out_features(out) {
  weight = register_parameter("weight", torch::empty({out, in}));
  if (with_bias) bias = register_parameter("bias", torch::empty({out}));
  if (linear_init_skipped) return;
  // Default init as torch.nn.Linear (Kaiming-uniform a=sqrt(5)); real weights are loaded over it.
  torch::NoGradGuard ng;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (with_bias) {
    double bound = 1.0 / std::sqrt(static_cast<double>(in));
    bias.uniform_(-bound, bound);
  }
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  torch::Tensor y;
  if (is_quantized()) {
    y = quantized_linear(x.to(compute_dtype), weight, weight_scale, bias, quant, quant_group, out_features);
  } else if (bias.defined() && x.is_cuda() && x.dim() > 2 && x.is_contiguous() && x.scalar_type() == weight.scalar_type()) {
    // On a GPU: one addmm over the flattened rows, so cuBLASLt can add the bias in the GEMM's
    // epilogue (the ViT-g's four biased linears at batch 128 were measured as GEMM + a separate
    // broadcast add, 48 of 183 ms). The same arithmetic as linear().
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = out_features;
    y = at::addmm(bias, x.reshape({-1, in_features}), weight.t()).view(shape);
  } else {
    y = torch::nn::functional::linear(x, weight, bias);
  }
  if (has_lora()) {
    torch::Tensor h = x;
    if (is_training() && lora_dropout > 0) h = tailor::dropout(h, lora_dropout, true);
    y = y + lora_B->forward(lora_A->forward(h.to(lora_A->weight.dtype()))).to(y.dtype()) * lora_scaling;
  }
  return y;
}

void LinearImpl::attach_lora(int64_t r, double alpha, double dropout) {
  auto opts = torch::nn::LinearOptions(in_features, r).bias(false);
  lora_A = register_module("lora_A", torch::nn::Linear(opts));
  lora_B = register_module("lora_B", torch::nn::Linear(torch::nn::LinearOptions(r, out_features).bias(false)));
  torch::NoGradGuard ng;
  torch::nn::init::kaiming_uniform_(lora_A->weight, std::sqrt(5.0));
  lora_B->weight.zero_();
  lora_A->to(weight.device());
  lora_B->to(weight.device());
  lora_scaling = alpha / static_cast<double>(r);
  lora_dropout = dropout;
}

void LinearImpl::merge_lora() {
  if (!has_lora()) return;
  if (is_quantized())
    throw Error("merging a LoRA adapter into a quantized weight would round it again; merge into the original weights");
  torch::NoGradGuard ng;
  torch::Tensor delta = torch::matmul(lora_B->weight.to(torch::kFloat), lora_A->weight.to(torch::kFloat)) * lora_scaling;
  weight.copy_((weight.to(torch::kFloat) + delta).to(weight.dtype()));
  unregister_module("lora_A");
  unregister_module("lora_B");
  lora_A = nullptr;
  lora_B = nullptr;
}

void LinearImpl::quantize(QuantFormat f, int64_t group, torch::ScalarType compute, const torch::Device& dev,
                          const std::string& where) {
  if (has_lora()) throw Error(where + ": quantize before attaching LoRA adapters");
  QuantizedWeight q = quantize_weight(weight.detach().to(dev), f, group, where);
  weight.set_requires_grad(false);
  weight.set_data(q.data);
  weight_scale = register_parameter("weight_scale", q.scale, /*requires_grad=*/false);
  quant = f;
  quant_group = group;
  compute_dtype = compute;
}

void LinearImpl::make_quantized_storage(QuantFormat f, int64_t group, torch::ScalarType compute) {
  weight.set_requires_grad(false);
  if (f == QuantFormat::kInt8) {
    weight.set_data(torch::empty({out_features, in_features}, torch::kChar));
    weight_scale = register_parameter("weight_scale", torch::empty({out_features}), false);
  } else {
    const int64_t groups = nf4_groups(out_features, in_features, group);
    weight.set_data(torch::empty({groups * group / 2}, torch::kByte));
    weight_scale = register_parameter("weight_scale", torch::empty({groups}), false);
  }
  quant = f;
  quant_group = group;
  compute_dtype = compute;
}

LayerNormImpl::LayerNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}));
  bias = register_parameter("bias", torch::zeros({dim}));
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& x) {
  return torch::layer_norm(x, {weight.size(0)}, weight, bias, eps);
}

namespace {
thread_local DropoutTape* active_tape = nullptr;
}

DropoutTape::DropoutTape(std::vector<torch::Tensor>* m, bool r) : masks(m), replay(r), before_(active_tape) {
  active_tape = this;
}
DropoutTape::~DropoutTape() { active_tape = before_; }
DropoutTape* DropoutTape::active() { return active_tape; }

torch::Tensor dropout(const torch::Tensor& x, double p, bool training) {
  if (!training || p <= 0) return x;
  DropoutTape* tape = active_tape;
  if (tape && tape->replay) {
    if (tape->next >= tape->masks->size()) throw Error("internal: a checkpointed block dropped more than it recorded");
    const torch::Tensor& mask = (*tape->masks)[tape->next++];
    return x * mask * (1.0 / (1.0 - p));  // native_dropout's arithmetic: the mask is exact, one rounding
  }
  auto out = at::native_dropout(x, p, true);
  if (tape) tape->masks->push_back(std::get<1>(out));
  return std::get<0>(out);
}

namespace {

// Two inputs always (an encoder block passes its hidden states twice and uses the first): autograd's
// custom functions take no undefined tensors.
struct CheckpointFunction : torch::autograd::Function<CheckpointFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& a, const torch::Tensor& b,
                               int64_t fn_address, bool two_inputs) {
    const auto* fn = reinterpret_cast<const CheckpointedFn*>(fn_address);
    std::vector<torch::Tensor> masks;
    torch::Tensor out;
    {
      DropoutTape tape(&masks, /*replay=*/false);
      out = two_inputs ? (*fn)({a, b}) : (*fn)({a});
    }
    ctx->save_for_backward({a, b});
    ctx->saved_data["masks"] = masks;
    ctx->saved_data["fn"] = fn_address;
    ctx->saved_data["two"] = two_inputs;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const bool two = ctx->saved_data["two"].toBool();
    const auto* fn = reinterpret_cast<const CheckpointedFn*>(ctx->saved_data["fn"].toInt());
    std::vector<torch::Tensor> masks = ctx->saved_data["masks"].toTensorVector();
    torch::Tensor a = saved[0].detach().requires_grad_(true);
    torch::Tensor b = two ? saved[1].detach().requires_grad_(true) : torch::Tensor();
    torch::Tensor out;
    {
      torch::AutoGradMode grad_on(true);
      DropoutTape tape(&masks, /*replay=*/true);
      out = two ? (*fn)({a, b}) : (*fn)({a});
      if (tape.next != masks.size()) throw Error("internal: a checkpointed block dropped less than it recorded");
    }
    // Reentrant, as torch.utils.checkpoint's default: gradients reach the adapters' .grad here.
    torch::autograd::backward({out}, {grads[0]});
    return {a.grad(), two ? b.grad() : torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor checkpointed(const CheckpointedFn& fn, const std::vector<torch::Tensor>& inputs) {
  if (inputs.empty() || inputs.size() > 2) throw Error("internal: checkpointed() takes one or two inputs");
  // An output only gets a backward node when an input needs a gradient; the first block's input
  // (frozen embeddings) doesn't, but its adapters do (the reason HF's PEFT calls
  // enable_input_require_grads).
  torch::Tensor a = inputs[0].requires_grad() ? inputs[0] : inputs[0].detach().requires_grad_(true);
  const bool two = inputs.size() == 2;
  return CheckpointFunction::apply(a, two ? inputs[1] : a, reinterpret_cast<int64_t>(&fn), two);
}

torch::Tensor activation(const torch::Tensor& x, const std::string& name) {
  if (name == "gelu") return torch::gelu(x);
  if (name == "gelu_new" || name == "gelu_pytorch_tanh") {
#if TORCH_VERSION_MAJOR >= 2 || (TORCH_VERSION_MAJOR == 1 && TORCH_VERSION_MINOR >= 12)
    return torch::gelu(x, "tanh");
#else
    return 0.5 * x * (1.0 + torch::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * torch::pow(x, 3.0))));
#endif
  }
  if (name == "relu") return torch::relu(x);
  if (name == "silu") return torch::silu(x);
  TORCH_CHECK(false, "unknown activation ", name);
}

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& bias, double scale, double dropout_p, bool training) {
  double p = training ? dropout_p : 0.0;
#if TORCH_VERSION_MAJOR >= 2
  // The fused kernel draws its own dropout: a recorded block (DropoutTape) takes the explicit path.
  if (q.is_cuda() && (p == 0 || !DropoutTape::active())) {
    c10::optional<torch::Tensor> mask;  // an undefined tensor would count as a mask
    if (bias.defined()) mask = bias.to(q.dtype());
    return at::scaled_dot_product_attention(q, k, v, mask, p, false, scale);
  }
#endif
  torch::Tensor scores = torch::matmul(q, k.transpose(-1, -2));
  if (scale != 1.0) scores = scores * scale;
  if (bias.defined()) scores = scores + bias;
  // Softmax in the input dtype, as HF's eager attention (transformers 5.x) for ViT, Q-Former and T5.
  torch::Tensor probs = torch::softmax(scores, -1);
  if (p > 0) probs = tailor::dropout(probs, p, true);
  return torch::matmul(probs, v);
}

}  // namespace tailor
