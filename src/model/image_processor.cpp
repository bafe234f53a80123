// HF BlipImageProcessor (transformers 5.17, torchvision backend) for BLIP-2:
//   uint8 RGB [3,H,W] -> torchvision resize(BICUBIC, antialias=True) -> float32 normalize with
//   mean/rescale_factor and std/rescale_factor (HF fuses rescale into normalize).
// On CPU, torchvision resizes uint8 bicubic natively with torch's antialiased uint8 kernel
// (_upsample_bicubic2d_aa): PIL's separable algorithm (Keys cubic, a = -0.5, support 2 * scale when
// downscaling, per-pixel normalised weights), weights converted to int16 fixed point with a precision
// chosen from the largest weight of the axis, horizontal pass first into a uint8 buffer, then the vertical
// pass; each pass rounds with +half and an arithmetic shift and clamps to [0, 255]. A pass whose size does
// not change is skipped. We do exactly that, so resized pixels should equal HF's bit for bit.
#include "model/image_processor.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/fs.h"

namespace tailor {

namespace {

// Keys' cubic convolution kernel with a = -0.5 (PIL's and torch's antialias bicubic filter).
double cubic_filter(double x) {
  const double a = -0.5;
  x = std::abs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
  return 0.0;
}

// Per output index along one axis: the first input index, the number of taps and their int16 weights.
struct AxisWeights {
  int ksize = 0;  // taps reserved per output index
  unsigned precision = 0;
  std::vector<int64_t> first;
  std::vector<int64_t> count;
  std::vector<int16_t> weights;  // out_size * ksize
};

AxisWeights compute_axis_weights(int64_t in_size, int64_t out_size) {
  AxisWeights aw;
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double support = scale >= 1.0 ? 2.0 * scale : 2.0;  // bicubic: 4 taps * 0.5, widened when shrinking
  const double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
  aw.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  std::vector<double> w(static_cast<size_t>(out_size) * aw.ksize, 0.0);
  aw.first.resize(out_size);
  aw.count.resize(out_size);
  double wt_max = 0.0;
  for (int64_t i = 0; i < out_size; ++i) {
    const double center = scale * (i + 0.5);
    int64_t xmin = std::max(static_cast<int64_t>(center - support + 0.5), static_cast<int64_t>(0));
    int64_t xsize = std::min(static_cast<int64_t>(center + support + 0.5), in_size) - xmin;
    xsize = std::clamp(xsize, static_cast<int64_t>(0), static_cast<int64_t>(aw.ksize));
    double* wi = &w[static_cast<size_t>(i) * aw.ksize];
    double total = 0.0;
    for (int64_t j = 0; j < xsize; ++j) {
      wi[j] = cubic_filter((j + xmin - center + 0.5) * invscale);
      total += wi[j];
    }
    if (total != 0.0) {
      for (int64_t j = 0; j < xsize; ++j) {
        wi[j] /= total;
        wt_max = std::max(wt_max, wi[j]);
      }
    }
    aw.first[i] = xmin;
    aw.count[i] = xsize;
  }
  // The most fractional bits that keep the largest weight inside int16.
  for (aw.precision = 0; aw.precision < 22; ++aw.precision) {
    int next_value = static_cast<int>(0.5 + wt_max * (1 << (aw.precision + 1)));
    if (next_value >= (1 << 15)) break;
  }
  aw.weights.resize(w.size());
  for (size_t k = 0; k < w.size(); ++k) {
    double v = w[k] * (1 << aw.precision);
    aw.weights[k] = static_cast<int16_t>(v < 0 ? static_cast<int>(-0.5 + v) : static_cast<int>(0.5 + v));
  }
  return aw;
}

uint8_t round_fixed(int32_t acc, unsigned precision) {
  int32_t v = acc >> precision;  // arithmetic shift: floor
  return static_cast<uint8_t>(std::clamp(v, 0, 255));
}

// Interleaved RGB, width x height -> out_width x height.
std::vector<uint8_t> resample_horizontal(const std::vector<uint8_t>& src, int width, int height, int out_width) {
  AxisWeights aw = compute_axis_weights(width, out_width);
  std::vector<uint8_t> dst(static_cast<size_t>(out_width) * height * 3);
  const int32_t half = 1 << (aw.precision - 1);
  for (int y = 0; y < height; ++y) {
    const uint8_t* row = &src[static_cast<size_t>(y) * width * 3];
    uint8_t* out = &dst[static_cast<size_t>(y) * out_width * 3];
    for (int x = 0; x < out_width; ++x) {
      const int16_t* k = &aw.weights[static_cast<size_t>(x) * aw.ksize];
      int32_t acc[3] = {half, half, half};
      for (int64_t j = 0; j < aw.count[x]; ++j) {
        const uint8_t* p = &row[(aw.first[x] + j) * 3];
        for (int c = 0; c < 3; ++c) acc[c] += static_cast<int32_t>(p[c]) * k[j];
      }
      for (int c = 0; c < 3; ++c) out[x * 3 + c] = round_fixed(acc[c], aw.precision);
    }
  }
  return dst;
}

// Interleaved RGB, width x height -> width x out_height.
std::vector<uint8_t> resample_vertical(const std::vector<uint8_t>& src, int width, int height, int out_height) {
  AxisWeights aw = compute_axis_weights(height, out_height);
  std::vector<uint8_t> dst(static_cast<size_t>(width) * out_height * 3);
  const int32_t half = 1 << (aw.precision - 1);
  const size_t row_bytes = static_cast<size_t>(width) * 3;
  std::vector<int32_t> acc(row_bytes);
  for (int y = 0; y < out_height; ++y) {
    const int16_t* k = &aw.weights[static_cast<size_t>(y) * aw.ksize];
    std::fill(acc.begin(), acc.end(), half);
    for (int64_t j = 0; j < aw.count[y]; ++j) {
      const uint8_t* row = &src[(aw.first[y] + j) * row_bytes];
      const int32_t kj = k[j];
      for (size_t b = 0; b < row_bytes; ++b) acc[b] += static_cast<int32_t>(row[b]) * kj;
    }
    uint8_t* out = &dst[static_cast<size_t>(y) * row_bytes];
    for (size_t b = 0; b < row_bytes; ++b) out[b] = round_fixed(acc[b], aw.precision);
  }
  return dst;
}

}  // namespace

ImageRGB resize_bicubic(const ImageRGB& img, int width, int height) {
  if (width <= 0 || height <= 0)
    throw Error("resize_bicubic: invalid target size " + std::to_string(width) + "x" + std::to_string(height));
  if (img.width <= 0 || img.height <= 0 ||
      img.pixels.size() != static_cast<size_t>(img.width) * img.height * 3)
    throw Error("resize_bicubic: image " + std::to_string(img.width) + "x" + std::to_string(img.height) + " has " +
                std::to_string(img.pixels.size()) + " bytes of pixels");
  if (img.width == width && img.height == height) return img;
  ImageRGB out;
  out.width = img.width;
  out.height = img.height;
  out.pixels = img.pixels;
  if (width != img.width) {
    out.pixels = resample_horizontal(out.pixels, out.width, out.height, width);
    out.width = width;
  }
  if (height != img.height) {
    out.pixels = resample_vertical(out.pixels, out.width, out.height, height);
    out.height = height;
  }
  return out;
}

std::vector<float> preprocess_image(const ImageRGB& img, const ImageProcessorConfig& cfg) {
  // do_convert_rgb: ImageRGB is RGB already (decode_image converts grey/palette/alpha like PIL).
  ImageRGB resized;
  const ImageRGB* src = &img;
  if (cfg.do_resize) {
    resized = resize_bicubic(img, cfg.width, cfg.height);
    src = &resized;
  } else if (img.pixels.size() != static_cast<size_t>(img.width) * img.height * 3) {
    throw Error("preprocess_image: image " + std::to_string(img.width) + "x" + std::to_string(img.height) +
                " has " + std::to_string(img.pixels.size()) + " bytes of pixels");
  }
  const int w = src->width, h = src->height;
  const size_t plane = static_cast<size_t>(w) * h;
  // HF's arithmetic, in float32: with both rescale and normalize, mean and std are divided by the
  // rescale factor first ((x - mean*255) / (std*255)); rescale alone is x * factor.
  float mean[3] = {0, 0, 0}, stdv[3] = {1, 1, 1}, factor = 1.0f;
  if (cfg.do_normalize) {
    const float inv = cfg.do_rescale ? static_cast<float>(1.0 / cfg.rescale_factor) : 1.0f;
    for (int c = 0; c < 3; ++c) {
      mean[c] = cfg.image_mean[c] * inv;
      stdv[c] = cfg.image_std[c] * inv;
    }
  } else if (cfg.do_rescale) {
    factor = static_cast<float>(cfg.rescale_factor);
  }
  std::vector<float> out(3 * plane);
  for (size_t i = 0; i < plane; ++i) {
    for (int c = 0; c < 3; ++c) {
      float v = static_cast<float>(src->pixels[i * 3 + c]);
      out[c * plane + i] = cfg.do_normalize ? (v - mean[c]) / stdv[c] : v * factor;
    }
  }
  return out;
}

// ---- preprocessor_config.json ------------------------------------------------------------------

namespace {

bool get_bool(const nlohmann::json& j, const char* key, bool fallback, const std::string& file) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean()) throw Error(file + ": field \"" + key + "\" must be true or false, got " + j[key].dump());
  return j[key].get<bool>();
}

double get_number(const nlohmann::json& j, const char* key, double fallback, const std::string& file) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number()) throw Error(file + ": field \"" + key + "\" must be a number, got " + j[key].dump());
  return j[key].get<double>();
}

// A list of 3 numbers, or one number for all channels (HF accepts both).
void get_triple(const nlohmann::json& j, const char* key, float out[3], const std::string& file) {
  if (!j.contains(key) || j[key].is_null()) return;
  const nlohmann::json& v = j[key];
  if (v.is_number()) {
    for (int c = 0; c < 3; ++c) out[c] = v.get<float>();
    return;
  }
  if (!v.is_array() || v.size() != 3 || !v[0].is_number() || !v[1].is_number() || !v[2].is_number())
    throw Error(file + ": field \"" + key + "\" must be a list of 3 numbers, got " + v.dump());
  for (int c = 0; c < 3; ++c) out[c] = v[c].get<float>();
}

int positive_int(const nlohmann::json& v, const std::string& what, const std::string& file) {
  if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > 65536)
    throw Error(file + ": field \"" + what + "\" must be a positive integer, got " + v.dump());
  return v.get<int>();
}

// HF's configs carry CLIP's constants as written (0.48145466); a float holding one of them is written
// back that way, any other float as the shortest decimal that reads back to it.
double float_for_json(float f) {
  const double clip[6] = {0.48145466, 0.4578275, 0.40821073, 0.26862954, 0.26130258, 0.27577711};
  for (double d : clip)
    if (static_cast<float>(d) == f) return d;
  return std::stod(fmt::format("{}", f));
}

}  // namespace

ImageProcessorConfig load_image_processor_config(const std::string& model_dir) {
  ImageProcessorConfig cfg;
  std::string file = join_path(model_dir, "preprocessor_config.json");
  if (!file_exists(file)) return cfg;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(file));
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(file + ": not valid JSON (byte " + std::to_string(e.byte) + "): " + e.what());
  }
  if (!j.is_object()) throw Error(file + ": not a JSON object");

  cfg.do_convert_rgb = get_bool(j, "do_convert_rgb", cfg.do_convert_rgb, file);
  cfg.do_resize = get_bool(j, "do_resize", cfg.do_resize, file);
  cfg.do_rescale = get_bool(j, "do_rescale", cfg.do_rescale, file);
  cfg.do_normalize = get_bool(j, "do_normalize", cfg.do_normalize, file);
  if (get_bool(j, "do_center_crop", false, file))
    throw Error(file + ": field \"do_center_crop\" is true; BLIP-2 preprocessing has no center crop");
  cfg.rescale_factor = get_number(j, "rescale_factor", cfg.rescale_factor, file);
  if (!(cfg.rescale_factor > 0)) throw Error(file + ": field \"rescale_factor\" must be > 0");
  get_triple(j, "image_mean", cfg.image_mean, file);
  get_triple(j, "image_std", cfg.image_std, file);
  for (int c = 0; c < 3; ++c)
    if (!(cfg.image_std[c] != 0.0f)) throw Error(file + ": field \"image_std\" has a zero entry");

  if (j.contains("size") && !j["size"].is_null()) {
    const nlohmann::json& s = j["size"];
    if (s.is_number()) {  // old configs: one int means a square (HF's default_to_square)
      cfg.height = cfg.width = positive_int(s, "size", file);
    } else if (s.is_object() && s.contains("height") && s.contains("width")) {
      cfg.height = positive_int(s["height"], "size.height", file);
      cfg.width = positive_int(s["width"], "size.width", file);
    } else if (s.is_object() && s.contains("shortest_edge")) {
      // HF would keep the aspect ratio, which BLIP-2's fixed-size vision encoder cannot take.
      throw Error(file + ": field \"size\" uses shortest_edge; BLIP-2 needs {\"height\": H, \"width\": W}");
    } else {
      throw Error(file + ": field \"size\" must be {\"height\": H, \"width\": W}, got " + s.dump());
    }
  }
  if (j.contains("resample") && !j["resample"].is_null()) {
    if (!j["resample"].is_number_integer() || j["resample"].get<int>() != 3)
      throw Error(file + ": field \"resample\" is " + j["resample"].dump() + "; only 3 (bicubic) is supported");
    cfg.resample = 3;
  }
  return cfg;
}

void save_image_processor_config(const std::string& model_dir, const ImageProcessorConfig& cfg) {
  nlohmann::json j;
  j["image_processor_type"] = "BlipImageProcessor";
  j["processor_class"] = "Blip2Processor";
  j["do_convert_rgb"] = cfg.do_convert_rgb;
  j["do_resize"] = cfg.do_resize;
  j["do_rescale"] = cfg.do_rescale;
  j["do_normalize"] = cfg.do_normalize;
  j["size"] = {{"height", cfg.height}, {"width", cfg.width}};
  j["resample"] = cfg.resample;
  j["rescale_factor"] = cfg.rescale_factor;
  j["image_mean"] = {float_for_json(cfg.image_mean[0]), float_for_json(cfg.image_mean[1]),
                     float_for_json(cfg.image_mean[2])};
  j["image_std"] = {float_for_json(cfg.image_std[0]), float_for_json(cfg.image_std[1]),
                    float_for_json(cfg.image_std[2])};
  make_dirs(model_dir);
  write_file_atomic(join_path(model_dir, "preprocessor_config.json"), j.dump(2) + "\n");
}

}  // namespace tailor
