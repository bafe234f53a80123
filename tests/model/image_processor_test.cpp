// tailor-test: base
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "model/image_processor.h"
#include "test_util.h"
#include "util/error.h"
#include "util/fs.h"

using namespace tailor;

namespace {

// A deterministic test picture: gradients, a hard-edged rectangle and pseudo-random noise, so the
// resampler meets smooth areas, edges (where the negative lobes of the cubic over/undershoot) and detail.
ImageRGB test_image(int w, int h) {
  ImageRGB img;
  img.width = w;
  img.height = h;
  img.pixels.resize(static_cast<size_t>(w) * h * 3);
  uint32_t state = 12345;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      state = state * 1664525u + 1013904223u;
      uint8_t* p = img.at(x, y);
      bool in_box = x > w / 3 && x < w / 2 && y > h / 4 && y < (3 * h) / 4;
      p[0] = in_box ? 255 : static_cast<uint8_t>((x * 255) / (w - 1));
      p[1] = in_box ? 0 : static_cast<uint8_t>((y * 255) / (h - 1));
      p[2] = static_cast<uint8_t>(state >> 24);
    }
  }
  return img;
}

// ---- an independent, deliberately plain reference of antialiased bicubic --------------------------
// Written from the algorithm's definition (PIL / torch antialias): output sample i of an axis sits at
// center = (i + 0.5) * in / out in input coordinates; every input sample j (at j + 0.5) gets weight
// k((j + 0.5 - center) / s) with s = max(in / out, 1) and k Keys' cubic with a = -0.5; weights are
// divided by their sum. Each axis pass rounds to uint8 (horizontal first), in double precision, with no
// fixed point and no window bookkeeping.
double keys_cubic(double t) {
  double a = -0.5;
  double x = std::fabs(t);
  if (x < 1) return (a + 2) * x * x * x - (a + 3) * x * x + 1;
  if (x < 2) return a * x * x * x - 5 * a * x * x + 8 * a * x - 4 * a;
  return 0;
}

std::vector<double> reference_axis(const std::vector<double>& in_line, int out_n) {
  int in_n = static_cast<int>(in_line.size());
  double scale = static_cast<double>(in_n) / out_n;
  double s = scale > 1 ? scale : 1;
  std::vector<double> out(out_n);
  for (int i = 0; i < out_n; ++i) {
    double center = (i + 0.5) * scale;
    double sum = 0, wsum = 0;
    // Only samples within the kernel's reach (|t| < 2) contribute; skip the rest for speed.
    int j0 = std::max(0, static_cast<int>(center - 2 * s) - 2);
    int j1 = std::min(in_n, static_cast<int>(center + 2 * s) + 2);
    for (int j = j0; j < j1; ++j) {
      double w = keys_cubic((j + 0.5 - center) / s);
      sum += w * in_line[j];
      wsum += w;
    }
    double v = std::floor(sum / wsum + 0.5);
    out[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return out;
}

ImageRGB reference_resize(const ImageRGB& img, int out_w, int out_h) {
  int w = img.width, h = img.height;
  // horizontal pass: h x out_w
  std::vector<double> mid(static_cast<size_t>(h) * out_w * 3);
  for (int y = 0; y < h; ++y)
    for (int c = 0; c < 3; ++c) {
      std::vector<double> line(w);
      for (int x = 0; x < w; ++x) line[x] = img.at(x, y)[c];
      std::vector<double> r = out_w == w ? line : reference_axis(line, out_w);
      for (int x = 0; x < out_w; ++x) mid[(static_cast<size_t>(y) * out_w + x) * 3 + c] = r[x];
    }
  ImageRGB out;
  out.width = out_w;
  out.height = out_h;
  out.pixels.resize(static_cast<size_t>(out_w) * out_h * 3);
  for (int x = 0; x < out_w; ++x)
    for (int c = 0; c < 3; ++c) {
      std::vector<double> line(h);
      for (int y = 0; y < h; ++y) line[y] = mid[(static_cast<size_t>(y) * out_w + x) * 3 + c];
      std::vector<double> r = out_h == h ? line : reference_axis(line, out_h);
      for (int y = 0; y < out_h; ++y) out.at(x, y)[c] = static_cast<uint8_t>(r[y]);
    }
  return out;
}

struct Diff {
  int max_abs = 0;
  double equal_fraction = 0;
};

Diff compare(const ImageRGB& a, const ImageRGB& b) {
  Diff d;
  size_t equal = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) {
    int e = std::abs(static_cast<int>(a.pixels[i]) - static_cast<int>(b.pixels[i]));
    d.max_abs = std::max(d.max_abs, e);
    equal += e == 0;
  }
  d.equal_fraction = static_cast<double>(equal) / a.pixels.size();
  return d;
}

}  // namespace

TEST(ImageProcessor, ResizeToSameSizeIsIdentity) {
  ImageRGB img = test_image(224, 224);
  ImageRGB out = resize_bicubic(img, 224, 224);
  EXPECT_EQ(out.width, 224);
  EXPECT_EQ(out.height, 224);
  EXPECT_EQ(out.pixels, img.pixels);
}

TEST(ImageProcessor, ConstantImageStaysConstant) {
  ImageRGB img;
  img.width = 97;
  img.height = 61;
  img.pixels.assign(97 * 61 * 3, 0);
  for (size_t i = 0; i < img.pixels.size(); i += 3) {
    img.pixels[i] = 200;
    img.pixels[i + 1] = 17;
    img.pixels[i + 2] = 255;
  }
  for (auto wh : {std::pair<int, int>{224, 224}, {30, 20}, {97, 200}}) {
    ImageRGB out = resize_bicubic(img, wh.first, wh.second);
    ASSERT_EQ(out.pixels.size(), static_cast<size_t>(wh.first) * wh.second * 3);
    for (size_t i = 0; i < out.pixels.size(); i += 3) {
      ASSERT_EQ(out.pixels[i], 200);
      ASSERT_EQ(out.pixels[i + 1], 17);
      ASSERT_EQ(out.pixels[i + 2], 255);
    }
  }
}

TEST(ImageProcessor, ResizeMatchesPlainDoublePrecisionReference) {
  // Fixed-point int16 weights may move a pass's value by one step; when upscaling, a step in the
  // horizontal pass can add to one in the vertical pass. Nearly all values must agree exactly.
  struct Case {
    int w, h, ow, oh, max_diff;
  };
  for (Case c : {Case{640, 480, 224, 224, 1}, Case{300, 200, 224, 224, 1}, Case{1080, 1440, 224, 224, 1},
                 Case{224, 500, 224, 224, 1}, Case{2400, 1800, 224, 224, 1}, Case{50, 40, 224, 224, 2}}) {
    SCOPED_TRACE(std::to_string(c.w) + "x" + std::to_string(c.h) + " -> " + std::to_string(c.ow) + "x" +
                 std::to_string(c.oh));
    ImageRGB img = test_image(c.w, c.h);
    ImageRGB got = resize_bicubic(img, c.ow, c.oh);
    ImageRGB want = reference_resize(img, c.ow, c.oh);
    ASSERT_EQ(got.width, c.ow);
    ASSERT_EQ(got.height, c.oh);
    Diff d = compare(got, want);
    EXPECT_LE(d.max_abs, c.max_diff);
    EXPECT_GE(d.equal_fraction, 0.99);
    std::printf("  %dx%d -> %dx%d: max |diff| %d, exactly equal %.4f%%\n", c.w, c.h, c.ow, c.oh, d.max_abs,
                100 * d.equal_fraction);
  }
}

TEST(ImageProcessor, NormalisationOfAKnownPixel) {
  ImageRGB img;
  img.width = 1;
  img.height = 1;
  img.pixels = {255, 0, 128};
  ImageProcessorConfig cfg;
  cfg.width = 1;
  cfg.height = 1;
  std::vector<float> v = preprocess_image(img, cfg);
  ASSERT_EQ(v.size(), 3u);
  // (x / 255 - mean) / std with CLIP's constants.
  EXPECT_NEAR(v[0], (1.0 - 0.48145466) / 0.26862954, 2e-6);
  EXPECT_NEAR(v[1], (0.0 - 0.4578275) / 0.26130258, 2e-6);
  EXPECT_NEAR(v[2], (128.0 / 255.0 - 0.40821073) / 0.27577711, 2e-6);
  EXPECT_NEAR(v[0], 1.9303361, 1e-6);
  EXPECT_NEAR(v[1], -1.7520971, 1e-6);

  cfg.do_normalize = false;
  v = preprocess_image(img, cfg);
  EXPECT_FLOAT_EQ(v[0], 1.0f);
  EXPECT_FLOAT_EQ(v[1], 0.0f);
  EXPECT_NEAR(v[2], 128.0 / 255.0, 1e-7);
}

TEST(ImageProcessor, PreprocessIsPlanarAndResizes) {
  ImageRGB img = test_image(300, 200);
  ImageProcessorConfig cfg;
  std::vector<float> v = preprocess_image(img, cfg);
  ASSERT_EQ(v.size(), 3u * 224 * 224);
  ImageRGB r = resize_bicubic(img, 224, 224);
  // channel c of pixel (x, y) sits at c * H * W + y * W + x
  for (int probe : {0, 1000, 224 * 224 - 1}) {
    int x = probe % 224, y = probe / 224;
    for (int c = 0; c < 3; ++c) {
      double want = (r.at(x, y)[c] / 255.0 - cfg.image_mean[c]) / cfg.image_std[c];
      EXPECT_NEAR(v[c * 224 * 224 + y * 224 + x], want, 2e-6);
    }
  }
}

TEST(ImageProcessor, ConfigRoundTripAndHfFile) {
  std::string dir = test::temp_dir("ipc");
  // Missing file: BLIP-2 defaults.
  ImageProcessorConfig d = load_image_processor_config(dir);
  EXPECT_EQ(d.height, 224);
  EXPECT_FLOAT_EQ(d.image_mean[0], 0.48145466f);

  // The layout HF writes for BLIP-2 checkpoints.
  write_file_atomic(join_path(dir, "preprocessor_config.json"), std::string(R"({
  "do_normalize": true,
  "do_resize": true,
  "image_mean": [0.5, 0.25, 0.125],
  "image_processor_type": "BlipImageProcessor",
  "image_std": [0.2, 0.3, 0.4],
  "processor_class": "Blip2Processor",
  "resample": 3,
  "rescale_factor": 0.00392156862745098,
  "size": {"height": 364, "width": 320}
})"));
  ImageProcessorConfig c = load_image_processor_config(dir);
  EXPECT_EQ(c.height, 364);
  EXPECT_EQ(c.width, 320);
  EXPECT_FLOAT_EQ(c.image_mean[1], 0.25f);
  EXPECT_FLOAT_EQ(c.image_std[2], 0.4f);
  EXPECT_TRUE(c.do_convert_rgb);

  c.do_convert_rgb = false;
  save_image_processor_config(dir, c);
  std::string text = read_file(join_path(dir, "preprocessor_config.json"));
  EXPECT_NE(text.find("\"image_processor_type\": \"BlipImageProcessor\""), std::string::npos) << text;
  EXPECT_EQ(text.find("0.48145466"), std::string::npos);  // our mean was replaced
  ImageProcessorConfig back = load_image_processor_config(dir);
  EXPECT_EQ(back.height, 364);
  EXPECT_EQ(back.width, 320);
  EXPECT_FALSE(back.do_convert_rgb);
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(back.image_mean[k], c.image_mean[k]);
    EXPECT_EQ(back.image_std[k], c.image_std[k]);
  }
  EXPECT_EQ(back.rescale_factor, c.rescale_factor);

  ImageProcessorConfig defaults;
  save_image_processor_config(dir, defaults);
  text = read_file(join_path(dir, "preprocessor_config.json"));
  EXPECT_NE(text.find("0.48145466"), std::string::npos) << text;
  EXPECT_NE(text.find("0.26862954"), std::string::npos) << text;
}

TEST(ImageProcessor, ConfigErrorsNameFileAndField) {
  std::string dir = test::temp_dir("ipc_bad");
  std::string file = join_path(dir, "preprocessor_config.json");
  struct Bad {
    const char* json;
    const char* field;
  };
  for (Bad b : {Bad{R"({"size": {"shortest_edge": 224}})", "size"}, Bad{R"({"size": {"height": -1, "width": 3}})", "size.height"},
                Bad{R"({"image_mean": [0.1, 0.2]})", "image_mean"}, Bad{R"({"resample": 2})", "resample"},
                Bad{R"({"do_resize": "yes"})", "do_resize"}, Bad{R"({"image_std": [0.1, 0, 0.2]})", "image_std"},
                Bad{R"({"size": 224,)", "JSON"}}) {
    SCOPED_TRACE(b.json);
    write_file_atomic(file, std::string(b.json));
    try {
      load_image_processor_config(dir);
      FAIL();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(b.field), std::string::npos) << e.what();
    }
  }
}
