// config.json of a model directory: parse_blip2_config validates types and ranges.
#include <cstdint>

#include "model/config.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    tailor::Blip2Config cfg = tailor::parse_blip2_config(text, "config.json");
    (void)tailor::estimated_parameters(cfg);
    tailor::parse_blip2_config(tailor::blip2_config_json(cfg), "round trip");
  } catch (const tailor::Error&) {
  }
  return 0;
}
