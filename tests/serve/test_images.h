// Test support for the serve tests: small image helpers (codecs come from catalog/images.h).
#pragma once
#include <string>
#include <vector>

#include "catalog/images.h"
#include "util/fs.h"

namespace tailor::test {

inline ImageRGB solid_image(int w, int h, uint8_t r, uint8_t g, uint8_t b) {
  ImageRGB img;
  img.width = w;
  img.height = h;
  img.pixels.resize(static_cast<size_t>(w) * h * 3);
  for (size_t i = 0; i < img.pixels.size(); i += 3) {
    img.pixels[i] = r;
    img.pixels[i + 1] = g;
    img.pixels[i + 2] = b;
  }
  return img;
}

inline std::string as_string(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

}  // namespace tailor::test
