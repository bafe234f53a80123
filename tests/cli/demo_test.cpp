// tailor-test: base
// tailor-test: runs-tailor
// `tailor demo` end to end through the real program, reduced (few products, one epoch): every
// output exists and agrees with what the files it was made from say.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "catalog/dataset.h"
#include "test_util.h"
#include "util/fs.h"

#ifdef TAILOR_WITH_CAIRO
#define REQUIRE_CAIRO()
#else
#define REQUIRE_CAIRO() GTEST_SKIP() << "built without Cairo: tailor synth (and so tailor demo) is not available"
#endif

using namespace tailor;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// The catalog's own truth for one attribute of product `id`, read from styles/<id>.json.
std::string catalog_value(const std::string& catalog, const std::string& id, const std::string& attribute) {
  json j = json::parse(read_file(join_path(catalog, "styles/" + id + ".json")));
  if (attribute == "baseColour") return j["data"]["baseColour"];
  return j["data"]["articleAttributes"].value(attribute, std::string("NA"));
}

std::string html_escaped(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '"') out += "&quot;";
    else if (c == '\'') out += "&#39;";
    else out += c;
  }
  return out;
}

}  // namespace

TEST(DemoCli, ReducedDemoWritesAConsistentReport) {
  REQUIRE_CAIRO();
  std::string out = test::temp_dir("demo_cli");
  const int examples = 4;
  auto r = test::run_cmd(test::tailor_bin() + " demo --quiet --products 60 --epochs 1 --val-fraction 0.2 --examples " +
                         std::to_string(examples) + " --out " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* step : {"synthesize catalog", "prepare", "init model", "train", "evaluate", "describe", "report"})
    EXPECT_NE(r.output.find(std::string(step) + ": done in"), std::string::npos) << step << "\n" << r.output;
  EXPECT_NE(r.output.find("majority baseline"), std::string::npos) << r.output;

  // eval.json against counts taken from the prepared pairs themselves.
  std::vector<VqaPair> val = read_pairs(join_path(out, "dataset/val.jsonl"));
  std::vector<VqaPair> train = read_pairs(join_path(out, "dataset/train.jsonl"));
  ASSERT_FALSE(val.empty());
  std::map<std::string, int64_t> val_n;
  std::map<std::string, std::map<std::string, int64_t>> train_counts, val_counts;
  for (const auto& p : val) {
    val_n[p.attribute]++;
    val_counts[p.attribute][p.value]++;
  }
  for (const auto& p : train) train_counts[p.attribute][p.value]++;
  json ev = json::parse(read_file(join_path(out, "eval.json")));
  ASSERT_TRUE(ev["attributes"].is_array());
  EXPECT_EQ(ev["attributes"].size(), val_n.size());
  int64_t total = 0, correct = 0;
  for (const auto& a : ev["attributes"]) {
    std::string name = a["attribute"];
    ASSERT_TRUE(val_n.count(name)) << name;
    EXPECT_EQ(a["pairs"].get<int64_t>(), val_n[name]) << name;
    int64_t c = a["correct"];
    EXPECT_NEAR(a["accuracy"].get<double>(), double(c) / val_n[name], 1e-9) << name;
    // Majority baseline: the most frequent training value, scored on the validation pairs.
    int64_t best = -1;
    std::set<std::string> majority;
    for (const auto& [v, n] : train_counts[name]) {
      if (n > best) majority.clear(), best = n;
      if (n == best) majority.insert(v);
    }
    std::string mv = a["majority_value"];
    EXPECT_TRUE(majority.count(mv)) << name << ": " << mv;
    EXPECT_NEAR(a["majority_accuracy"].get<double>(), double(val_counts[name][mv]) / val_n[name], 1e-9) << name;
    total += val_n[name];
    correct += c;
  }
  EXPECT_EQ(total, static_cast<int64_t>(val.size()));
  EXPECT_NEAR(ev["accuracy"].get<double>(), double(correct) / total, 1e-9);

  // examples.jsonl: validation products, truths as the catalog's JSON says, a description each.
  std::set<std::string> val_ids;
  for (const auto& p : val) val_ids.insert(p.id);
  std::string catalog = join_path(out, "catalog");
  std::string report = read_file(join_path(out, "report.html"));
  std::vector<std::string> lines;
  {
    std::string text = read_file(join_path(out, "examples.jsonl"));
    size_t s = 0;
    while (s < text.size()) {
      size_t e = text.find('\n', s);
      ASSERT_NE(e, std::string::npos) << "examples.jsonl ends without a newline";
      lines.push_back(text.substr(s, e - s));
      s = e + 1;
    }
  }
  ASSERT_EQ(static_cast<int>(lines.size()), examples);
  for (const auto& line : lines) {
    json e = json::parse(line);
    std::string id = e["id"];
    EXPECT_TRUE(val_ids.count(id)) << id << " is not a validation product";
    EXPECT_TRUE(fs::exists(e["image"].get<std::string>())) << line;
    ASSERT_TRUE(e["answers"].is_array() && !e["answers"].empty()) << line;
    for (const auto& a : e["answers"])
      EXPECT_EQ(a["truth"].get<std::string>(), catalog_value(catalog, id, a["attribute"])) << line;
    std::string desc = e["description"];
    EXPECT_GT(desc.size(), 40u) << line;
    EXPECT_EQ(e["writer"], "offline");
    // The catalog's fabric is not predicted, so the description must carry it as given.
    std::string fabric = catalog_value(catalog, id, "Fabric");
    if (fabric != "NA") {
      std::string lower_desc = desc, lower_fabric = fabric;
      for (auto& ch : lower_desc) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      for (auto& ch : lower_fabric) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      EXPECT_NE(lower_desc.find(lower_fabric), std::string::npos) << fabric << " not in: " << desc;
    }
    EXPECT_NE(report.find(html_escaped(desc)), std::string::npos) << "description of " << id << " not in report";
    EXPECT_NE(report.find("id=\"p" + id + "\""), std::string::npos) << id;
  }

  // report.html: one photo per shown product, each link resolving (relative to the report) to a
  // catalog photo that exists.
  std::regex img("<img src=\"([^\"]+)\"");
  int images = 0;
  for (auto it = std::sregex_iterator(report.begin(), report.end(), img); it != std::sregex_iterator(); ++it) {
    std::string src = (*it)[1];
    EXPECT_FALSE(fs::path(src).is_absolute()) << src;
    EXPECT_TRUE(fs::exists(fs::path(out) / src)) << src;
    ++images;
  }
  EXPECT_EQ(images, examples);
  EXPECT_NE(report.find("</html>"), std::string::npos);

  json timings = json::parse(read_file(join_path(out, "timings.json")));
  EXPECT_EQ(timings["steps"].size(), 7u);
  EXPECT_GT(timings["total_seconds"].get<double>(), 0.0);
}

TEST(DemoCli, BadOptionsFailClearly) {
  std::string out = test::temp_dir("demo_cli_bad");
  auto r = test::run_cmd(test::tailor_bin() + " demo --quiet --products 20 --preset nosuch --out " + out);
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("unknown preset \"nosuch\""), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(fs::path(out) / "catalog")) << "nothing should run before the options are checked";
  r = test::run_cmd(test::tailor_bin() + " demo --quiet --products 20 --val-fraction 1.5 --out " + out);
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("--val-fraction must be between 0 and 1"), std::string::npos) << r.output;
}
