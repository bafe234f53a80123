// Images as plain 8-bit RGB, decoded from JPEG (libturbojpeg) or PNG (libpng), and encoded back.
// Every decode failure is an Error that says why (empty, truncated, not JPEG/PNG, corrupt data).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/image.h"

namespace tailor {

// Detects the format from the bytes (not the file name). Grey, palette and alpha inputs become RGB
// (alpha is dropped, as PIL's convert("RGB") does).
ImageRGB decode_image(const uint8_t* data, size_t size);
ImageRGB decode_image(const std::vector<uint8_t>& bytes);
ImageRGB load_image(const std::string& path);  // errors name the path

std::vector<uint8_t> encode_jpeg(const ImageRGB& img, int quality = 92);
std::vector<uint8_t> encode_png(const ImageRGB& img);

}  // namespace tailor
