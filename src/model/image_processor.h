// HF BlipImageProcessor for BLIP-2: RGB, resize to height x width with antialiased bicubic,
// x rescale_factor (1/255), normalize with CLIP's mean/std. Output is planar float [3, H, W].
#pragma once
#include <string>
#include <vector>

#include "core/image.h"

namespace tailor {

struct ImageProcessorConfig {
  bool do_convert_rgb = true;
  bool do_resize = true;
  bool do_rescale = true;
  bool do_normalize = true;
  int height = 224;
  int width = 224;
  int resample = 3;  // PIL's BICUBIC; the only one supported
  double rescale_factor = 1.0 / 255.0;
  float image_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
  float image_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
};

// Reads preprocessor_config.json in model_dir (HF's keys: size {height,width} or shortest_edge,
// image_mean, image_std, rescale_factor, do_*); missing file → defaults. Errors name file and field.
ImageProcessorConfig load_image_processor_config(const std::string& model_dir);
void save_image_processor_config(const std::string& model_dir, const ImageProcessorConfig& cfg);

// Antialiased bicubic (a = -0.5, support scaled by the downscale factor, weights normalised per output
// pixel, result rounded and clamped to uint8) — the PIL / torchvision antialias algorithm.
// Same size in and out returns the image unchanged.
ImageRGB resize_bicubic(const ImageRGB& img, int width, int height);

std::vector<float> preprocess_image(const ImageRGB& img, const ImageProcessorConfig& cfg);

}  // namespace tailor
