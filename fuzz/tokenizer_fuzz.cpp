// spiece.model (a SentencePiece ModelProto, parsed by the SentencePiece library), then encode and
// decode with it; the first input byte picks how much of the rest is text to encode.
#include "fuzz_util.h"
#include "model/tokenizer.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t text_size = std::min<size_t>(data[0], size - 1);
  std::string text(reinterpret_cast<const char*>(data + 1), text_size);
  std::string path = tailor::fuzz::input_file(data + 1 + text_size, size - 1 - text_size, "spiece.model");
  try {
    tailor::T5Tokenizer tok = tailor::T5Tokenizer::load(path);
    std::vector<int64_t> ids = tok.encode(text);
    tok.decode(ids);
    tok.decode(ids, false);
  } catch (const std::exception&) {  // Error, or what the library throws for a broken model
  }
  return 0;
}
