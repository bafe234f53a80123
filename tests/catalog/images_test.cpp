// tailor-test: base
// Image decoding: pixel values are checked against images the tests build themselves with libpng's
// writer (known pixels), against Cairo's own PNG reader, and against round trips; bad bytes must
// give an Error that says why, never a crash.
#include <gtest/gtest.h>
#include <png.h>
#include <turbojpeg.h>

#include <cstring>
#include <string>
#include <vector>

#include "catalog/images.h"
#include "core/rng.h"
#include "test_util.h"
#include "util/error.h"
#include "util/fs.h"

#ifdef TAILOR_WITH_CAIRO
#include <cairo.h>
#endif

using namespace tailor;

namespace {

// Writes a PNG with libpng's low-level writer: rows are given in the file's own pixel layout.
struct PngSpec {
  int width = 0, height = 0, color_type = PNG_COLOR_TYPE_RGB, bit_depth = 8;
  std::vector<std::vector<uint8_t>> rows;
  std::vector<png_color> palette;
  std::vector<uint8_t> trns;  // palette alpha
  bool interlaced = false;
};

void png_write_vec(png_structp png, png_bytep data, png_size_t n) {
  auto* out = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + n);
}
void png_flush_noop(png_structp) {}

std::vector<uint8_t> write_png(const PngSpec& s) {
  std::vector<uint8_t> out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    ADD_FAILURE() << "libpng failed writing the fixture";
    return {};
  }
  png_set_write_fn(png, &out, png_write_vec, png_flush_noop);
  png_set_IHDR(png, info, s.width, s.height, s.bit_depth, s.color_type,
               s.interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!s.palette.empty()) png_set_PLTE(png, info, s.palette.data(), static_cast<int>(s.palette.size()));
  if (!s.trns.empty()) png_set_tRNS(png, info, s.trns.data(), static_cast<int>(s.trns.size()), nullptr);
  png_write_info(png, info);
  std::vector<png_bytep> rows;
  for (const auto& r : s.rows) rows.push_back(const_cast<png_bytep>(r.data()));
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

std::string error_of(const std::vector<uint8_t>& bytes) {
  try {
    decode_image(bytes);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

ImageRGB gradient(int w, int h) {
  ImageRGB img;
  img.width = w;
  img.height = h;
  img.pixels.resize(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = img.at(x, y);
      p[0] = static_cast<uint8_t>(x * 255 / (w - 1));
      p[1] = static_cast<uint8_t>(y * 255 / (h - 1));
      p[2] = static_cast<uint8_t>(128 + (x - y) / 4);
    }
  return img;
}

std::string real_photo() { return join_path(join_path(test::fashion_catalog(), "images"), "15970.jpg"); }

}  // namespace

TEST(Images, PngRgbAndRgbaKeepExactColoursAndDropAlpha) {
  PngSpec rgb{3, 2, PNG_COLOR_TYPE_RGB, 8, {{1, 2, 3, 250, 0, 7, 9, 9, 9}, {0, 0, 0, 255, 255, 255, 10, 200, 30}}};
  ImageRGB a = decode_image(write_png(rgb));
  ASSERT_EQ(a.width, 3);
  ASSERT_EQ(a.height, 2);
  std::vector<uint8_t> want = {1, 2, 3, 250, 0, 7, 9, 9, 9, 0, 0, 0, 255, 255, 255, 10, 200, 30};
  EXPECT_EQ(a.pixels, want);

  // RGBA: the stored colour stays even where alpha is 0 (PIL's convert("RGB") drops alpha).
  PngSpec rgba{2, 1, PNG_COLOR_TYPE_RGB_ALPHA, 8, {{10, 20, 30, 0, 200, 100, 50, 128}}};
  ImageRGB b = decode_image(write_png(rgba));
  EXPECT_EQ(b.pixels, (std::vector<uint8_t>{10, 20, 30, 200, 100, 50}));
}

TEST(Images, PngGreyPaletteAnd16BitBecomeRgb) {
  PngSpec grey{3, 1, PNG_COLOR_TYPE_GRAY, 8, {{0, 77, 255}}};
  EXPECT_EQ(decode_image(write_png(grey)).pixels, (std::vector<uint8_t>{0, 0, 0, 77, 77, 77, 255, 255, 255}));

  PngSpec grey_alpha{2, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, {{40, 0, 90, 255}}};
  EXPECT_EQ(decode_image(write_png(grey_alpha)).pixels, (std::vector<uint8_t>{40, 40, 40, 90, 90, 90}));

  // 1-bit grey: bits 1,0,1 → 255,0,255.
  PngSpec grey1{3, 1, PNG_COLOR_TYPE_GRAY, 1, {{0xA0}}};
  EXPECT_EQ(decode_image(write_png(grey1)).pixels, (std::vector<uint8_t>{255, 255, 255, 0, 0, 0, 255, 255, 255}));

  PngSpec pal{4, 1, PNG_COLOR_TYPE_PALETTE, 8, {{2, 0, 1, 2}}};
  pal.palette = {{255, 0, 0}, {0, 128, 0}, {5, 6, 7}};
  pal.trns = {255, 0, 255};  // index 1 transparent: its colour must still come out
  EXPECT_EQ(decode_image(write_png(pal)).pixels,
            (std::vector<uint8_t>{5, 6, 7, 255, 0, 0, 0, 128, 0, 5, 6, 7}));

  // 4-bit palette, two pixels per byte.
  PngSpec pal4{2, 1, PNG_COLOR_TYPE_PALETTE, 4, {{0x10}}};
  pal4.palette = {{9, 8, 7}, {1, 2, 3}};
  EXPECT_EQ(decode_image(write_png(pal4)).pixels, (std::vector<uint8_t>{1, 2, 3, 9, 8, 7}));

  // 16-bit: big-endian samples; 8-bit output keeps the high byte (rounded by libpng's strip).
  PngSpec rgb16{1, 1, PNG_COLOR_TYPE_RGB, 16, {{0x12, 0x00, 0xAB, 0x00, 0xFF, 0x00}}};
  EXPECT_EQ(decode_image(write_png(rgb16)).pixels, (std::vector<uint8_t>{0x12, 0xAB, 0xFF}));
}

TEST(Images, InterlacedPngDecodes) {
  PngSpec s{9, 9, PNG_COLOR_TYPE_RGB, 8, {}};
  s.interlaced = true;
  for (int y = 0; y < 9; ++y) {
    std::vector<uint8_t> r;
    for (int x = 0; x < 9; ++x) {
      r.push_back(static_cast<uint8_t>(x * 20));
      r.push_back(static_cast<uint8_t>(y * 20));
      r.push_back(static_cast<uint8_t>(x + y));
    }
    s.rows.push_back(r);
  }
  ImageRGB img = decode_image(write_png(s));
  ASSERT_EQ(img.width, 9);
  for (int y = 0; y < 9; ++y)
    for (int x = 0; x < 9; ++x) {
      EXPECT_EQ(img.at(x, y)[0], x * 20);
      EXPECT_EQ(img.at(x, y)[1], y * 20);
      EXPECT_EQ(img.at(x, y)[2], x + y);
    }
}

TEST(Images, EncodePngRoundTripsExactly) {
  ImageRGB img = gradient(37, 23);
  std::vector<uint8_t> png = encode_png(img);
  ImageRGB back = decode_image(png);
  EXPECT_EQ(back.width, 37);
  EXPECT_EQ(back.height, 23);
  EXPECT_EQ(back.pixels, img.pixels);
#ifdef TAILOR_WITH_CAIRO
  // A second, independent reader (Cairo's) sees the same pixels.
  std::string path = join_path(test::temp_dir("images_png"), "g.png");
  write_file_atomic(path, png.data(), png.size());
  cairo_surface_t* s = cairo_image_surface_create_from_png(path.c_str());
  ASSERT_EQ(cairo_surface_status(s), CAIRO_STATUS_SUCCESS);
  ASSERT_EQ(cairo_image_surface_get_width(s), 37);
  const uint8_t* data = cairo_image_surface_get_data(s);
  int stride = cairo_image_surface_get_stride(s);
  for (int y = 0; y < 23; ++y)
    for (int x = 0; x < 37; ++x) {
      uint32_t px;
      std::memcpy(&px, data + y * stride + x * 4, 4);
      ASSERT_EQ((px >> 16) & 0xFF, img.at(x, y)[0]);
      ASSERT_EQ((px >> 8) & 0xFF, img.at(x, y)[1]);
      ASSERT_EQ(px & 0xFF, img.at(x, y)[2]);
    }
  cairo_surface_destroy(s);
#endif
}

TEST(Images, EncodeJpegRoundTripsClosely) {
  ImageRGB img = gradient(64, 48);
  std::vector<uint8_t> jpg = encode_jpeg(img, 95);
  ASSERT_GT(jpg.size(), 100u);
  EXPECT_EQ(jpg[0], 0xFF);
  EXPECT_EQ(jpg[1], 0xD8);
  ImageRGB back = decode_image(jpg);
  ASSERT_EQ(back.width, 64);
  ASSERT_EQ(back.height, 48);
  double err = 0;
  int worst = 0;
  for (size_t i = 0; i < img.pixels.size(); ++i) {
    int d = std::abs(int(img.pixels[i]) - int(back.pixels[i]));
    err += d;
    worst = std::max(worst, d);
  }
  EXPECT_LT(err / img.pixels.size(), 2.0);
  EXPECT_LE(worst, 16);
  // Same input, same bytes (synth relies on it).
  EXPECT_EQ(encode_jpeg(img, 95), jpg);
  EXPECT_THROW(encode_jpeg(img, 0), Error);
  ImageRGB bad;
  bad.width = 4;
  bad.height = 4;  // no pixels
  EXPECT_THROW(encode_jpeg(bad), Error);
  EXPECT_THROW(encode_png(bad), Error);
}

// Grey and CMYK JPEGs (made here with TurboJPEG's encoder) come out as RGB.
TEST(Images, GreyAndCmykJpegBecomeRgb) {
  tjhandle tj = tjInitCompress();
  ASSERT_NE(tj, nullptr);
  auto compress = [&](const std::vector<uint8_t>& px, int w, int h, int pf, int samp) {
    unsigned char* buf = nullptr;
    unsigned long len = 0;
    EXPECT_EQ(tjCompress2(tj, px.data(), w, 0, h, pf, &buf, &len, samp, 100, 0), 0) << tjGetErrorStr2(tj);
    std::vector<uint8_t> out(buf, buf + len);
    tjFree(buf);
    return out;
  };
  std::vector<uint8_t> grey(16 * 16);
  for (int i = 0; i < 256; ++i) grey[i] = static_cast<uint8_t>(i % 16 < 8 ? 40 : 200);
  ImageRGB g = decode_image(compress(grey, 16, 16, TJPF_GRAY, TJSAMP_GRAY));
  ASSERT_EQ(g.width, 16);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 16; ++x) {
      const uint8_t* p = g.at(x, y);
      EXPECT_EQ(p[0], p[1]);
      EXPECT_EQ(p[1], p[2]);
      EXPECT_NEAR(p[0], x < 8 ? 40 : 200, 12);
    }
  // Adobe-style (inverted) CMYK: left half only magenta ink → magenta; right half 50 % black → grey.
  std::vector<uint8_t> cmyk(16 * 16 * 4);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 16; ++x) {
      uint8_t* p = &cmyk[(y * 16 + x) * 4];
      if (x < 8) p[0] = 255, p[1] = 0, p[2] = 255, p[3] = 255;
      else p[0] = 255, p[1] = 255, p[2] = 255, p[3] = 128;
    }
  ImageRGB c = decode_image(compress(cmyk, 16, 16, TJPF_CMYK, TJSAMP_444));
  tjDestroy(tj);
  ASSERT_EQ(c.width, 16);
  for (int y = 2; y < 14; ++y) {
    EXPECT_NEAR(c.at(2, y)[0], 255, 6);
    EXPECT_NEAR(c.at(2, y)[1], 0, 6);
    EXPECT_NEAR(c.at(2, y)[2], 255, 6);
    for (int ch = 0; ch < 3; ++ch) EXPECT_NEAR(c.at(13, y)[ch], 128, 6);
  }
}

TEST(Images, RealCatalogPhotoDecodes) {
  ImageRGB img = load_image(real_photo());
  EXPECT_EQ(img.width, 224);
  EXPECT_EQ(img.height, 224);
  // Catalog photos sit on a white background: the corners are near white.
  for (auto [x, y] : std::vector<std::pair<int, int>>{{1, 1}, {222, 1}, {1, 222}, {222, 222}})
    for (int c = 0; c < 3; ++c) EXPECT_GT(img.at(x, y)[c], 200) << x << "," << y;
}

TEST(Images, ErrorsSayWhy) {
  EXPECT_NE(error_of({}).find("empty"), std::string::npos);
  std::vector<uint8_t> jpg = read_file_bytes(real_photo());
  std::vector<uint8_t> half(jpg.begin(), jpg.begin() + jpg.size() / 2);
  EXPECT_NE(error_of(half).find("truncated JPEG"), std::string::npos) << error_of(half);
  std::vector<uint8_t> header_only(jpg.begin(), jpg.begin() + 40);
  EXPECT_NE(error_of(header_only).find("truncated"), std::string::npos) << error_of(header_only);
  std::vector<uint8_t> two(jpg.begin(), jpg.begin() + 2);
  EXPECT_NE(error_of(two).find("truncated"), std::string::npos) << error_of(two);

  std::string garbage = "GARBAGE! this is not an image at all";
  std::string msg = error_of(std::vector<uint8_t>(garbage.begin(), garbage.end()));
  EXPECT_NE(msg.find("unknown image format"), std::string::npos) << msg;
  EXPECT_NE(msg.find("47 41 52 42"), std::string::npos) << msg;  // names the bytes it saw

  // JPEG magic followed by garbage: corrupt.
  std::vector<uint8_t> fake = {0xFF, 0xD8, 0xFF, 0xE0};
  for (int i = 0; i < 200; ++i) fake.push_back(static_cast<uint8_t>(i * 7));
  fake.push_back(0xFF);
  fake.push_back(0xD9);
  msg = error_of(fake);
  EXPECT_NE(msg.find("corrupt JPEG"), std::string::npos) << msg;

  std::vector<uint8_t> png = encode_png(gradient(30, 30));
  std::vector<uint8_t> png_half(png.begin(), png.begin() + png.size() / 2);
  msg = error_of(png_half);
  EXPECT_NE(msg.find("truncated PNG"), std::string::npos) << msg;
  std::vector<uint8_t> png_bad = png;
  for (size_t i = 60; i < 80 && i < png_bad.size(); ++i) png_bad[i] ^= 0x5A;  // inside IDAT: CRC fails
  msg = error_of(png_bad);
  EXPECT_NE(msg.find("corrupt PNG"), std::string::npos) << msg;

  try {
    load_image("/nonexistent/x.jpg");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.jpg"), std::string::npos);
  }
  std::string bad_path = join_path(test::temp_dir("images_err"), "bad.jpg");
  write_file_atomic(bad_path, half.data(), half.size());
  try {
    load_image(bad_path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(bad_path), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos);
  }
}

// Random damage to real files must give an image or an Error, never a crash or another exception.
TEST(Images, DamagedBytesNeverCrash) {
  std::vector<uint8_t> jpg = read_file_bytes(real_photo());
  std::vector<uint8_t> png = encode_png(gradient(40, 40));
  Rng rng(7);
  int errors = 0;
  for (int round = 0; round < 400; ++round) {
    std::vector<uint8_t> b = (round % 2) ? jpg : png;
    int flips = 1 + rng.below(20);
    for (int f = 0; f < flips; ++f) b[rng.below(static_cast<int>(b.size()))] = static_cast<uint8_t>(rng.next());
    if (rng.chance(0.3)) b.resize(rng.below(static_cast<int>(b.size())) + 1);
    try {
      ImageRGB img = decode_image(b);
      EXPECT_EQ(img.pixels.size(), static_cast<size_t>(img.width) * img.height * 3);
    } catch (const Error& e) {
      ++errors;
      EXPECT_GT(std::strlen(e.what()), 10u);
    }
  }
  EXPECT_GT(errors, 100);  // most damage is caught
}
