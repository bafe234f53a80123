// Drawing the synthetic product photos with Cairo (built only with TAILOR_WITH_CAIRO).
#include <cairo.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/rng.h"
#include "catalog/synth.h"
#include "util/error.h"

namespace tailor {

static const int kSize = 224;  // photo side, as in the real catalog

static const SynthColour& palette_colour(const std::string& name) {
  for (const auto& c : synth_palette())
    if (name == c.name) return c;
  throw Error("synth: colour \"" + name + "\" is not in the palette");
}

static uint64_t render_stream(uint64_t seed, int index) {
  return splitmix64_mix(~seed ^ (0x5851F42D4C957F2Dull * static_cast<uint64_t>(index + 1)));
}

// ---- drawing --------------------------------------------------------------------------------

struct Rgb {
  double r, g, b;
};

static Rgb shade(Rgb c, double k) { return {c.r * k, c.g * k, c.b * k}; }
static Rgb towards(Rgb c, Rgb t, double k) {
  return {c.r + (t.r - c.r) * k, c.g + (t.g - c.g) * k, c.b + (t.b - c.b) * k};
}
static double luma(Rgb c) { return 0.299 * c.r + 0.587 * c.g + 0.114 * c.b; }
static void set_rgb(cairo_t* cr, Rgb c) {
  cairo_set_source_rgb(cr, std::clamp(c.r, 0.0, 1.0), std::clamp(c.g, 0.0, 1.0), std::clamp(c.b, 0.0, 1.0));
}
static void set_rgba(cairo_t* cr, Rgb c, double a) {
  cairo_set_source_rgba(cr, std::clamp(c.r, 0.0, 1.0), std::clamp(c.g, 0.0, 1.0), std::clamp(c.b, 0.0, 1.0), a);
}

// The garment's shape in its own frame: origin at the centre of the torso, pixels at scale 1.
struct Shape {
  double W, H, top, bottom, nw;  // torso width/height, neck opening width
  bool sleeveless, long_sleeves;
};

static void path_sleeve(cairo_t* cr, const Shape& s, double side) {
  double x0 = side * s.W / 2;  // the torso's side
  if (s.long_sleeves) {
    cairo_move_to(cr, x0 - side * 2, s.top + 9);
    cairo_line_to(cr, x0 + side * 32, s.bottom - 8);
    cairo_line_to(cr, x0 + side * 13, s.bottom + 2);
    cairo_line_to(cr, x0 - side * 2, s.top + 48);
  } else {
    cairo_move_to(cr, x0 - side * 2, s.top + 9);
    cairo_line_to(cr, x0 + side * 38, s.top + 36);
    cairo_line_to(cr, x0 + side * 22, s.top + 60);
    cairo_line_to(cr, x0 - side * 2, s.top + 48);
  }
  cairo_close_path(cr);
}

static void path_torso(cairo_t* cr, const Shape& s) {
  double hw = s.W / 2, n = s.nw / 2;
  cairo_move_to(cr, -n, s.top);
  if (s.sleeveless) {
    // Narrow straps and deep arm holes.
    cairo_line_to(cr, -n - 13, s.top + 1);
    cairo_curve_to(cr, -n - 13, s.top + 30, -hw + 4, s.top + 38, -hw, s.top + 50);
  } else {
    cairo_line_to(cr, -hw, s.top + 10);
  }
  cairo_line_to(cr, -hw + 3, s.bottom);
  cairo_line_to(cr, hw - 3, s.bottom);
  if (s.sleeveless) {
    cairo_line_to(cr, hw, s.top + 50);
    cairo_curve_to(cr, hw - 4, s.top + 38, n + 13, s.top + 30, n + 13, s.top + 1);
  } else {
    cairo_line_to(cr, hw, s.top + 10);
  }
  cairo_line_to(cr, n, s.top);
  cairo_close_path(cr);
}

static void path_garment(cairo_t* cr, const Shape& s) {
  if (!s.sleeveless) {
    path_sleeve(cr, s, -1);
    path_sleeve(cr, s, +1);
  }
  path_torso(cr, s);
}

// A repeating tile for stripes or checks, locked to the garment's frame.
static cairo_pattern_t* make_fabric(const std::string& pattern, Rgb base, Rgb second, double period, bool vertical) {
  if (pattern != "Striped" && pattern != "Checked") {
    return cairo_pattern_create_rgb(std::clamp(base.r, 0.0, 1.0), std::clamp(base.g, 0.0, 1.0),
                                    std::clamp(base.b, 0.0, 1.0));
  }
  int p = static_cast<int>(std::lround(period));
  cairo_surface_t* tile = cairo_image_surface_create(CAIRO_FORMAT_RGB24, p, p);
  cairo_t* t = cairo_create(tile);
  set_rgb(t, base);
  cairo_paint(t);
  if (pattern == "Striped") {
    double w = std::round(p * 0.45);
    set_rgb(t, second);
    if (vertical) cairo_rectangle(t, 0, 0, w, p);
    else cairo_rectangle(t, 0, 0, p, w);
    cairo_fill(t);
  } else {
    double w = std::round(p * 0.32);
    set_rgba(t, second, 0.9);
    cairo_rectangle(t, 0, 0, p, w);
    cairo_fill(t);
    cairo_rectangle(t, 0, 0, w, p);
    cairo_fill(t);
  }
  cairo_destroy(t);
  cairo_pattern_t* pat = cairo_pattern_create_for_surface(tile);
  cairo_pattern_set_extend(pat, CAIRO_EXTEND_REPEAT);
  cairo_pattern_set_filter(pat, CAIRO_FILTER_BILINEAR);
  cairo_surface_destroy(tile);
  return pat;
}

static void draw_star(cairo_t* cr, double cx, double cy, double r) {
  for (int i = 0; i < 10; ++i) {
    double a = -M_PI / 2 + i * M_PI / 5;
    double rr = (i % 2) ? r * 0.45 : r;
    if (i == 0) cairo_move_to(cr, cx + rr * std::cos(a), cy + rr * std::sin(a));
    else cairo_line_to(cr, cx + rr * std::cos(a), cy + rr * std::sin(a));
  }
  cairo_close_path(cr);
}

static void draw_button(cairo_t* cr, double x, double y, double r, Rgb c, Rgb edge) {
  cairo_arc(cr, x, y, r, 0, 2 * M_PI);
  set_rgb(cr, c);
  cairo_fill_preserve(cr);
  set_rgb(cr, edge);
  cairo_set_line_width(cr, 1);
  cairo_stroke(cr);
}

static void draw_collar_flaps(cairo_t* cr, const Shape& s, bool spread, Rgb fill, Rgb edge) {
  double n = s.nw / 2;
  for (double side : {-1.0, 1.0}) {
    if (spread) {
      cairo_move_to(cr, side * (n + 5), s.top - 3);
      cairo_line_to(cr, side * 1, s.top + 7);
      cairo_line_to(cr, side * 5, s.top + 22);
      cairo_line_to(cr, side * (n + 20), s.top + 30);
    } else {  // polo: shorter flaps lying flat, points down
      cairo_move_to(cr, side * (n + 5), s.top - 2);
      cairo_line_to(cr, side * 1, s.top + 5);
      cairo_line_to(cr, side * 9, s.top + 20);
      cairo_line_to(cr, side * (n + 2), s.top + 30);
    }
    cairo_close_path(cr);
    set_rgb(cr, fill);
    cairo_fill_preserve(cr);
    set_rgb(cr, edge);
    cairo_set_line_width(cr, 2);
    cairo_stroke(cr);
  }
}

// Long (~210 lines) on purpose: one painting script in drawing order, every random draw in a fixed
// sequence from one stream. Split into functions, the order of the draws (which fixes every
// committed synthetic catalog byte for byte) would hide in the call order.
ImageRGB synth_render(const SynthProduct& p, uint64_t seed, int index) {
  Rng r(render_stream(seed, index));
  const SynthColour& pc = palette_colour(p.base_colour);
  Rgb base{pc.r / 255.0, pc.g / 255.0, pc.b / 255.0};
  // Brightness jitter, smaller for the lightest colours so White stays white.
  double bright = luma(base) > 0.8 ? r.uniform(0.96, 1.02) : r.uniform(0.88, 1.08);
  base = shade(base, bright);
  bool light = luma(base) > 0.5;
  Rgb white{1, 1, 1}, black{0, 0, 0};
  Rgb second = light ? towards(base, black, 0.42) : towards(base, white, 0.45);  // stripes, checks
  Rgb inner = shade(base, 0.5);                                                 // inside of the neck
  Rgb edge = light ? shade(base, 0.45) : towards(base, white, 0.25);            // outlines
  if (luma(base) < 0.15) edge = {0.35, 0.35, 0.37};

  Shape s;
  s.W = r.uniform(90, 104);
  s.H = r.uniform(122, 136);
  s.top = -s.H / 2;
  s.bottom = s.H / 2;
  s.nw = r.uniform(38, 46);
  s.sleeveless = p.sleeve_length == "Sleeveless";
  s.long_sleeves = p.sleeve_length == "Long Sleeves";
  double scale = r.uniform(0.86, 1.0);
  double angle = r.uniform(-6, 6) * M_PI / 180;
  double dx = r.uniform(-10, 10), dy = r.uniform(-8, 8);
  // Bold: 12.5-15 px at 64x64, about two patches of the tiny preset's ViT. A period near the patch
  // size (26-34 px here, 7-10 at 64) aliases against the patch grid, and a ViT trained from scratch
  // told stripes from checks only ~77 % of the time after 10 epochs (docs/demo.md).
  double period = r.uniform(44, 52);
  bool vertical = r.chance(0.5);

  cairo_surface_t* surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, kSize, kSize);
  cairo_t* cr = cairo_create(surf);

  // Background: a light tint with a soft vertical gradient (never as light as the White garment).
  double bl = r.uniform(0.80, 0.92);
  Rgb bg{bl + r.uniform(-0.05, 0.05), bl + r.uniform(-0.05, 0.05), bl + r.uniform(-0.05, 0.05)};
  cairo_pattern_t* bgp = cairo_pattern_create_linear(0, 0, 0, kSize);
  Rgb bg2 = shade(bg, r.uniform(0.9, 1.0));
  cairo_pattern_add_color_stop_rgb(bgp, 0, bg.r, bg.g, bg.b);
  cairo_pattern_add_color_stop_rgb(bgp, 1, bg2.r, bg2.g, bg2.b);
  cairo_set_source(cr, bgp);
  cairo_paint(cr);
  cairo_pattern_destroy(bgp);

  cairo_translate(cr, kSize / 2.0 + dx, kSize / 2.0 + dy);
  cairo_rotate(cr, angle);
  cairo_scale(cr, scale, scale);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);

  // 1. The fabric.
  cairo_pattern_t* fabric = make_fabric(p.pattern, base, second, period, vertical);
  cairo_set_source(cr, fabric);
  path_garment(cr, s);
  cairo_fill(cr);
  cairo_pattern_destroy(fabric);

  // 2. A print on the chest: one bold motif in a contrasting colour.
  if (p.pattern == "Printed") {
    Rgb ink = light ? r.pick<Rgb>({{0.1, 0.1, 0.12}, {0.12, 0.16, 0.45}, {0.55, 0.08, 0.1}})
                    : r.pick<Rgb>({{0.98, 0.98, 0.96}, {0.98, 0.85, 0.3}, {0.6, 0.85, 0.95}});
    double cx = r.uniform(-6, 6), cy = s.top + r.uniform(56, 66), rad = r.uniform(22, 28);
    int motif = r.below(3);
    set_rgb(cr, ink);
    if (motif == 0) {
      cairo_arc(cr, cx, cy, rad, 0, 2 * M_PI);
      cairo_fill(cr);
      set_rgb(cr, base);
      cairo_arc(cr, cx, cy, rad * 0.5, 0, 2 * M_PI);
      cairo_fill(cr);
    } else if (motif == 1) {
      draw_star(cr, cx, cy, rad * 1.15);
      cairo_fill(cr);
    } else {
      cairo_move_to(cr, cx, cy - rad * 1.1);
      cairo_line_to(cr, cx + rad, cy);
      cairo_line_to(cr, cx, cy + rad * 1.1);
      cairo_line_to(cr, cx - rad, cy);
      cairo_close_path(cr);
      cairo_fill(cr);
    }
  }

  // 3. Shading: light from one side, shadow towards the other.
  {
    cairo_save(cr);
    path_garment(cr, s);
    cairo_clip(cr);
    double side = r.chance(0.5) ? 1 : -1;
    cairo_pattern_t* g = cairo_pattern_create_linear(-side * s.W / 2, s.top, side * s.W / 2, s.bottom);
    cairo_pattern_add_color_stop_rgba(g, 0, 1, 1, 1, r.uniform(0.0, 0.10));
    cairo_pattern_add_color_stop_rgba(g, 1, 0, 0, 0, r.uniform(0.05, 0.18));
    cairo_set_source(cr, g);
    cairo_paint(cr);
    cairo_pattern_destroy(g);
    cairo_restore(cr);
  }

  // 4. Outlines: each sleeve and the torso, so the seams show.
  set_rgb(cr, edge);
  cairo_set_line_width(cr, 2.5);
  if (!s.sleeveless) {
    path_sleeve(cr, s, -1);
    cairo_stroke(cr);
    path_sleeve(cr, s, +1);
    cairo_stroke(cr);
  }
  path_torso(cr, s);
  cairo_stroke(cr);

  // 5. Neck, collar, placket.
  double n = s.nw / 2;
  Rgb rib = light ? shade(base, 0.72) : towards(base, white, 0.35);
  Rgb button = light ? shade(base, 0.35) : towards(base, white, 0.7);
  if (p.neck == "Round Neck") {
    cairo_move_to(cr, -n, s.top);
    cairo_curve_to(cr, -n, s.top + 28, n, s.top + 28, n, s.top);
    cairo_close_path(cr);
    set_rgb(cr, inner);
    cairo_fill(cr);
    cairo_move_to(cr, -n, s.top);
    cairo_curve_to(cr, -n, s.top + 28, n, s.top + 28, n, s.top);
    set_rgb(cr, rib);
    cairo_set_line_width(cr, 5);
    cairo_stroke(cr);
  } else if (p.neck == "V-Neck") {
    cairo_move_to(cr, -n, s.top);
    cairo_line_to(cr, 0, s.top + 54);
    cairo_line_to(cr, n, s.top);
    cairo_close_path(cr);
    set_rgb(cr, inner);
    cairo_fill(cr);
    cairo_move_to(cr, -n, s.top);
    cairo_line_to(cr, 0, s.top + 54);
    cairo_line_to(cr, n, s.top);
    set_rgb(cr, rib);
    cairo_set_line_width(cr, 5);
    cairo_stroke(cr);
  } else if (p.neck == "Polo Collar") {
    cairo_move_to(cr, -n, s.top);
    cairo_curve_to(cr, -n, s.top + 10, n, s.top + 10, n, s.top);
    cairo_close_path(cr);
    set_rgb(cr, inner);
    cairo_fill(cr);
    cairo_rectangle(cr, -8, s.top + 6, 16, 46);  // short placket
    set_rgb(cr, shade(base, light ? 0.88 : 1.15));
    cairo_fill_preserve(cr);
    set_rgb(cr, edge);
    cairo_set_line_width(cr, 1.5);
    cairo_stroke(cr);
    draw_button(cr, 0, s.top + 22, 4, button, edge);
    draw_button(cr, 0, s.top + 40, 4, button, edge);
    draw_collar_flaps(cr, s, false, shade(base, light ? 0.93 : 1.2), edge);
  } else if (!p.collar.empty()) {
    // Shirts: a full-length placket with buttons, then the collar.
    cairo_move_to(cr, 0, s.top + 8);
    cairo_line_to(cr, 0, s.bottom);
    set_rgb(cr, edge);
    cairo_set_line_width(cr, 2);
    cairo_stroke(cr);
    for (double y = s.top + 24; y < s.bottom - 6; y += 22) draw_button(cr, 4, y, 3.2, button, edge);
    if (p.collar == "Spread Collar") {
      cairo_move_to(cr, -n, s.top);
      cairo_line_to(cr, 0, s.top + 16);
      cairo_line_to(cr, n, s.top);
      cairo_close_path(cr);
      set_rgb(cr, inner);
      cairo_fill(cr);
      draw_collar_flaps(cr, s, true, shade(base, light ? 0.95 : 1.2), edge);
    } else {  // Mandarin: a plain standing band, no points
      cairo_move_to(cr, -n, s.top + 1);
      cairo_curve_to(cr, -n, s.top + 9, n, s.top + 9, n, s.top + 1);
      set_rgb(cr, edge);
      cairo_set_line_width(cr, 11);
      cairo_stroke(cr);
      cairo_move_to(cr, -n, s.top + 1);
      cairo_curve_to(cr, -n, s.top + 9, n, s.top + 9, n, s.top + 1);
      set_rgb(cr, shade(base, light ? 0.9 : 1.2));
      cairo_set_line_width(cr, 7);
      cairo_stroke(cr);
    }
  }
  // Cuffs on long-sleeved shirts.
  if (p.article_type == "Shirts" && s.long_sleeves) {
    for (double side : {-1.0, 1.0}) {
      double x0 = side * s.W / 2;
      cairo_move_to(cr, x0 + side * 29, s.bottom - 14);
      cairo_line_to(cr, x0 + side * 11, s.bottom - 4);
      set_rgb(cr, edge);
      cairo_set_line_width(cr, 2);
      cairo_stroke(cr);
    }
  }

  cairo_destroy(cr);
  cairo_surface_flush(surf);
  ImageRGB img;
  img.width = kSize;
  img.height = kSize;
  img.pixels.resize(static_cast<size_t>(kSize) * kSize * 3);
  const uint8_t* data = cairo_image_surface_get_data(surf);
  int stride = cairo_image_surface_get_stride(surf);
  for (int y = 0; y < kSize; ++y)
    for (int x = 0; x < kSize; ++x) {
      uint32_t px;
      std::memcpy(&px, data + static_cast<size_t>(y) * stride + x * 4, 4);  // native-endian 0x00RRGGBB
      uint8_t* o = img.at(x, y);
      o[0] = static_cast<uint8_t>(px >> 16);
      o[1] = static_cast<uint8_t>(px >> 8);
      o[2] = static_cast<uint8_t>(px);
    }
  cairo_surface_destroy(surf);
  return img;
}

}  // namespace tailor
