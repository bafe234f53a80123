#include "model/quantize.h"

#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <utility>

#include "util/error.h"

namespace tailor {

QuantFormat parse_quant_format(const std::string& name, const std::string& where) {
  if (name == "none") return QuantFormat::kNone;
  if (name == "int8") return QuantFormat::kInt8;
  if (name == "nf4") return QuantFormat::kNf4;
  throw Error(where + ": unknown weight format \"" + name + "\" (use none, int8 or nf4)");
}

const char* quant_format_name(QuantFormat f) {
  switch (f) {
    case QuantFormat::kInt8: return "int8";
    case QuantFormat::kNf4: return "nf4";
    default: return "none";
  }
}

namespace {

// The standard normal's quantile function, by bisection on its CDF 0.5 erfc(-x / sqrt 2): 200
// halvings of [-40, 40] reach double precision.
double normal_quantile(double p) {
  double lo = -40, hi = 40;
  for (int i = 0; i < 200; ++i) {
    double mid = 0.5 * (lo + hi);
    if (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

std::array<float, 16> make_nf4_code_values() {
  // QLoRA's offset, the probability of the outermost code: the mean of 1 - 1/(2*15) and 1 - 1/(2*16),
  // 0.9677083 to the 7 digits bitsandbytes uses. The evenly spaced probabilities are float32 sums, as
  // torch.linspace makes them there.
  const float offset = 0.9677083f;
  std::vector<double> v;
  for (int i = 0; i < 8; ++i) {  // linspace(offset, 0.5, 9) without its last point
    float p = offset + static_cast<float>(i) * ((0.5f - offset) / 8.0f);
    v.push_back(normal_quantile(p));
  }
  for (int i = 0; i < 7; ++i) {  // linspace(offset, 0.5, 8) without its last point, negated
    float p = offset + static_cast<float>(i) * ((0.5f - offset) / 7.0f);
    v.push_back(-normal_quantile(p));
  }
  v.push_back(0.0);
  std::sort(v.begin(), v.end());
  double top = v.back();
  std::array<float, 16> out{};
  for (size_t i = 0; i < 16; ++i) out[i] = static_cast<float>(v[i] / top);
  return out;
}

}  // namespace

// Entry b holds the values of byte b's two codes (high nibble first): one gather turns packed bytes
// into weights.
const torch::Tensor& nf4_pair_table(const torch::Device& dev, torch::ScalarType dtype) {
  static std::mutex mu;
  static std::map<std::pair<std::string, int>, torch::Tensor> tables;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_pair(dev.str(), static_cast<int>(dtype));
  auto it = tables.find(key);
  if (it != tables.end()) return it->second;
  const auto& codes = nf4_code_values();
  torch::Tensor t = torch::empty({256, 2}, torch::kFloat);
  auto a = t.accessor<float, 2>();
  for (int b = 0; b < 256; ++b) {
    a[b][0] = codes[b >> 4];
    a[b][1] = codes[b & 15];
  }
  return tables.emplace(key, t.to(dev, dtype)).first->second;
}

namespace {

// y = x W^T, W dequantized here and again in backward (never kept): the frozen weight's memory is
// its quantized bytes whatever autograd holds on to.
struct QuantizedMatmulFunction : torch::autograd::Function<QuantizedMatmulFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& data,
                               const torch::Tensor& scale, int64_t format, int64_t group, int64_t out) {
    ctx->save_for_backward({data, scale});
    ctx->saved_data["format"] = format;
    ctx->saved_data["group"] = group;
    ctx->saved_data["out"] = out;
    ctx->saved_data["in"] = x.size(-1);
    const QuantFormat f = static_cast<QuantFormat>(format);
    torch::Tensor y;
    y = torch::nn::functional::linear(x, dequantize_weight(data, scale, f, group, out, x.size(-1), x.scalar_type()));
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const torch::Tensor& data = saved[0];
    const torch::Tensor& scale = saved[1];
    const QuantFormat f = static_cast<QuantFormat>(ctx->saved_data["format"].toInt());
    const int64_t group = ctx->saved_data["group"].toInt();
    const int64_t out = ctx->saved_data["out"].toInt(), in = ctx->saved_data["in"].toInt();
    const torch::Tensor& g = grads[0];
    torch::Tensor gx;
    gx = torch::matmul(g, dequantize_weight(data, scale, f, group, out, in, g.scalar_type()));
    return {gx, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

const std::array<float, 16>& nf4_code_values() {
  static const std::array<float, 16> values = make_nf4_code_values();
  return values;
}

QuantizedWeight quantize_weight(const torch::Tensor& w, QuantFormat f, int64_t group, const std::string& where) {
  if (w.dim() != 2) throw Error(where + ": only a 2-D weight can be quantized");
  torch::NoGradGuard ng;
  const int64_t out = w.size(0), in = w.size(1);
  torch::Tensor wf = w.to(torch::kFloat);
  QuantizedWeight q;
  if (f == QuantFormat::kInt8) {
    torch::Tensor absmax = wf.abs().amax(1);
    q.scale = absmax / 127.0;
    q.data = torch::round(wf / q.scale.clamp_min(1e-30).unsqueeze(1)).clamp(-127, 127).to(torch::kChar);
    return q;
  }
  if (f != QuantFormat::kNf4) throw Error(where + ": nothing to quantize to");
  if (group < 2 || group % 2 != 0) throw Error(where + ": NF4 groups of " + std::to_string(group) + " (must be even)");
  const int64_t groups = nf4_groups(out, in, group);
  torch::Tensor flat = wf.reshape({-1});
  if (groups * group > out * in) flat = torch::cat({flat, torch::zeros({groups * group - out * in}, flat.options())});
  torch::Tensor g = flat.view({groups, group});
  q.scale = g.abs().amax(1);  // [groups]
  torch::Tensor normalized = g / q.scale.clamp_min(1e-30).unsqueeze(1);
  // The nearest code: count the midpoints between neighbouring codes that lie below the value.
  const auto& codes = nf4_code_values();
  std::vector<float> mid(15);
  for (size_t i = 0; i < 15; ++i) mid[i] = 0.5f * (codes[i] + codes[i + 1]);
  torch::Tensor bounds = torch::tensor(mid, torch::kFloat).to(w.device());
  torch::Tensor idx = torch::bucketize(normalized, bounds).to(torch::kByte).view({-1, 2});  // codes 0..15
  q.data = (idx.select(1, 0) * 16 + idx.select(1, 1)).to(torch::kByte).contiguous();
  return q;
}

int64_t nf4_groups(int64_t out, int64_t in, int64_t group) { return (out * in + group - 1) / group; }

torch::Tensor dequantize_weight(const torch::Tensor& data, const torch::Tensor& scale, QuantFormat f, int64_t group,
                                int64_t out, int64_t in, torch::ScalarType dtype) {
  // int8: one kernel (codes times the scale in dtype, mixed-type multiply) instead of a float32
  // product and a cast; at blip2-flan-t5-xl's batch 32 the step is bound by these bytes.
  if (f == QuantFormat::kInt8) return data * scale.to(dtype).unsqueeze(1);
  const torch::Tensor& table = nf4_pair_table(data.device(), dtype);
  torch::Tensor w = table.index_select(0, data.to(torch::kInt)).view({scale.size(0), group});
  w = (w * scale.to(dtype).unsqueeze(1)).view({-1});
  if (w.size(0) != out * in) w = w.narrow(0, 0, out * in);
  return w.view({out, in});
}

torch::Tensor quantized_linear(const torch::Tensor& x, const torch::Tensor& data, const torch::Tensor& scale,
                               const torch::Tensor& bias, QuantFormat f, int64_t group, int64_t out_features) {
  torch::Tensor y = QuantizedMatmulFunction::apply(x, data, scale, static_cast<int64_t>(f), group, out_features);
  return bias.defined() ? y + bias.to(y.scalar_type()) : y;
}

}  // namespace tailor
