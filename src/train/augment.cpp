#include "train/augment.h"

#include "core/rng.h"
#include "model/image_processor.h"

namespace tailor {

ImageRGB flip_horizontal(const ImageRGB& img) {
  ImageRGB out = img;
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) {
      const uint8_t* s = img.at(img.width - 1 - x, y);
      uint8_t* d = out.at(x, y);
      d[0] = s[0];
      d[1] = s[1];
      d[2] = s[2];
    }
  return out;
}

ImageRGB augment_image(const ImageRGB& img, uint64_t seed, int64_t epoch, const std::string& key) {
  Rng rng(seed ^ splitmix64_mix(fnv1a64(key) + static_cast<uint64_t>(epoch) * 0x9E3779B97F4A7C15ull));
  auto uniform = [&] { return static_cast<double>(rng.next() >> 11) / 9007199254740992.0; };
  int cw = std::max(1, static_cast<int>(img.width * (0.85 + 0.15 * uniform())));
  int ch = std::max(1, static_cast<int>(img.height * (0.85 + 0.15 * uniform())));
  int x0 = static_cast<int>((img.width - cw) * uniform());
  int y0 = static_cast<int>((img.height - ch) * uniform());
  bool flip = uniform() < 0.5;
  ImageRGB crop;
  crop.width = cw;
  crop.height = ch;
  crop.pixels.resize(static_cast<size_t>(cw) * ch * 3);
  for (int y = 0; y < ch; ++y)
    for (int x = 0; x < cw; ++x) {
      int sx = flip ? x0 + cw - 1 - x : x0 + x;
      const uint8_t* s = img.at(sx, y0 + y);
      uint8_t* d = crop.at(x, y);
      d[0] = s[0];
      d[1] = s[1];
      d[2] = s[2];
    }
  return resize_bicubic(crop, img.width, img.height);
}

}  // namespace tailor
