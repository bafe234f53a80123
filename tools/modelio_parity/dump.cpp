// Dumps tailor's tokenizer and image-processor outputs (tokdir/spiece.model, tok.json, img_*.{rgb,resized.rgb,f32})
// for compare.py, which checks them against HF transformers on the GPU machine. See run.sh.
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include "model/image_processor.h"
#include "model/tokenizer.h"
using namespace tailor;
static ImageRGB test_image(int w, int h) {
  ImageRGB img; img.width = w; img.height = h; img.pixels.resize((size_t)w * h * 3);
  uint32_t state = 12345 + w * 7 + h;
  for (int y = 0; y < h; ++y) for (int x = 0; x < w; ++x) {
    state = state * 1664525u + 1013904223u; uint8_t* p = img.at(x, y);
    bool box = x > w / 3 && x < w / 2 && y > h / 4 && y < (3 * h) / 4;
    p[0] = box ? 255 : (uint8_t)((x * 255) / (w - 1)); p[1] = box ? 0 : (uint8_t)((y * 255) / (h - 1));
    p[2] = (uint8_t)(state >> 24);
  }
  return img;
}
int main() {
  std::vector<std::string> corpus;
  const char* attrs[] = {"Sleeve Length", "Colour", "Pattern", "Neck", "Fit", "Fabric", "Occasion"};
  const char* values[] = {"Long Sleeves", "Short Sleeves", "Navy Blue", "Black", "White", "Striped", "Solid", "Round Neck", "V-Neck", "Slim Fit", "Regular Fit", "Cotton", "Casual", "Café crème", "naïve"};
  const char* items[] = {"shirt", "t-shirt", "kurta", "dress", "jeans", "jacket", "top", "sweater"};
  for (int i = 0; i < 900; ++i) {
    corpus.push_back(std::string("What is the ") + attrs[i % 7] + " of this " + items[(i * 3) % 8] + "?");
    corpus.push_back(std::string(attrs[i % 7]) + ": " + values[(i * 5) % 15]);
    corpus.push_back(std::string("A ") + values[(i * 7) % 15] + " " + items[i % 8] + " for men & women, " + std::to_string(i % 97) + " pieces (size " + std::to_string(30 + i % 12) + ").");
  }
  system("mkdir -p tokdir");
  train_t5_sentencepiece(corpus, 400, "tokdir/spiece.model");
  T5Tokenizer tok = T5Tokenizer::load("tokdir/spiece.model");
  std::vector<std::string> texts = {
    "Sleeve Length: Long Sleeves", "What is the Colour of this kurta?", "", "   ", "hello  world", " leading and trailing ",
    "tab\there", "new\nline", "nbsp\xc2\xa0x", "ideo\xe3\x80\x80x", "vt\x0bx", "nel\xc2\x85x", "ls\xe2\x80\xa8x", "zwsp\xe2\x80\x8bx",
    "Long <extra_id_0> Sleeves", "Long<extra_id_1>Sleeves", "<extra_id_99>", "<extra_id_100>", "<extra_id_05>", "a</s>b", "<pad>x<unk>y",
    "\xef\xbc\xac\xef\xbd\x8f\xef\xbd\x8e\xef\xbd\x87", "\xef\xac\x81t", "Caf\xc3\xa9 cre\xcc\x80me", "\xe2\x98\x83\xe2\x98\x83 snow", "emoji \xf0\x9f\x91\x95 shirt",
    "\xe2\x96\x81" "already", "a\xe2\x96\x81\xe2\x96\x81" "b", "\xe2\x91\xa0 \xe2\x85\xab", "UPPER lower 12345 3.14", "x<extra_id_3> <extra_id_4>y", "<extra_id_2><extra_id_2>",
  };
  nlohmann::json out;
  out["vocab_size"] = tok.vocab_size();
  out["piece_count"] = tok.piece_count();
  for (auto& t : texts) out["encode"].push_back({{"text", t}, {"ids", tok.encode(t)}});
  std::vector<std::vector<int64_t>> dec = {tok.encode("Sleeve Length: Long Sleeves"), tok.encode("Long <extra_id_0> Sleeves"),
    {0, 5, 9, 2, 1, 0}, {tok.extra_id(0), 10, 11, 1}, {2, 2, 7}, {}, {0, 0}};
  for (auto& d : dec) for (bool skip : {true, false})
    out["decode"].push_back({{"ids", d}, {"skip", skip}, {"text", tok.decode(d, skip)}});
  std::ofstream("tok.json") << out.dump(1);

  nlohmann::json im;
  int sizes[][2] = {{640, 480}, {300, 200}, {1080, 1440}, {224, 500}, {50, 40}, {224, 224}, {2400, 1800}, {225, 223}};
  ImageProcessorConfig cfg;
  for (auto& s : sizes) {
    ImageRGB img = test_image(s[0], s[1]);
    std::string base = "img_" + std::to_string(s[0]) + "x" + std::to_string(s[1]);
    std::ofstream(base + ".rgb", std::ios::binary).write((const char*)img.pixels.data(), img.pixels.size());
    ImageRGB r = resize_bicubic(img, 224, 224);
    std::ofstream(base + ".resized.rgb", std::ios::binary).write((const char*)r.pixels.data(), r.pixels.size());
    std::vector<float> f = preprocess_image(img, cfg);
    std::ofstream(base + ".f32", std::ios::binary).write((const char*)f.data(), f.size() * 4);
    im.push_back({{"base", base}, {"w", s[0]}, {"h", s[1]}});
  }
  std::ofstream("img.json") << im.dump(1);
  return 0;
}
