// describe's own output read back on resume (read_describe_output: torn last line, foreign files),
// and the CSV written from it.
#include "fuzz_util.h"
#include "util/error.h"
#include "write/describe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path = tailor::fuzz::input_file(data, size, "describe.jsonl");
  try {
    tailor::read_describe_output(path);  // may drop a torn last line
    tailor::write_describe_csv(path, path + ".csv");
  } catch (const tailor::Error&) {
  }
  return 0;
}
