// The learning-rate schedule of both training stages: linear warm-up over ceil(warmup_ratio * total)
// steps, then cosine decay to 0 at `total`.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace tailor {

inline double warmup_cosine_lr(double peak, double warmup_ratio, int64_t step, int64_t total) {
  int64_t warm = static_cast<int64_t>(std::ceil(warmup_ratio * static_cast<double>(total)));
  if (step < warm) return peak * static_cast<double>(step + 1) / static_cast<double>(warm);
  double progress = total > warm ? static_cast<double>(step - warm) / static_cast<double>(total - warm) : 1.0;
  return peak * 0.5 * (1.0 + std::cos(M_PI * std::min(1.0, progress)));
}

}  // namespace tailor
