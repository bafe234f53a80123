// The synthetic catalog's products and files (no Cairo here: the drawing is in synth.cpp, left out
// of builds without Cairo).
#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "catalog/synth.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/parallel.h"
#include "util/progress.h"

namespace tailor {

using ojson = nlohmann::ordered_json;

static const int kFirstId = 100000;  // far from the real catalog's ids (10000-60000)

const std::vector<SynthColour>& synth_palette() {
  // Chosen far apart in hue or lightness so that they stay apart after shading and JPEG.
  static const std::vector<SynthColour> p = {
      {"Black", 28, 28, 30},    {"White", 246, 246, 244}, {"Grey", 128, 128, 130}, {"Red", 200, 28, 36},
      {"Green", 36, 146, 62},   {"Blue", 36, 82, 204},    {"Yellow", 242, 208, 40}, {"Pink", 244, 138, 186},
      {"Orange", 242, 128, 24}, {"Purple", 122, 44, 160},
  };
  return p;
}

static uint64_t product_stream(uint64_t seed, int index) {
  return splitmix64_mix(seed ^ (0xA0761D6478BD642Full * static_cast<uint64_t>(index + 1)));
}
SynthProduct synth_product(uint64_t seed, int index) {
  Rng r(product_stream(seed, index));
  SynthProduct p;
  p.id = std::to_string(kFirstId + index);
  bool tee = r.chance(0.55);
  p.article_type = tee ? "Tshirts" : "Shirts";
  p.gender = r.chance(0.6) ? "Men" : "Women";
  p.base_colour = synth_palette()[r.below(static_cast<int>(synth_palette().size()))].name;
  if (tee) {
    p.sleeve_length = r.pick<std::string>({"Short Sleeves", "Long Sleeves", "Sleeveless"});
    p.neck = r.pick<std::string>({"Round Neck", "V-Neck", "Polo Collar"});
  } else {
    p.sleeve_length = r.pick<std::string>({"Short Sleeves", "Long Sleeves"});
    p.collar = r.pick<std::string>({"Spread Collar", "Mandarin Collar"});
  }
  p.pattern = r.pick<std::string>({"Solid", "Striped", "Checked", "Printed"});
  double f = r.uniform();
  p.fabric = f < 0.7 ? "Cotton" : f < 0.85 ? "Polyester" : f < 0.93 ? "Linen" : "Blended";
  p.fit = r.chance(0.75) ? "Regular Fit" : "Slim Fit";
  p.season = r.pick<std::string>({"Summer", "Fall", "Winter", "Spring"});
  p.year = std::to_string(2011 + r.below(6));
  p.usage = tee ? (r.chance(0.8) ? "Casual" : "Sports") : (r.chance(0.6) ? "Casual" : "Formal");
  std::string brand = r.pick<std::string>({"Loomline", "Northpin", "Threadwell", "Palecrest"});
  std::string pattern_word = p.pattern == "Solid" ? "" : p.pattern + " ";
  p.display_name = brand + " " + p.gender + " " + p.base_colour + " " + pattern_word + (tee ? "T-Shirt" : "Shirt");
  return p;
}

#ifndef TAILOR_WITH_CAIRO
ImageRGB synth_render(const SynthProduct&, uint64_t, int) {
  throw Error("tailor was built without Cairo (TAILOR_WITH_CAIRO=OFF): synthetic photos are not available");
}
#endif

// ---- catalog files --------------------------------------------------------------------------

static std::string describe(const SynthProduct& p) {
  std::string kind = p.article_type == "Tshirts" ? "t-shirt" : "shirt";
  std::string pat = p.pattern == "Solid" ? "solid" : p.pattern == "Printed" ? "printed" : p.pattern;
  for (auto& c : pat) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string neck = p.neck.empty() ? p.collar : p.neck;
  std::string sleeves = p.sleeve_length;
  for (auto& c : neck) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (auto& c : sleeves) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return "<p>" + p.base_colour + " " + pat + " " + kind + ", has a " + neck + ", " + sleeves + "</p><p>" +
         p.fabric + ", " + p.fit + "</p>";
}

static std::string style_json(const SynthProduct& p) {
  bool tee = p.article_type == "Tshirts";
  ojson attrs = ojson::object();
  attrs["Body or Garment Size"] = "Garment Measurements in";
  attrs["Fabric"] = p.fabric;
  attrs["Fit"] = p.fit;
  if (!p.collar.empty()) attrs["Collar"] = p.collar;
  if (!p.neck.empty()) attrs["Neck"] = p.neck;
  attrs["Pattern"] = p.pattern;
  attrs["Sleeve Length"] = p.sleeve_length;
  ojson d;
  d["id"] = std::stoll(p.id);
  d["price"] = tee ? 799 : 1299;
  d["discountedPrice"] = tee ? 799 : 1299;
  d["styleType"] = "P";
  d["productDisplayName"] = p.display_name;
  d["brandName"] = p.display_name.substr(0, p.display_name.find(' '));
  d["ageGroup"] = "Adults-" + p.gender;
  d["gender"] = p.gender;
  d["baseColour"] = p.base_colour;
  d["colour1"] = "NA";
  d["colour2"] = "NA";
  d["fashionType"] = "Fashion";
  d["season"] = p.season;
  d["year"] = p.year;
  d["usage"] = p.usage;
  d["articleAttributes"] = attrs;
  d["styleImages"] = {{"default", {{"imageURL", "images/" + p.id + ".jpg"}}}};
  d["masterCategory"] = {{"id", 9}, {"typeName", "Apparel"}, {"active", true}};
  d["subCategory"] = {{"id", 31}, {"typeName", "Topwear"}, {"active", true}};
  d["articleType"] = {{"id", tee ? 90 : 91}, {"typeName", p.article_type}, {"active", true}};
  d["productDescriptors"] = {
      {"description", {{"descriptorType", "description"}, {"value", describe(p)}}}};
  ojson j;
  j["notification"] = ojson::object();
  j["meta"] = {{"code", 200}, {"requestId", "tailor-synth-" + p.id}};
  j["data"] = d;
  return j.dump(2) + "\n";
}

SynthSummary synth_catalog(const SynthOptions& opt) {
  auto t0 = std::chrono::steady_clock::now();
  if (opt.out_dir.empty()) throw Error("synth: no output directory given");
  if (opt.products < 1 || opt.products > 1000000)
    throw Error("synth: --products must be in 1..1000000, got " + std::to_string(opt.products));
  std::string styles = join_path(opt.out_dir, "styles"), images = join_path(opt.out_dir, "images");
  make_dirs(styles);
  make_dirs(images);

  SynthSummary sum;
  sum.out_dir = opt.out_dir;
  for (int i = 0; i < opt.products; ++i) sum.products.push_back(synth_product(opt.seed, i));

  int threads = worker_count(opt.threads);
  bool quiet = Progress::quiet;
  if (!opt.progress) Progress::quiet = true;
  {
    Progress progress("synth", opt.products, "images");
    std::atomic<int> next{0};
    std::atomic<bool> failed{false};
    std::string first_error;
    std::mutex error_mu;
    auto work = [&] {
      while (!failed) {
        int i = next.fetch_add(1);
        if (i >= opt.products) break;
        try {
          const SynthProduct& p = sum.products[i];
          std::vector<uint8_t> jpg = encode_jpeg(synth_render(p, opt.seed, i), 90);
          write_file_atomic(join_path(images, p.id + ".jpg"), jpg.data(), jpg.size());
          write_file_atomic(join_path(styles, p.id + ".json"), style_json(p));
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> lock(error_mu);
          if (!failed) first_error = e.what();
          failed = true;
        }
        progress.add(1);
      }
    };
    run_on_threads(threads, work);
    progress.finish();
    Progress::quiet = quiet;
    if (failed) throw Error("synth: " + first_error);
  }

  std::string csv = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName\n";
  for (const auto& p : sum.products)
    csv += p.id + "," + p.gender + ",Apparel,Topwear," + p.article_type + "," + p.base_colour + "," + p.season + "," +
           p.year + "," + p.usage + "," + p.display_name + "\n";
  write_file_atomic(join_path(opt.out_dir, "styles.csv"), csv);
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

}  // namespace tailor
