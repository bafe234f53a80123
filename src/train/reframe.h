// Photos framed as other sources frame them: the same product on another canvas (portrait 3:4, as
// many shops shoot; more or less margin), on another background tone, saved at another JPEG quality.
// Two users: `tailor eval --shift` renders the validation photos this way, deterministically per
// product (a stand-in for another catalog's photos, which a shop rarely has labelled), and image-side
// pre-training's `--pretrain-reframe` draws random framings (train/augment.h).
//
// Every operation keeps the labels true: the product's own pixels are only moved and scaled (never
// recoloured, never cut by more than a few percent), and only the background changes tone — the
// pixels connected to the photo's border whose colour is within a small tolerance of the border's,
// shifted by the same offset so that shading survives.
#pragma once
#include <cstdint>
#include <string>

#include "core/image.h"
#include "core/rng.h"

namespace tailor {

struct Rgb {
  uint8_t r = 255, g = 255, b = 255;
};

// A w x h image of one colour.
ImageRGB filled_image(int w, int h, Rgb colour);
// The photo's background colour: the per-channel median of its outermost ring of pixels.
Rgb border_colour(const ImageRGB& img);
// The photo scaled by `scale` (antialiased bicubic) onto a canvas_w x canvas_h canvas of colour bg,
// its centre at (cx, cy) in fractions of the canvas; what falls outside the canvas is cut.
ImageRGB place_on_canvas(const ImageRGB& img, int canvas_w, int canvas_h, double scale, double cx, double cy, Rgb bg);
// The background recoloured: every pixel connected to the border (4-neighbours) whose channels are
// each within `tolerance` of `from` moves by (to - from).
ImageRGB recolour_background(const ImageRGB& img, Rgb from, Rgb to, int tolerance);
// A (2 radius + 1)-wide box blur, horizontal then vertical, edges clamped.
ImageRGB box_blur(const ImageRGB& img, int radius);
// Encoded as JPEG at `quality` (libturbojpeg, 4:2:0) and decoded back.
ImageRGB jpeg_round_trip(const ImageRGB& img, int quality);

// The framings `tailor eval --shift` renders (each deterministic per photo key):
// - portrait: on a 225x300 canvas, the photo filling its width (the model's resize then squeezes it);
// - zoom: the product at 60-80 % of its size, centred within 5 %, on its own background;
// - background: the background in another light neutral tone;
// - jpeg: re-saved at quality 30-60;
// - other-source: all four at once, as a photo of another shop (225x300, product at 70-95 % of the
//   width, another tone, quality 40-75).
enum class PhotoShift { None, OtherSource, Portrait, Zoom, Background, Jpeg };
PhotoShift parse_photo_shift(const std::string& name);  // Error naming the value and the choices
const char* photo_shift_name(PhotoShift shift);
ImageRGB shift_photo(const ImageRGB& img, PhotoShift shift, const std::string& key);

// One random framing for training, drawn from rng: half of the photos on a canvas of aspect 3:4 to
// 4:3 at 65-110 % scale, a third on another background tone, a fifth blurred by one pixel, a third
// re-saved at JPEG quality 30-90. Never a colour change of the product, never a flip (the caller's).
ImageRGB random_reframe(const ImageRGB& img, Rng& rng);

}  // namespace tailor
