// Base64 (RFC 4648 §4, and the URL-safe alphabet of §5) for images inside JSON request bodies.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tailor {

// Whitespace is skipped (MIME-style line breaks); padding is optional. Any other bad byte, misplaced
// padding or a dangling final character is an Error that names the offset.
std::vector<uint8_t> decode_base64(std::string_view text);
std::string encode_base64(const uint8_t* data, size_t size);

}  // namespace tailor
