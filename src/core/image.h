// A decoded photo as plain 8-bit RGB: the one image type every stage passes around (decoding and
// encoding live in catalog/images.h; the model's preprocessing in model/image_processor.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tailor {

struct ImageRGB {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // row-major, height * width * 3, RGB
  uint8_t* at(int x, int y) { return &pixels[(static_cast<size_t>(y) * width + x) * 3]; }
  const uint8_t* at(int x, int y) const { return &pixels[(static_cast<size_t>(y) * width + x) * 3]; }
};

}  // namespace tailor
