// tailor-test: base
// The synthetic catalog: byte-identical for a seed, its truth survives prepare, and what is drawn
// carries the colour that the JSON says.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "catalog/dataset.h"
#include "catalog/images.h"
#include "catalog/prepare.h"
#include "catalog/synth.h"
#include "test_util.h"
#include "util/fs.h"

using namespace tailor;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

SynthSummary make(const std::string& dir, int n, uint64_t seed) {
  SynthOptions o;
  o.products = n;
  o.out_dir = dir;
  o.seed = seed;
  o.threads = 2;
  o.progress = false;
  return synth_catalog(o);
}

// relative path -> bytes, for every file under dir.
std::map<std::string, std::string> tree(const std::string& dir) {
  std::map<std::string, std::string> m;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) m[fs::relative(e.path(), dir).string()] = read_file(e.path().string());
  return m;
}

std::string truth_of(const SynthProduct& p, const std::string& attribute) {
  if (attribute == "baseColour") return p.base_colour;
  if (attribute == "Sleeve Length") return p.sleeve_length;
  if (attribute == "Neck") return p.neck;
  if (attribute == "Collar") return p.collar;
  if (attribute == "Pattern") return p.pattern;
  if (attribute == "Fabric") return p.fabric;
  if (attribute == "Fit") return p.fit;
  return "";
}

}  // namespace

TEST(Synth, SameSeedSameBytesOtherSeedOtherBytes) {
  REQUIRE_CAIRO();
  std::string a = test::temp_dir("synth_a"), b = test::temp_dir("synth_b"), c = test::temp_dir("synth_c");
  make(a, 16, 3);
  SynthOptions o;
  o.products = 16;
  o.out_dir = b;
  o.seed = 3;
  o.threads = 1;  // thread count must not matter
  o.progress = false;
  synth_catalog(o);
  make(c, 16, 4);
  auto ta = tree(a), tb = tree(b), tc = tree(c);
  EXPECT_EQ(ta.size(), 1u + 16 + 16);
  EXPECT_EQ(ta, tb);
  ASSERT_EQ(ta.size(), tc.size());
  int differing_images = 0;
  for (const auto& [path, bytes] : ta)
    if (path.rfind("images/", 0) == 0) differing_images += tc.at(path) != bytes;
  EXPECT_EQ(differing_images, 16);
  EXPECT_NE(ta.at("styles.csv"), tc.at("styles.csv"));
}

TEST(Synth, LayoutLooksLikeTheRealCatalog) {
  REQUIRE_CAIRO();
  std::string d = test::temp_dir("synth_layout");
  SynthSummary s = make(d, 8, 1);
  std::string real_header = read_file(join_path(test::fashion_catalog(), "styles.csv"));
  real_header = real_header.substr(0, real_header.find('\n'));
  std::string header = read_file(join_path(d, "styles.csv"));
  EXPECT_EQ(header.substr(0, header.find('\n')), real_header);
  for (const auto& p : s.products) {
    json j = json::parse(read_file(join_path(d, "styles/" + p.id + ".json")));
    const json& data = j["data"];
    EXPECT_EQ(data["articleType"]["typeName"], p.article_type);
    EXPECT_EQ(data["baseColour"], p.base_colour);
    EXPECT_EQ(data["articleAttributes"]["Sleeve Length"], p.sleeve_length);
    EXPECT_EQ(data["articleAttributes"]["Pattern"], p.pattern);
    EXPECT_TRUE(data["productDescriptors"]["description"]["value"].is_string());
    ImageRGB img = load_image(join_path(d, "images/" + p.id + ".jpg"));
    EXPECT_EQ(img.width, 224);
    EXPECT_EQ(img.height, 224);
    // Tshirts have a neck type, shirts a collar, never both.
    EXPECT_NE(p.neck.empty(), p.collar.empty());
  }
}

TEST(Synth, TruthSurvivesPrepare) {
  REQUIRE_CAIRO();
  std::string cat = test::temp_dir("synth_truth"), out = test::temp_dir("synth_truth_out");
  SynthSummary s = make(cat, 120, 9);
  PrepareOptions o;
  o.catalog_dir = cat;
  o.out_dir = out;
  o.progress = false;
  PrepareSummary ps = prepare_catalog(o);
  EXPECT_TRUE(ps.skipped.empty());
  std::map<std::string, const SynthProduct*> by_id;
  for (const auto& p : s.products) by_id[p.id] = &p;
  std::vector<VqaPair> pairs = read_pairs(join_path(out, "train.jsonl"));
  for (const auto& p : read_pairs(join_path(out, "val.jsonl"))) pairs.push_back(p);
  std::map<std::string, int> per_product;
  for (const auto& p : pairs) {
    ASSERT_TRUE(by_id.count(p.id)) << p.id;
    EXPECT_EQ(p.value, truth_of(*by_id[p.id], p.attribute)) << p.id << " " << p.attribute;
    per_product[p.id]++;
  }
  // Every set attribute became exactly one pair: Fabric, Fit, Neck or Collar, Pattern, Sleeve Length,
  // baseColour (6; no Sleeve Styling).
  EXPECT_EQ(per_product.size(), 120u);
  for (const auto& [id, n] : per_product) EXPECT_EQ(n, 6) << id;
  // Every value of the visual attributes occurs.
  std::set<std::string> sleeves, patterns, colours, necks;
  for (const auto& p : s.products) {
    sleeves.insert(p.sleeve_length);
    patterns.insert(p.pattern);
    colours.insert(p.base_colour);
    if (!p.neck.empty()) necks.insert(p.neck);
  }
  EXPECT_EQ(sleeves.size(), 3u);
  EXPECT_EQ(patterns.size(), 4u);
  EXPECT_EQ(necks.size(), 3u);
  EXPECT_EQ(colours.size(), synth_palette().size());
}

// The drawn colour is the one the JSON names: on solid garments, the palette colour nearest to a
// patch of the torso (left of the centre line, below the neck) is the base colour.
TEST(Synth, SolidGarmentsShowTheirBaseColour) {
  REQUIRE_CAIRO();
  int checked = 0;
  for (int i = 0; i < 200; ++i) {
    SynthProduct p = synth_product(5, i);
    if (p.pattern != "Solid") continue;
    ImageRGB img = synth_render(p, 5, i);
    long sum[3] = {0, 0, 0}, n = 0;
    for (int y = 135; y < 145; ++y)
      for (int x = 82; x < 92; ++x, ++n)
        for (int c = 0; c < 3; ++c) sum[c] += img.at(x, y)[c];
    double best = 1e18;
    std::string nearest;
    for (const auto& c : synth_palette()) {
      double dr = sum[0] / double(n) - c.r, dg = sum[1] / double(n) - c.g, db = sum[2] / double(n) - c.b;
      double d = dr * dr + dg * dg + db * db;
      if (d < best) best = d, nearest = c.name;
    }
    EXPECT_EQ(nearest, p.base_colour) << "product " << i;
    ++checked;
  }
  EXPECT_GT(checked, 30);
}
