// tailor-test: base
// The same products exported from a Kaggle-layout catalog into each other source (CSV, TSV, JSON
// Lines, imagefolder, and prepare's own vqa_train.csv / vqa_test.csv) give byte-identical pairs: from
// a subset of the real catalog (../shared/data/fashion-products) and from a `tailor synth` catalog.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "catalog/catalog_reader.h"
#include "catalog_export.h"
#include "catalog/prepare.h"
#include "catalog/synth.h"
#include "test_util.h"
#include "util/fs.h"
#include "util/text.h"

using namespace tailor;
namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

// Writes products.csv, products.tsv, products.jsonl beside styles.csv and images/metadata.jsonl (an
// imagefolder rooted at images/, ids from the file names), so every source names the same photos.
void write_exports(const std::string& kaggle, const std::vector<Exported>& products) {
  std::string csv = "id,image,articleType", tsv = "id\timage\tarticleType", jsonl, meta;
  for (const auto& a : default_attributes()) {
    csv += "," + csv_field(a.name);
    tsv += "\t" + a.name;
  }
  csv += "\n";
  tsv += "\n";
  for (const auto& e : products) {
    std::string image = "images/" + e.image_name;
    csv += e.id + "," + csv_field(image) + "," + csv_field(e.type);
    tsv += e.id + "\t" + image + "\t" + e.type;
    ojson j, m;
    j["id"] = std::stoll(e.id);  // a number in JSON Lines: read as its digits
    j["image"] = ojson::array({image});
    j["articleType"] = e.type;
    m["file_name"] = e.image_name;
    m["articleType"] = e.type;
    for (const auto& a : default_attributes()) {
      std::string v = value_of(e, a.name);
      csv += "," + csv_field(v);
      tsv += "\t" + v;
      j[a.name] = v.empty() ? ojson(nullptr) : ojson(v);
      m[a.name] = v;
    }
    csv += "\n";
    tsv += "\n";
    jsonl += j.dump() + "\n";
    meta += m.dump() + "\n";
  }
  write_file_atomic(join_path(kaggle, "products.csv"), csv);
  write_file_atomic(join_path(kaggle, "products.tsv"), tsv);
  write_file_atomic(join_path(kaggle, "products.jsonl"), jsonl);
  write_file_atomic(join_path(join_path(kaggle, "images"), "metadata.jsonl"), meta);
}

PrepareSummary prepare(const std::string& location, const std::string& format, const std::string& out) {
  PrepareOptions o;
  o.catalog_dir = location;
  o.catalog_format = format;
  o.out_dir = out;
  o.progress = false;
  o.threads = 2;
  return prepare_catalog(o);
}

const char* const kOutputs[] = {"train.jsonl", "val.jsonl", "vqa_train.csv", "vqa_test.csv"};

// Prepares the Kaggle catalog and each export; every output of every source equals Kaggle's.
void expect_same_pairs_in_every_format(const std::string& kaggle, const std::string& scratch) {
  write_exports(kaggle, export_products(kaggle));
  const std::string ref = join_path(scratch, "kaggle");
  PrepareSummary k = prepare(kaggle, "", ref);
  ASSERT_EQ(k.catalog_format, "kaggle");
  ASSERT_GT(k.pairs_train + k.pairs_val, 0);
  // prepare's own vqa files, beside images/, are the original system's form of the catalog (the
  // directory holds styles.csv too, so --format vqa says which to read).
  for (const char* f : {"vqa_train.csv", "vqa_test.csv"})
    write_file_atomic(join_path(kaggle, f), read_file(join_path(ref, f)));
  struct Source {
    std::string location, format, expect_format;
  };
  const std::vector<Source> sources = {
      {join_path(kaggle, "products.csv"), "", "csv"},
      {join_path(kaggle, "products.tsv"), "", "tsv"},
      {join_path(kaggle, "products.jsonl"), "", "jsonl"},
      {join_path(kaggle, "images"), "", "imagefolder"},
      {kaggle, "vqa", "vqa"},
  };
  for (const auto& src : sources) {
    const std::string out = join_path(scratch, src.expect_format);
    PrepareSummary s = prepare(src.location, src.format, out);
    EXPECT_EQ(s.catalog_format, src.expect_format);
    EXPECT_TRUE(s.skipped.empty()) << src.expect_format << ": " << s.skipped.front().file << ": "
                                   << s.skipped.front().detail;
    for (const char* f : kOutputs) {
      std::string want = read_file(join_path(ref, f)), got = read_file(join_path(out, f));
      EXPECT_EQ(got, want) << src.expect_format << " " << f << " differs from the Kaggle layout's";
    }
  }
}

}  // namespace

TEST(CatalogFormats, RealCatalogSubsetGivesTheSamePairsInEveryFormat) {
  // A subset of ../shared/data/fashion-products (the test fails with a clear message without it):
  // 80 Shirts/Tshirts and 20 products of other types, copied with their JSON and photos.
  const std::string src = test::fashion_catalog();
  const std::string dir = test::temp_dir("formats_real");
  make_dirs(join_path(dir, "styles"));
  make_dirs(join_path(dir, "images"));
  std::vector<std::string> lines = text_lines(read_file(join_path(src, "styles.csv")));
  std::string csv = lines[0] + "\n";
  int tops = 0, others = 0;
  std::vector<std::string> fields;
  std::string why;
  for (size_t i = 1; i < lines.size() && (tops < 80 || others < 20); ++i) {
    ASSERT_TRUE(parse_csv_line(lines[i], &fields, &why)) << lines[i];
    bool top = fields[4] == "Shirts" || fields[4] == "Tshirts";
    if ((top && tops >= 80) || (!top && others >= 20)) continue;
    (top ? tops : others)++;
    const std::string& id = fields[0];
    csv += lines[i] + "\n";
    fs::copy_file(fs::path(src) / "styles" / (id + ".json"), fs::path(dir) / "styles" / (id + ".json"));
    fs::copy_file(fs::path(src) / "images" / (id + ".jpg"), fs::path(dir) / "images" / (id + ".jpg"));
  }
  write_file_atomic(join_path(dir, "styles.csv"), csv);
  expect_same_pairs_in_every_format(dir, test::temp_dir("formats_real_out"));
}

TEST(CatalogFormats, SynthCatalogGivesTheSamePairsInEveryFormat) {
  REQUIRE_CAIRO();
  const std::string dir = test::temp_dir("formats_synth");
  SynthOptions o;
  o.products = 60;
  o.out_dir = dir;
  o.seed = 7;
  o.progress = false;
  synth_catalog(o);
  expect_same_pairs_in_every_format(dir, test::temp_dir("formats_synth_out"));
}

TEST(CatalogFormats, TaskFileNormalisesValuesAndListsTheOnesItDoesNotAllow) {
  REQUIRE_CAIRO();
  const std::string dir = test::temp_dir("formats_task");
  SynthOptions so;
  so.products = 12;
  so.out_dir = dir;
  so.seed = 5;
  so.progress = false;
  synth_catalog(so);
  // A table whose "sleeve" column writes Sleeve Length in the shop's own words.
  std::string csv = "id,image,articleType,sleeve\n";
  std::vector<Exported> products = export_products(dir);
  const char* const spellings[] = {"Half Sleeves", "LONG  sleeves", "Sleeveless", "Cap Sleeves"};
  for (size_t i = 0; i < products.size(); ++i)
    csv += products[i].id + ",images/" + products[i].image_name + "," + products[i].type + "," + spellings[i % 4] + "\n";
  write_file_atomic(join_path(dir, "shop.csv"), csv);
  write_file_atomic(join_path(dir, "task.json"), std::string(R"({"attributes": [
    {"name": "Sleeve Length", "question": "How long are the sleeves?",
     "values": [{"value": "Short Sleeves", "aliases": ["Half Sleeves"]}, "Long Sleeves", "Sleeveless"]}]})"));
  PrepareOptions o;
  o.catalog_dir = join_path(dir, "shop.csv");
  o.columns.attributes["Sleeve Length"] = "sleeve";
  o.attributes = load_attribute_specs(join_path(dir, "task.json"));
  o.out_dir = join_path(dir, "data");
  o.progress = false;
  PrepareSummary s = prepare_catalog(o);
  EXPECT_EQ(s.pairs_train + s.pairs_val, 9);  // 3 of the 12 write "Cap Sleeves"
  std::map<std::string, int64_t> values;
  for (const auto* m : {&s.train_counts, &s.val_counts})
    for (const auto& [v, n] : m->at("Sleeve Length")) values[v] += n;
  EXPECT_EQ(values, (std::map<std::string, int64_t>{{"Short Sleeves", 3}, {"Long Sleeves", 3}, {"Sleeveless", 3}}));
  ASSERT_EQ(s.values_not_allowed.size(), 3u);
  EXPECT_EQ(s.values_not_allowed[0].file, o.catalog_dir + ":5");
  EXPECT_EQ(s.values_not_allowed[0].detail, "Sleeve Length \"Cap Sleeves\"");
  auto manifest = nlohmann::json::parse(read_file(join_path(o.out_dir, "manifest.json")));
  EXPECT_EQ(manifest["counts"]["per_attribute"]["Sleeve Length"]["not_allowed"], 3);
  EXPECT_EQ(manifest["values_not_allowed"].size(), 3u);
  // The task travels with the pairs: train stores it with the model.
  EXPECT_EQ(load_task_info(o.out_dir).attributes[0].allowed.size(), 3u);
}
