#include "train/reframe.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "catalog/images.h"
#include "model/image_processor.h"
#include "util/error.h"

namespace tailor {

Rgb border_colour(const ImageRGB& img) {
  if (img.width < 1 || img.height < 1) throw Error("border_colour: empty image");
  std::vector<uint8_t> ch[3];
  auto take = [&](int x, int y) {
    const uint8_t* p = img.at(x, y);
    for (int c = 0; c < 3; ++c) ch[c].push_back(p[c]);
  };
  for (int x = 0; x < img.width; ++x) {
    take(x, 0);
    if (img.height > 1) take(x, img.height - 1);
  }
  for (int y = 1; y + 1 < img.height; ++y) {
    take(0, y);
    if (img.width > 1) take(img.width - 1, y);
  }
  uint8_t m[3];
  for (int c = 0; c < 3; ++c) {
    auto mid = ch[c].begin() + static_cast<std::ptrdiff_t>(ch[c].size() / 2);
    std::nth_element(ch[c].begin(), mid, ch[c].end());
    m[c] = *mid;
  }
  return Rgb{m[0], m[1], m[2]};
}

ImageRGB filled_image(int w, int h, Rgb colour) {
  ImageRGB out;
  out.width = w;
  out.height = h;
  out.pixels.resize(static_cast<size_t>(w) * h * 3);
  for (size_t i = 0; i < out.pixels.size(); i += 3) {
    out.pixels[i] = colour.r;
    out.pixels[i + 1] = colour.g;
    out.pixels[i + 2] = colour.b;
  }
  return out;
}

ImageRGB place_on_canvas(const ImageRGB& img, int canvas_w, int canvas_h, double scale, double cx, double cy, Rgb bg) {
  if (canvas_w < 1 || canvas_h < 1) throw Error("place_on_canvas: canvas must be at least 1x1");
  if (!(scale > 0)) throw Error("place_on_canvas: scale must be > 0");
  ImageRGB out = filled_image(canvas_w, canvas_h, bg);
  int w = std::max(1, static_cast<int>(std::lround(img.width * scale)));
  int h = std::max(1, static_cast<int>(std::lround(img.height * scale)));
  ImageRGB scaled = resize_bicubic(img, w, h);
  int x0 = static_cast<int>(std::lround(cx * canvas_w - w / 2.0));
  int y0 = static_cast<int>(std::lround(cy * canvas_h - h / 2.0));
  for (int y = std::max(0, y0); y < std::min(canvas_h, y0 + h); ++y)
    for (int x = std::max(0, x0); x < std::min(canvas_w, x0 + w); ++x) {
      const uint8_t* s = scaled.at(x - x0, y - y0);
      uint8_t* d = out.at(x, y);
      d[0] = s[0];
      d[1] = s[1];
      d[2] = s[2];
    }
  return out;
}

ImageRGB recolour_background(const ImageRGB& img, Rgb from, Rgb to, int tolerance) {
  ImageRGB out = img;
  const int w = img.width, h = img.height;
  if (w < 1 || h < 1) return out;
  auto near = [&](int x, int y) {
    const uint8_t* p = img.at(x, y);
    return std::abs(p[0] - from.r) <= tolerance && std::abs(p[1] - from.g) <= tolerance && std::abs(p[2] - from.b) <= tolerance;
  };
  // Flood fill from every border pixel near the background colour (an explicit stack: no recursion).
  std::vector<uint8_t> seen(static_cast<size_t>(w) * h, 0);
  std::vector<int32_t> stack;
  auto push = [&](int x, int y) {
    size_t i = static_cast<size_t>(y) * w + x;
    if (seen[i] || !near(x, y)) return;
    seen[i] = 1;
    stack.push_back(static_cast<int32_t>(i));
  };
  for (int x = 0; x < w; ++x) {
    push(x, 0);
    push(x, h - 1);
  }
  for (int y = 0; y < h; ++y) {
    push(0, y);
    push(w - 1, y);
  }
  const int d[3] = {to.r - from.r, to.g - from.g, to.b - from.b};
  while (!stack.empty()) {
    int32_t i = stack.back();
    stack.pop_back();
    int x = i % w, y = i / w;
    uint8_t* p = out.at(x, y);
    for (int c = 0; c < 3; ++c) p[c] = static_cast<uint8_t>(std::clamp(p[c] + d[c], 0, 255));
    if (x > 0) push(x - 1, y);
    if (x + 1 < w) push(x + 1, y);
    if (y > 0) push(x, y - 1);
    if (y + 1 < h) push(x, y + 1);
  }
  return out;
}

ImageRGB box_blur(const ImageRGB& img, int radius) {
  if (radius <= 0) return img;
  const int w = img.width, h = img.height, n = 2 * radius + 1;
  ImageRGB tmp = img, out = img;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        int sum = 0;
        for (int k = -radius; k <= radius; ++k) sum += img.at(std::clamp(x + k, 0, w - 1), y)[c];
        tmp.at(x, y)[c] = static_cast<uint8_t>((sum + n / 2) / n);
      }
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        int sum = 0;
        for (int k = -radius; k <= radius; ++k) sum += tmp.at(x, std::clamp(y + k, 0, h - 1))[c];
        out.at(x, y)[c] = static_cast<uint8_t>((sum + n / 2) / n);
      }
  return out;
}

ImageRGB jpeg_round_trip(const ImageRGB& img, int quality) { return decode_image(encode_jpeg(img, quality)); }

PhotoShift parse_photo_shift(const std::string& name) {
  if (name == "none") return PhotoShift::None;
  if (name == "other-source") return PhotoShift::OtherSource;
  if (name == "portrait") return PhotoShift::Portrait;
  if (name == "zoom") return PhotoShift::Zoom;
  if (name == "background") return PhotoShift::Background;
  if (name == "jpeg") return PhotoShift::Jpeg;
  throw Error("--shift: unknown framing \"" + name + "\" (none, other-source, portrait, zoom, background, jpeg)");
}

const char* photo_shift_name(PhotoShift shift) {
  switch (shift) {
    case PhotoShift::None: return "none";
    case PhotoShift::OtherSource: return "other-source";
    case PhotoShift::Portrait: return "portrait";
    case PhotoShift::Zoom: return "zoom";
    case PhotoShift::Background: return "background";
    case PhotoShift::Jpeg: return "jpeg";
  }
  return "?";
}

// Light neutral tones product photos are shot on: greys and a warm and a cool off-white.
static Rgb draw_tone(Rng& rng) {
  static const Rgb tones[] = {{238, 238, 238}, {228, 228, 228}, {245, 241, 234}, {232, 236, 242}, {250, 250, 250}};
  return tones[rng.below(5)];
}

// The tolerance that tells the background from a product whose colour is close to it.
constexpr int kBackgroundTolerance = 10;

ImageRGB shift_photo(const ImageRGB& img, PhotoShift shift, const std::string& key) {
  if (shift == PhotoShift::None) return img;
  Rng rng(splitmix64_mix(fnv1a64(key) ^ (0xD1B54A32D192ED03ull * (static_cast<uint64_t>(shift) + 1))));
  const Rgb bg = border_colour(img);
  switch (shift) {
    case PhotoShift::Portrait:
      return place_on_canvas(img, 225, 300, 225.0 / img.width, 0.5, 0.5, bg);
    case PhotoShift::Zoom: {
      double s = rng.uniform(0.6, 0.8);
      return place_on_canvas(img, img.width, img.height, s, rng.uniform(0.45, 0.55), rng.uniform(0.45, 0.55), bg);
    }
    case PhotoShift::Background:
      return recolour_background(img, bg, draw_tone(rng), kBackgroundTolerance);
    case PhotoShift::Jpeg:
      return jpeg_round_trip(img, 30 + rng.below(31));
    case PhotoShift::OtherSource: {
      Rgb tone = draw_tone(rng);
      ImageRGB toned = recolour_background(img, bg, tone, kBackgroundTolerance);
      double s = rng.uniform(0.7, 0.95) * 225.0 / img.width;
      ImageRGB framed = place_on_canvas(toned, 225, 300, s, 0.5, rng.uniform(0.45, 0.55), tone);
      return jpeg_round_trip(framed, 40 + rng.below(36));
    }
    case PhotoShift::None: break;
  }
  return img;
}

ImageRGB random_reframe(const ImageRGB& img, Rng& rng) {
  const Rgb bg = border_colour(img);
  Rgb tone = bg;
  ImageRGB out = img;
  if (rng.chance(1.0 / 3)) {
    tone = draw_tone(rng);
    out = recolour_background(out, bg, tone, kBackgroundTolerance);
  }
  if (rng.chance(0.5)) {
    double aspect = std::exp(rng.uniform(std::log(0.75), std::log(4.0 / 3)));  // height / width
    int cw = img.width, ch = std::max(1, static_cast<int>(std::lround(img.width * aspect)));
    if (aspect > 1) {
      ch = img.height;
      cw = std::max(1, static_cast<int>(std::lround(img.height / aspect)));
    }
    // Fit the photo in the canvas, then 65-110 % of that.
    double fit = std::min(static_cast<double>(cw) / img.width, static_cast<double>(ch) / img.height);
    double s = fit * rng.uniform(0.65, 1.1);
    out = place_on_canvas(out, cw, ch, s, rng.uniform(0.45, 0.55), rng.uniform(0.45, 0.55), tone);
  }
  if (rng.chance(0.2)) out = box_blur(out, 1);
  if (rng.chance(1.0 / 3)) out = jpeg_round_trip(out, 30 + rng.below(61));
  return out;
}

}  // namespace tailor
