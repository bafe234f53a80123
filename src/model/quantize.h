// Weight-only quantization of the frozen Linear layers (--quantize): int8 with one scale per output
// channel, and NF4 (QLoRA's 4-bit NormalFloat) with one absmax per group of input features.
// The matmul dequantizes the weight next to the GEMM, inside a custom autograd function whose
// backward dequantizes again instead of keeping a dense copy: memory holds the quantized bytes only.
#pragma once
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace tailor {

enum class QuantFormat : uint8_t { kNone, kInt8, kNf4 };

QuantFormat parse_quant_format(const std::string& name, const std::string& where);  // none, int8, nf4
const char* quant_format_name(QuantFormat f);

// The 16 NF4 code values, ascending, from QLoRA's definition (Dettmers et al. 2023, section 3 and
// bitsandbytes' create_normal_map): the normal distribution's quantiles at 8 evenly spaced
// probabilities from 0.9677083 down to 0.5 (exclusive) for the positive half, 7 for the negative
// half, and an exact zero; divided by the largest so that they span [-1, 1].
const std::array<float, 16>& nf4_code_values();

// A quantized [out, in] weight. int8: data int8 [out, in], scale float32 [out] (w ~ data * scale).
// nf4, as bitsandbytes blocks it: the weight flattened row by row into groups of `group` values (the
// last one padded with zeros); data uint8 [groups * group / 2], two 4-bit codes per byte, the earlier
// value in the high nibble; scale float32 [groups], each group's absmax (w ~ code_value * absmax).
struct QuantizedWeight {
  torch::Tensor data, scale;
};

// The [256, 2] table that turns a packed NF4 byte into its two values, in dtype on dev, made once
// per (device, dtype). Touch it before a CUDA graph captures an NF4 matmul: a capture can't copy
// from the host (load_model_dir does).
const torch::Tensor& nf4_pair_table(const torch::Device& dev, torch::ScalarType dtype);

int64_t nf4_groups(int64_t out, int64_t in, int64_t group);

// Quantizes w (any float dtype, any device; computed in float32 on w's device). nf4's `group` must
// be even; throws Error naming `where` otherwise.
QuantizedWeight quantize_weight(const torch::Tensor& w, QuantFormat f, int64_t group, const std::string& where);
// The dense [out, in] weight in `dtype`, on data's device.
torch::Tensor dequantize_weight(const torch::Tensor& data, const torch::Tensor& scale, QuantFormat f, int64_t group,
                                int64_t out, int64_t in, torch::ScalarType dtype);

// y = x W^T + bias with W quantized, dequantized in x's dtype. Autograd flows to x only (the weight
// and bias are frozen); backward dequantizes W again.
torch::Tensor quantized_linear(const torch::Tensor& x, const torch::Tensor& data, const torch::Tensor& scale,
                               const torch::Tensor& bias, QuantFormat f, int64_t group, int64_t out_features);

}  // namespace tailor
