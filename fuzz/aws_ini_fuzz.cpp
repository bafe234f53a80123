// ~/.aws/config and ~/.aws/credentials (read_ini_section), both the [default] and a profile section.
#include "fuzz_util.h"
#include "util/error.h"
#include "util/aws_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path = tailor::fuzz::input_file(data, size, "aws_config");
  for (const char* section : {"default", "profile dev"}) {
    try {
      tailor::IniSection s = tailor::read_ini_section(path, section);
      s.get("aws_access_key_id");
      s.get("region");
    } catch (const tailor::Error&) {
    }
  }
  return 0;
}
