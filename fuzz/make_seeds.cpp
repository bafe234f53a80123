// Writes the seed corpora fuzz/corpus/<target>/ (small valid inputs the fuzzers start from):
//   build-fuzz/make_seeds <repo>/fuzz/corpus
// Deterministic; rerun it when a format changes. Not a fuzz target (no _fuzz suffix).
#include <google/protobuf/unknown_field_set.h>
#include <zlib.h>

#include <cstdio>
#include <string>
#include <vector>

#include "catalog/dataset.h"
#include "catalog/images.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"
#include "serve/base64.h"
#include "util/fs.h"

using namespace tailor;

static void put(const std::string& dir, const std::string& name, const std::string& bytes) {
  make_dirs(dir);
  write_file_atomic(join_path(dir, name), bytes);
}
static std::string str(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

static ImageRGB gradient(int w, int h) {
  ImageRGB img;
  img.width = w;
  img.height = h;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) img.pixels.push_back(static_cast<uint8_t>(x * 16 + y * 8 + c * 40));
  return img;
}

static std::string gzip(const std::string& data) {
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, data.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// The trained model without its ~240 KB NFKC charsmap (normalizer_spec = field 3, its name = 1 and
// precompiled_charsmap = 2; "identity" needs none), so the seed stays small and the fuzzer fast.
static std::string without_charsmap(const std::string& model) {
  google::protobuf::UnknownFieldSet top, spec;
  top.ParseFromString(model);
  for (int i = 0; i < top.field_count(); ++i)
    if (top.field(i).number() == 3) spec.ParseFromString(top.field(i).length_delimited());
  spec.DeleteByNumber(1);
  spec.DeleteByNumber(2);
  spec.AddLengthDelimited(1, "identity");
  std::string spec_bytes, out;
  spec.SerializeToString(&spec_bytes);
  top.DeleteByNumber(3);
  top.AddLengthDelimited(3, spec_bytes);
  top.SerializeToString(&out);
  return out;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds <corpus dir>\n");
    return 2;
  }
  std::string root = argv[1];
  std::string png = str(encode_png(gradient(8, 6)));
  std::string jpeg = str(encode_jpeg(gradient(16, 16), 90));
  put(root + "/image", "gradient.png", png);
  put(root + "/image", "gradient.jpg", jpeg);

  put(root + "/base64", "png.txt", encode_base64(reinterpret_cast<const uint8_t*>(png.data()), png.size()));
  put(root + "/base64", "short.txt", "aGVsbG8gd29ybGQ=\n");

  std::string tmp = root + "/../../build-fuzz/seed_tmp";
  make_dirs(tmp);
  std::vector<float> a = {1, 2, 3, 4};
  std::vector<uint16_t> b = {0x3f80, 0x4000, 0x4040};
  write_safetensors(tmp + "/m.safetensors", {{"a.weight", DType::F32, {2, 2}, a.data(), 16},
                                             {"b", DType::BF16, {3}, b.data(), 6}});
  put(root + "/safetensors", "two_tensors.safetensors", read_file(tmp + "/m.safetensors"));

  Blip2Config cfg;
  put(root + "/config", "default.json", blip2_config_json(cfg));

  std::vector<std::string> corpus;
  for (int i = 0; i < 40; ++i)
    corpus.push_back("Question: What is the sleeve length of the shirt " + std::to_string(i) +
                     "? Answer: Sleeve Length: Short Sleeves, colour blue red green");
  train_t5_sentencepiece(corpus, 60, tmp + "/spiece.model");
  std::string text = "Sleeve Length: Long";
  put(root + "/tokenizer", "tiny_model", std::string(1, static_cast<char>(text.size())) + text +
                                              without_charsmap(read_file(tmp + "/spiece.model")));

  put(root + "/aws_ini", "credentials", "[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = x\n"
                                        "# comment\n[profile dev]\nregion = eu-west-1\ns3 =\n  max_concurrent_requests = 2\n");

  VqaPair p{"15970", "/data/images/15970.jpg", "Sleeve Length", "What is the sleeve length?",
            "Question: What is the sleeve length? Answer: ", "Sleeve Length: Long Sleeves", "Long Sleeves"};
  put(root + "/pairs", "train.jsonl", pair_to_json_line(p) + "\n\n" + pair_to_json_line(p) + "\n");

  put(root + "/describe_output", "out.jsonl",
      R"({"id":"1","attributes":{"baseColour":"Red","Sleeve Length":"Short, plain"},"confidence":{"baseColour":0.9},)"
      R"("needs_review":false,"doubtful":[],"description":"A red \"tee\".","writer":"offline","model":"x","attributes_from":"catalog"})"
      "\n"
      R"({"id":"2","attributes":{},"description":"","writer":"offline"})"
      "\n{\"id\":\"3\",\"attr");

  std::string b64png = encode_base64(reinterpret_cast<const uint8_t*>(png.data()), png.size());
  std::string json_body = "{\"image\":\"" + b64png + "\",\"prompt\":\"What is the sleeve length?\"," +
                          "\"parameters\":{\"max_new_tokens\":5,\"num_beams\":2,\"answer\":\"free\"}}";
  put(root + "/serve", "json.http",
      "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
          std::to_string(json_body.size()) + "\r\n\r\n" + json_body);
  put(root + "/serve", "raw_png_keepalive.http",
      "GET /ping HTTP/1.1\r\n\r\nPOST /describe HTTP/1.1\r\nContent-Type: image/png\r\nContent-Length: " +
          std::to_string(png.size()) + "\r\n\r\n" + png + "GET /metrics HTTP/1.0\r\n\r\n");
  std::string describe_body = "{\"image\":\"data:image/png;base64," + b64png + "\",\"attributes\":{\"Brand\":\"X\"}}";
  char hex[16];
  std::snprintf(hex, sizeof hex, "%zx", describe_body.size());
  put(root + "/serve", "chunked.http",
      "POST /describe HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n" +
          std::string(hex) + ";ext=1\r\n" + describe_body + "\r\n0\r\nTrailer: x\r\n\r\n");
  std::string gz = gzip(json_body);
  put(root + "/serve", "gzip.http",
      "POST /invocations HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Type: application/json\r\nContent-Length: " +
          std::to_string(gz.size()) + "\r\n\r\n" + gz);
  remove_tree(tmp);
  return 0;
}
