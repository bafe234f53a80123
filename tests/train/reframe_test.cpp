// Photos framed as other sources frame them (train/reframe.h): each operation against pixels worked
// out by hand on small images, the background recolouring against a rule checked pixel by pixel on a
// real catalog photo (only border-connected pixels near the border's colour move, all by the same
// offset), and the named framings' sizes and determinism.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <set>
#include <vector>

#include "catalog/images.h"
#include "test_util.h"
#include "train/reframe.h"
#include "util/error.h"
#include "util/fs.h"

using namespace tailor;

namespace {

void set(ImageRGB& img, int x, int y, Rgb c) {
  uint8_t* p = img.at(x, y);
  p[0] = c.r;
  p[1] = c.g;
  p[2] = c.b;
}

bool is(const ImageRGB& img, int x, int y, Rgb c) {
  const uint8_t* p = img.at(x, y);
  return p[0] == c.r && p[1] == c.g && p[2] == c.b;
}

// A real catalog photo (a Shirt on the catalog's plain background).
ImageRGB catalog_photo() { return load_image(join_path(join_path(test::fashion_catalog(), "images"), "15970.jpg")); }

}  // namespace

TEST(Reframe, BorderColourIsTheMedianOfTheOutermostRing) {
  ImageRGB img = filled_image(5, 4, {10, 20, 30});
  // 14 border pixels: 8 stay (10,20,30), 6 become (200,0,0): the median is still the majority.
  set(img, 0, 0, {200, 0, 0});
  set(img, 1, 0, {200, 0, 0});
  set(img, 2, 0, {200, 0, 0});
  set(img, 4, 1, {200, 0, 0});
  set(img, 4, 2, {200, 0, 0});
  set(img, 0, 3, {200, 0, 0});
  set(img, 2, 2, {255, 255, 255});  // inside: not counted
  Rgb b = border_colour(img);
  EXPECT_EQ(b.r, 10);
  EXPECT_EQ(b.g, 20);
  EXPECT_EQ(b.b, 30);
}

TEST(Reframe, PlaceOnCanvasCopiesAtScaleOneAndCutsAtTheEdges) {
  ImageRGB img = filled_image(4, 4, {0, 0, 0});
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) set(img, x, y, {static_cast<uint8_t>(10 * x), static_cast<uint8_t>(10 * y), 7});
  const Rgb bg{1, 2, 3};
  // Centre of a 10x12 canvas: top-left at (5 - 2, 6 - 2).
  ImageRGB c = place_on_canvas(img, 10, 12, 1.0, 0.5, 0.5, bg);
  ASSERT_EQ(c.width, 10);
  ASSERT_EQ(c.height, 12);
  for (int y = 0; y < 12; ++y)
    for (int x = 0; x < 10; ++x) {
      bool inside = x >= 3 && x < 7 && y >= 4 && y < 8;
      if (inside) EXPECT_TRUE(is(c, x, y, {static_cast<uint8_t>(10 * (x - 3)), static_cast<uint8_t>(10 * (y - 4)), 7})) << x << "," << y;
      else EXPECT_TRUE(is(c, x, y, bg)) << x << "," << y;
    }
  // Centred on the left edge: the photo's right half only, at x 0..1.
  ImageRGB e = place_on_canvas(img, 10, 12, 1.0, 0.0, 0.5, bg);
  EXPECT_TRUE(is(e, 0, 4, {20, 0, 7}));
  EXPECT_TRUE(is(e, 1, 7, {30, 30, 7}));
  EXPECT_TRUE(is(e, 2, 4, bg));
  // Half size: a 2x2 photo.
  ImageRGB h = place_on_canvas(img, 10, 12, 0.5, 0.5, 0.5, bg);
  int photo = 0;
  for (int y = 0; y < 12; ++y)
    for (int x = 0; x < 10; ++x) photo += !is(h, x, y, bg);
  EXPECT_EQ(photo, 4);
  EXPECT_THROW(place_on_canvas(img, 0, 5, 1.0, 0.5, 0.5, bg), Error);
  EXPECT_THROW(place_on_canvas(img, 5, 5, 0.0, 0.5, 0.5, bg), Error);
}

TEST(Reframe, BackgroundRecolouringLeavesTheProductAndEnclosedPixels) {
  const Rgb white{255, 255, 255}, red{200, 0, 0}, grey{230, 230, 230};
  ImageRGB img = filled_image(9, 9, white);
  for (int i = 2; i <= 6; ++i) {  // a red square outline; white inside it is enclosed
    set(img, i, 2, red);
    set(img, i, 6, red);
    set(img, 2, i, red);
    set(img, 6, i, red);
  }
  set(img, 0, 8, {250, 251, 252});  // near white, on the border: moves by the same offset (-25)
  set(img, 8, 0, {240, 255, 255});  // 15 from white: outside the tolerance, stays
  ImageRGB out = recolour_background(img, white, grey, 10);
  for (int y = 0; y < 9; ++y)
    for (int x = 0; x < 9; ++x) {
      bool ring = (x >= 2 && x <= 6 && (y == 2 || y == 6)) || (y >= 2 && y <= 6 && (x == 2 || x == 6));
      bool enclosed = x > 2 && x < 6 && y > 2 && y < 6;
      if (ring) EXPECT_TRUE(is(out, x, y, red)) << x << "," << y;
      else if (enclosed) EXPECT_TRUE(is(out, x, y, white)) << x << "," << y;
      else if (x == 0 && y == 8) EXPECT_TRUE(is(out, x, y, {225, 226, 227}));
      else if (x == 8 && y == 0) EXPECT_TRUE(is(out, x, y, {240, 255, 255}));
      else EXPECT_TRUE(is(out, x, y, grey)) << x << "," << y;
    }
}

TEST(Reframe, BoxBlurAveragesRowsThenColumns) {
  ImageRGB img = filled_image(5, 5, {0, 0, 0});
  set(img, 2, 2, {255, 90, 0});
  ImageRGB b = box_blur(img, 1);
  // Rows: 255 / 3 rounds to 85, 90 / 3 = 30; columns: 85 / 3 rounds to 28, 30 / 3 = 10.
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 5; ++x) {
      bool block = std::abs(x - 2) <= 1 && std::abs(y - 2) <= 1;
      EXPECT_TRUE(is(b, x, y, block ? Rgb{28, 10, 0} : Rgb{0, 0, 0})) << x << "," << y;
    }
  EXPECT_EQ(box_blur(img, 0).pixels, img.pixels);
}

TEST(Reframe, OnARealPhotoOnlyTheBackgroundChangesTone) {
  ImageRGB img = catalog_photo();
  const Rgb bg = border_colour(img);
  const Rgb to{228, 228, 228};
  ImageRGB out = recolour_background(img, bg, to, 10);
  const int d[3] = {to.r - bg.r, to.g - bg.g, to.b - bg.b};
  const uint8_t from[3] = {bg.r, bg.g, bg.b};
  int64_t moved = 0;
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) {
      const uint8_t* a = img.at(x, y);
      const uint8_t* b = out.at(x, y);
      if (a[0] == b[0] && a[1] == b[1] && a[2] == b[2]) continue;
      ++moved;
      for (int c = 0; c < 3; ++c) {
        ASSERT_LE(std::abs(a[c] - from[c]), 10) << "pixel " << x << "," << y << " is not background but changed";
        ASSERT_EQ(b[c], std::clamp(a[c] + d[c], 0, 255)) << x << "," << y;
      }
    }
  // The catalog's photos are shot on a plain background: a good part of the photo is background.
  EXPECT_GT(moved, img.width * img.height / 10);
  EXPECT_LT(moved, img.width * img.height);
}

TEST(Reframe, NamedFramingsHaveTheirSizesAndAreDeterministicPerProduct) {
  ImageRGB img = catalog_photo();
  EXPECT_EQ(shift_photo(img, PhotoShift::None, "1").pixels, img.pixels);
  for (PhotoShift s : {PhotoShift::OtherSource, PhotoShift::Portrait}) {
    ImageRGB a = shift_photo(img, s, "15970");
    EXPECT_EQ(a.width, 225) << photo_shift_name(s);
    EXPECT_EQ(a.height, 300) << photo_shift_name(s);
  }
  for (PhotoShift s : {PhotoShift::Zoom, PhotoShift::Background, PhotoShift::Jpeg, PhotoShift::OtherSource}) {
    ImageRGB a = shift_photo(img, s, "15970"), b = shift_photo(img, s, "15970");
    EXPECT_EQ(a.pixels, b.pixels) << photo_shift_name(s) << " is not deterministic";
    EXPECT_NE(a.pixels, img.pixels) << photo_shift_name(s) << " changed nothing";
    if (s != PhotoShift::Jpeg) EXPECT_EQ(a.width, s == PhotoShift::OtherSource ? 225 : img.width);
  }
  // Products draw their own framings: over 20 keys, zoom gives more than one scale.
  std::set<std::vector<uint8_t>> zooms;
  for (int k = 0; k < 20; ++k) zooms.insert(shift_photo(img, PhotoShift::Zoom, std::to_string(k)).pixels);
  EXPECT_GT(zooms.size(), 10u);
  // Portrait: the photo fills the width; the bands above and below are the photo's background colour.
  ImageRGB p = shift_photo(img, PhotoShift::Portrait, "15970");
  const Rgb bg = border_colour(img);
  for (int x = 0; x < 225; ++x) {
    EXPECT_TRUE(is(p, x, 10, bg));
    EXPECT_TRUE(is(p, x, 290, bg));
  }
  EXPECT_EQ(parse_photo_shift("other-source"), PhotoShift::OtherSource);
  try {
    parse_photo_shift("sideways");
    ADD_FAILURE() << "an unknown framing was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"sideways\" (none, other-source, portrait, zoom, background, jpeg)"), std::string::npos);
  }
}

TEST(Reframe, JpegRoundTripLosesMoreAtLowerQuality) {
  ImageRGB img = catalog_photo();
  auto error = [&](int q) {
    ImageRGB j = jpeg_round_trip(img, q);
    EXPECT_EQ(j.width, img.width);
    double sum = 0;
    for (size_t i = 0; i < img.pixels.size(); ++i) sum += std::abs(img.pixels[i] - j.pixels[i]);
    return sum / static_cast<double>(img.pixels.size());
  };
  double e90 = error(90), e30 = error(30);
  EXPECT_LT(e90, 3.0);
  EXPECT_GT(e30, e90);
}

TEST(Reframe, RandomFramingsStayWithinTheirRanges) {
  ImageRGB img = catalog_photo();
  Rng rng(7);
  int not_square = 0;
  for (int i = 0; i < 60; ++i) {
    ImageRGB r = random_reframe(img, rng);
    // Canvas aspect 3:4 to 4:3, the longer side the photo's.
    EXPECT_GE(std::min(r.width, r.height), 168) << i;
    EXPECT_LE(std::max(r.width, r.height), 224) << i;
    not_square += r.width != r.height;
  }
  EXPECT_GT(not_square, 15);  // about half
  EXPECT_LT(not_square, 45);
  Rng a(99), b(99);
  EXPECT_EQ(random_reframe(img, a).pixels, random_reframe(img, b).pixels);
}
