// prepare's pair files (train.jsonl / val.jsonl) read back by catalog/dataset.
#include "catalog/dataset.h"
#include "fuzz_util.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path = tailor::fuzz::input_file(data, size, "pairs.jsonl");
  try {
    std::vector<tailor::VqaPair> pairs = tailor::read_pairs(path);
    for (const auto& p : pairs) tailor::pair_to_json_line(p);
  } catch (const tailor::Error&) {
  }
  return 0;
}
