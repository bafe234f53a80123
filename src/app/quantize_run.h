// `tailor quantize`: a model directory with its frozen Linear weights stored quantized (int8 or NF4,
// model/quantize.h), so eval, ask, serve and describe load it without quantizing again. The other
// tensors keep the checkpoint's precision.
#pragma once
#include <string>

namespace tailor {

struct QuantizeOptions {
  std::string model_dir, out_dir;
  std::string format = "nf4";   // int8 or nf4
  std::string device = "cpu";   // where the weights are quantized
};

void run_quantize(const QuantizeOptions& o);

}  // namespace tailor
