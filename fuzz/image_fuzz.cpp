// JPEG/PNG decoding (catalog/images.cpp: libturbojpeg, libpng). Large claimed sizes are refused by
// the decoder's own bound.
#include <cstdint>

#include "catalog/images.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    tailor::ImageRGB img = tailor::decode_image(data, size);
    if (img.pixels.size() != static_cast<size_t>(img.width) * img.height * 3) __builtin_trap();
  } catch (const tailor::Error&) {
  }
  return 0;
}
