// tailor synth: a synthetic catalog in the Kaggle layout (styles.csv, styles/<id>.json,
// images/<id>.jpg 224x224) whose photos are tops drawn with Cairo from known attributes.
// It is the offline default behind `tailor demo`, and a dataset a small model can actually learn:
// every visual attribute stays visible after downscaling to 64x64.
//
// Visual attributes (value strings as in the real catalog):
//   Sleeve Length: Short Sleeves, Long Sleeves, Sleeveless (Tshirts only)
//   Neck (Tshirts): Round Neck, V-Neck, Polo Collar     Collar (Shirts): Spread Collar, Mandarin Collar
//   Pattern: Solid, Striped, Checked, Printed            baseColour: see synth_palette()
// Fabric and Fit are catalog-like metadata only (not drawn).
// Deterministic: the same seed and count give byte-identical files (own PRNG, no std distributions).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "catalog/images.h"

namespace tailor {

struct SynthOptions {
  int products = 400;
  std::string out_dir;
  uint64_t seed = 1;
  int threads = 0;  // 0 = one per core
  bool progress = true;
};

// The truth about one synthetic product. Empty string = attribute not set for this product.
struct SynthProduct {
  std::string id;            // "100000", "100001", ...
  std::string article_type;  // "Tshirts" or "Shirts"
  std::string gender, base_colour, sleeve_length, neck, collar, pattern, fabric, fit;
  std::string season, usage, year;
  std::string display_name;
};

struct SynthColour {
  const char* name;
  uint8_t r, g, b;
};
// The named palette: well separated colours with the real catalog's names.
const std::vector<SynthColour>& synth_palette();

// The attributes of product `index` of a catalog made with `seed` (independent of the count).
SynthProduct synth_product(uint64_t seed, int index);
// Draws the product photo (224x224). Variation (scale, position, rotation, shading, background)
// comes from `seed` and `index` too, so the same inputs give the same pixels.
ImageRGB synth_render(const SynthProduct& p, uint64_t seed, int index);

struct SynthSummary {
  std::string out_dir;
  std::vector<SynthProduct> products;
  double seconds = 0;
};
// Writes styles.csv, styles/<id>.json and images/<id>.jpg under out_dir (each file atomically).
SynthSummary synth_catalog(const SynthOptions& opt);

}  // namespace tailor
