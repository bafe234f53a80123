// The serve request's base64 image field; whatever decodes must encode back to the same bytes.
#include <cstdint>
#include <string_view>

#include "serve/base64.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    std::vector<uint8_t> bytes = tailor::decode_base64(text);
    std::string again = tailor::encode_base64(bytes.data(), bytes.size());
    if (tailor::decode_base64(again) != bytes) __builtin_trap();
  } catch (const tailor::Error&) {
  }
  return 0;
}
