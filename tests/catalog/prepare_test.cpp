// tailor-test: base
// prepare on the real catalog, with counts computed here independently from the JSON files
// (walking styles/ directly, not through styles.csv), and on small damaged copies of it.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "core/attributes.h"
#include "catalog/dataset.h"
#include "catalog/images.h"
#include "catalog/prepare.h"
#include "test_util.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/progress.h"

using namespace tailor;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// attribute -> value -> number of products, from the JSON files alone.
struct Truth {
  std::map<std::string, std::map<std::string, int64_t>> values;
  std::set<std::string> ids_with_values;
  int64_t products = 0;
};

// What each JSON file says: id, article type, and the non-NA values of the eight attributes.
struct JsonProduct {
  std::string id, type, brand;
  std::vector<std::pair<std::string, std::string>> values;
};

// Scanned once per process (both real-catalog tests use it).
const std::vector<JsonProduct>& json_products(const std::string& catalog) {
  static std::vector<JsonProduct> products;
  if (!products.empty()) return products;
  for (const auto& e : fs::directory_iterator(fs::path(catalog) / "styles")) {
    json d = json::parse(read_file(e.path().string()))["data"];
    JsonProduct p;
    p.id = d["id"].is_number() ? std::to_string(d["id"].get<int64_t>()) : d["id"].get<std::string>();
    p.type = d["articleType"]["typeName"].get<std::string>();
    if (d.contains("brandName") && d["brandName"].is_string()) p.brand = d["brandName"].get<std::string>();
    for (const auto& a : default_attributes()) {
      std::string v;
      if (a.name == "baseColour") {
        if (d.contains("baseColour") && d["baseColour"].is_string()) v = d["baseColour"].get<std::string>();
      } else if (d.contains("articleAttributes") && d["articleAttributes"].contains(a.name)) {
        v = d["articleAttributes"][a.name].get<std::string>();
      }
      if (!v.empty() && v != "NA") p.values.push_back({a.name, v});
    }
    products.push_back(std::move(p));
  }
  return products;
}

Truth truth_from_json(const std::string& catalog, const std::set<std::string>& types) {
  Truth t;
  for (const auto& p : json_products(catalog)) {
    if (!types.empty() && !types.count(p.type)) continue;
    ++t.products;
    for (const auto& [a, v] : p.values) {
      t.values[a][v]++;
      t.ids_with_values.insert(p.id);
    }
  }
  return t;
}

std::map<std::string, std::map<std::string, int64_t>> count_pairs(const std::vector<VqaPair>& a,
                                                                  const std::vector<VqaPair>& b) {
  std::map<std::string, std::map<std::string, int64_t>> m;
  for (const auto* v : {&a, &b})
    for (const auto& p : *v) m[p.attribute][p.value]++;
  return m;
}

PrepareOptions options(const std::string& catalog, const std::string& out) {
  PrepareOptions o;
  o.catalog_dir = catalog;
  o.out_dir = out;
  o.progress = false;
  o.threads = 2;
  return o;
}

// A small catalog: the header and the given products of the real one, copied into a temp dir.
std::string copy_products(const std::string& name, const std::vector<std::string>& ids) {
  std::string src = test::fashion_catalog();
  std::string dst = test::temp_dir(name);
  make_dirs(join_path(dst, "styles"));
  make_dirs(join_path(dst, "images"));
  std::string csv = read_file(join_path(src, "styles.csv"));
  std::string out = csv.substr(0, csv.find('\n') + 1);
  for (const auto& id : ids) {
    size_t p = csv.find("\n" + id + ",");
    EXPECT_NE(p, std::string::npos) << id;
    out += csv.substr(p + 1, csv.find('\n', p + 1) - p);
    fs::copy_file(fs::path(src) / "styles" / (id + ".json"), fs::path(dst) / "styles" / (id + ".json"));
    fs::copy_file(fs::path(src) / "images" / (id + ".jpg"), fs::path(dst) / "images" / (id + ".jpg"));
  }
  write_file_atomic(join_path(dst, "styles.csv"), out);
  return dst;
}

// The first n Shirts/Tshirts of the real catalog, in CSV order.
std::vector<std::string> first_tops(size_t n) {
  std::string csv = read_file(join_path(test::fashion_catalog(), "styles.csv"));
  std::vector<std::string> ids;
  size_t pos = csv.find('\n') + 1;
  while (pos < csv.size() && ids.size() < n) {
    size_t end = csv.find('\n', pos);
    std::string line = csv.substr(pos, end - pos);
    if (line.find(",Shirts,") != std::string::npos || line.find(",Tshirts,") != std::string::npos)
      ids.push_back(line.substr(0, line.find(',')));
    pos = end + 1;
  }
  return ids;
}

// prepare's error for these options; "" when it ran.
std::string prepare_error(const PrepareOptions& o) {
  try {
    prepare_catalog(o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::set<std::string> ids_of(const std::vector<VqaPair>& v) {
  std::set<std::string> s;
  for (const auto& p : v) s.insert(p.id);
  return s;
}

}  // namespace

TEST(Prepare, RealCatalogCountsMatchTheJsonFiles) {
  std::string catalog = test::fashion_catalog();
  std::string out = test::temp_dir("prepare_real");
  PrepareSummary s = prepare_catalog(options(catalog, out));
  Truth truth = truth_from_json(catalog, {"Shirts", "Tshirts"});
  ASSERT_EQ(truth.products, 3008);  // the catalog's README: 1,647 Tshirts and 1,361 Shirts

  std::vector<VqaPair> train = read_pairs(join_path(out, "train.jsonl"));
  std::vector<VqaPair> val = read_pairs(join_path(out, "val.jsonl"));
  EXPECT_EQ(count_pairs(train, val), truth.values);  // every attribute and value, pair for pair
  int64_t sleeve = 0;
  for (const auto& kv : truth.values["Sleeve Length"]) sleeve += kv.second;
  EXPECT_EQ(s.train_counts["Sleeve Length"].size() + 0, truth.values["Sleeve Length"].size());
  int64_t sleeve_pairs = 0;
  for (const auto* v : {&train, &val})
    for (const auto& p : *v) sleeve_pairs += p.attribute == "Sleeve Length";
  EXPECT_EQ(sleeve_pairs, sleeve);
  EXPECT_EQ(s.products_selected, 3008);
  EXPECT_EQ(s.products_other_type, 9583 - 3008);
  EXPECT_TRUE(s.skipped.empty());
  EXPECT_EQ(s.pairs_train, static_cast<int64_t>(train.size()));
  EXPECT_EQ(s.pairs_val, static_cast<int64_t>(val.size()));

  // Split by product: disjoint, covers every product with a value, val about 20 %.
  std::set<std::string> tr = ids_of(train), va = ids_of(val);
  for (const auto& id : va) EXPECT_EQ(tr.count(id), 0u) << id << " is in both splits";
  std::set<std::string> all = tr;
  all.insert(va.begin(), va.end());
  EXPECT_EQ(all, truth.ids_with_values);
  EXPECT_NEAR(static_cast<double>(va.size()) / all.size(), 0.2, 0.001);

  // Text forms.
  const VqaPair& p = train.front();
  EXPECT_EQ(p.prompt, "Question: " + p.question + " Answer: ");
  EXPECT_EQ(p.answer, p.attribute + ": " + p.value);
  EXPECT_TRUE(fs::path(p.image).is_absolute());
  EXPECT_TRUE(file_exists(p.image));

  // The CSV form has one row per pair plus the header.
  std::string csv = read_file(join_path(out, "vqa_train.csv"));
  EXPECT_EQ(csv.rfind("id,Question,Answer\n", 0), 0u);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), static_cast<long>(train.size() + 1));

  json m = json::parse(read_file(join_path(out, "manifest.json")));
  EXPECT_EQ(m["counts"]["pairs"]["train"].get<int64_t>(), static_cast<int64_t>(train.size()));
  EXPECT_EQ(m["counts"]["per_attribute"]["Sleeve Length"]["train"].get<int64_t>() +
                m["counts"]["per_attribute"]["Sleeve Length"]["val"].get<int64_t>(),
            sleeve);
  EXPECT_EQ(m["counts"]["values"]["val"]["Pattern"].size(), s.val_counts["Pattern"].size());
  EXPECT_EQ(m["skipped"].size(), 0u);
}

TEST(Prepare, AllArticleTypesAndChosenAttributes) {
  std::string catalog = test::fashion_catalog();
  std::string out = test::temp_dir("prepare_all");
  PrepareOptions o = options(catalog, out);
  o.article_types = parse_article_types("all");
  o.attributes = select_attributes(default_attributes(), {"baseColour", "Pattern"});
  PrepareSummary s = prepare_catalog(o);
  Truth truth = truth_from_json(catalog, {});
  EXPECT_EQ(s.products_selected, 9583);
  std::vector<VqaPair> train = read_pairs(join_path(out, "train.jsonl"));
  std::vector<VqaPair> val = read_pairs(join_path(out, "val.jsonl"));
  auto got = count_pairs(train, val);
  EXPECT_EQ(got.size(), 2u);
  EXPECT_EQ(got["baseColour"], truth.values["baseColour"]);
  EXPECT_EQ(got["Pattern"], truth.values["Pattern"]);
  EXPECT_TRUE(s.skipped.empty());
}

TEST(Prepare, SplitIsDeterministicPerSeed) {
  std::string catalog = copy_products("split_src", first_tops(120));
  auto run = [&](uint64_t seed, int threads, const std::string& name) {
    std::string out = test::temp_dir(name);
    PrepareOptions o = options(catalog, out);
    o.seed = seed;
    o.val_fraction = 0.25;
    o.threads = threads;
    PrepareSummary s = prepare_catalog(o);
    EXPECT_EQ(s.products_train + s.products_val, 120);
    EXPECT_EQ(s.products_val, 30);
    return out;
  };
  std::string a = run(5, 2, "split_a"), b = run(5, 2, "split_b"), c = run(6, 2, "split_c");
  std::string t1 = run(5, 1, "split_t1");
  for (const char* f : {"train.jsonl", "val.jsonl", "vqa_train.csv", "vqa_test.csv"}) {
    EXPECT_EQ(read_file(join_path(a, f)), read_file(join_path(b, f))) << f;
    EXPECT_EQ(read_file(join_path(a, f)), read_file(join_path(t1, f))) << f << ": threads changed the output";
    EXPECT_NE(read_file(join_path(a, f)), read_file(join_path(c, f))) << f << ": seed had no effect";
  }
  EXPECT_EQ(read_file(join_path(a, "manifest.json")), read_file(join_path(t1, "manifest.json")));
  std::set<std::string> va = ids_of(read_pairs(join_path(a, "val.jsonl")));
  std::set<std::string> ta = ids_of(read_pairs(join_path(a, "train.jsonl")));
  std::set<std::string> vc = ids_of(read_pairs(join_path(c, "val.jsonl")));
  EXPECT_EQ(va.size(), 30u);
  EXPECT_EQ(ta.size(), 90u);
  for (const auto& id : va) EXPECT_EQ(ta.count(id), 0u) << id;
  EXPECT_NE(va, vc);
}

// --split-by brand on the real catalog: every brand (read here from the JSON files) lies wholly on
// one side, every product with a value is on exactly one, and val holds about a fifth of them.
TEST(Prepare, SplitByBrandKeepsEveryBrandOnOneSide) {
  std::string catalog = test::fashion_catalog();
  std::string out = test::temp_dir("prepare_brand");
  PrepareOptions o = options(catalog, out);
  o.split_by = "brand";
  PrepareSummary s = prepare_catalog(o);
  std::map<std::string, std::string> brand_of;
  std::map<std::string, int64_t> brand_size;
  Truth truth = truth_from_json(catalog, {"Shirts", "Tshirts"});
  int64_t without_brand = 0;
  for (const auto& p : json_products(catalog)) {
    if (!truth.ids_with_values.count(p.id)) continue;
    brand_of[p.id] = p.brand;
    if (p.brand.empty()) ++without_brand;
    else brand_size[p.brand]++;
  }
  std::set<std::string> tr = ids_of(read_pairs(join_path(out, "train.jsonl")));
  std::set<std::string> va = ids_of(read_pairs(join_path(out, "val.jsonl")));
  std::set<std::string> train_brands, val_brands;
  for (const auto& id : tr) train_brands.insert(brand_of.at(id));
  for (const auto& id : va) val_brands.insert(brand_of.at(id));
  for (const auto& b : val_brands)
    if (!b.empty()) EXPECT_EQ(train_brands.count(b), 0u) << "brand " << b << " is in both splits";
  std::set<std::string> all = tr;
  all.insert(va.begin(), va.end());
  EXPECT_EQ(all, truth.ids_with_values);
  EXPECT_EQ(tr.size() + va.size(), all.size());
  // Whole brands move, so val is within the largest brand of a fifth.
  int64_t largest = 0;
  for (const auto& kv : brand_size) largest = std::max(largest, kv.second);
  EXPECT_LE(std::llabs(static_cast<int64_t>(va.size()) - std::llround(0.2 * all.size())), largest);
  EXPECT_GT(val_brands.size(), 3u);
  EXPECT_EQ(s.groups_train + s.groups_val, static_cast<int64_t>(brand_size.size()));
  EXPECT_EQ(s.groups_val, static_cast<int64_t>(val_brands.size() - val_brands.count("")));
  EXPECT_EQ(s.products_without_group, without_brand);
  json m = json::parse(read_file(join_path(out, "manifest.json")));
  EXPECT_EQ(m["options"]["split_by"], "brand");
  EXPECT_EQ(m["counts"]["groups"]["val"].get<int64_t>(), s.groups_val);
  EXPECT_NE(format_prepare_summary(s).find("split by group"), std::string::npos);
}

// A table's column as the group: products without a value are split one by one; a column the header
// lacks, and the vqa format (no fields), are errors that name them.
TEST(Prepare, SplitByATableColumn) {
  std::vector<std::string> ids = first_tops(40);
  std::string catalog = copy_products("split_table", ids);
  std::string csv = "id,image,articleType,baseColour,shop\n";
  const char* shops[] = {"north", "south", "east", "west", ""};
  for (size_t i = 0; i < ids.size(); ++i)
    csv += ids[i] + ",images/" + ids[i] + ".jpg,Tshirts,Blue," + shops[i % 5] + "\n";
  const std::string table = join_path(catalog, "products.csv");
  write_file_atomic(table, csv);
  PrepareOptions o = options(table, test::temp_dir("split_table_out"));
  o.split_by = "shop";
  o.val_fraction = 0.3;
  PrepareSummary s = prepare_catalog(o);
  EXPECT_EQ(s.products_train + s.products_val, 40);
  EXPECT_EQ(s.products_without_group, 8);
  EXPECT_EQ(s.groups_train + s.groups_val, 4);
  std::map<std::string, std::string> shop_of;
  for (size_t i = 0; i < ids.size(); ++i) shop_of[ids[i]] = shops[i % 5];
  std::set<std::string> train_shops;
  for (const auto& id : ids_of(read_pairs(join_path(o.out_dir, "train.jsonl")))) train_shops.insert(shop_of[id]);
  for (const auto& id : ids_of(read_pairs(join_path(o.out_dir, "val.jsonl"))))
    if (!shop_of[id].empty()) EXPECT_EQ(train_shops.count(shop_of[id]), 0u) << shop_of[id];
  EXPECT_GT(s.products_val, 0);
  EXPECT_LE(std::llabs(s.products_val - 12), 8);  // 30 % of 40, within one shop's 8

  o.split_by = "store";
  std::string e = prepare_error(o);
  EXPECT_NE(e.find("products.csv:1: the header has no column \"store\" (--split-by)"), std::string::npos) << e;
  o.catalog_dir = join_path(o.out_dir, "vqa_train.csv");
  o.catalog_format = "vqa";
  o.out_dir = test::temp_dir("split_vqa_out");
  o.split_by = "shop";
  e = prepare_error(o);
  EXPECT_NE(e.find("--split-by shop: the vqa format"), std::string::npos) << e;
}

TEST(Prepare, EveryBadInputIsSkippedCountedAndListed) {
  std::vector<std::string> ids = first_tops(12);
  std::string cat = copy_products("bad", ids);
  std::string styles = join_path(cat, "styles"), images = join_path(cat, "images");
  // ids[0..1]: untouched. ids[2]: missing JSON. ids[3]: invalid JSON. ids[4]: missing image.
  // ids[5]: truncated JPEG. ids[6]: garbage named .jpg. ids[7]: a PNG named .jpg (must work).
  // ids[8]: only images/<id>.png (must work). ids[9]: JSON whose articleAttributes is a string.
  // Plus two malformed CSV rows (wrong field count, unterminated quote) and a duplicate id.
  fs::remove(join_path(styles, ids[2] + ".json"));
  std::string j3 = read_file(join_path(styles, ids[3] + ".json"));
  write_file_atomic(join_path(styles, ids[3] + ".json"), j3.substr(0, j3.size() / 2));
  fs::remove(join_path(images, ids[4] + ".jpg"));
  std::vector<uint8_t> jpg5 = read_file_bytes(join_path(images, ids[5] + ".jpg"));
  write_file_atomic(join_path(images, ids[5] + ".jpg"), jpg5.data(), jpg5.size() * 2 / 3);
  write_file_atomic(join_path(images, ids[6] + ".jpg"), std::string("this is not a picture, just text\n"));
  std::vector<uint8_t> png7 = encode_png(load_image(join_path(images, ids[7] + ".jpg")));
  write_file_atomic(join_path(images, ids[7] + ".jpg"), png7.data(), png7.size());
  std::vector<uint8_t> png8 = encode_png(load_image(join_path(images, ids[8] + ".jpg")));
  fs::remove(join_path(images, ids[8] + ".jpg"));
  write_file_atomic(join_path(images, ids[8] + ".png"), png8.data(), png8.size());
  json j9 = json::parse(read_file(join_path(styles, ids[9] + ".json")));
  j9["data"]["articleAttributes"] = "oops";
  write_file_atomic(join_path(styles, ids[9] + ".json"), j9.dump());
  // ids[10]: data.id disagrees with the file name; ids[11]: the CSV says another article type.
  // Both stay usable (the JSON is the truth) and are listed as warnings.
  json j10 = json::parse(read_file(join_path(styles, ids[10] + ".json")));
  j10["data"]["id"] = 12345;
  write_file_atomic(join_path(styles, ids[10] + ".json"), j10.dump());
  std::string csv = read_file(join_path(cat, "styles.csv"));
  for (const char* t : {",Shirts,", ",Tshirts,"}) {
    size_t line = csv.find("\n" + ids[11] + ",");
    size_t at = csv.find(t, line);
    if (at < csv.find('\n', line + 1)) csv.replace(at, std::string(t).size(), ",Tops,");
  }
  csv += "99990,Men,Apparel,Topwear,Shirts,Blue,Summer,2012\n";                                    // 8 fields
  csv += "99991,Men,Apparel,Topwear,Shirts,Blue,Summer,2012,Casual,\"Unclosed name\n";             // open quote
  csv += ids[0] + ",Men,Apparel,Topwear,Shirts,Blue,Summer,2012,Casual,Duplicate\n";               // duplicate
  csv += "\"99992\",Men,Apparel,Topwear,Shirts,Blue,Summer,2012,Casual,\"Quoted, with comma\"\n";  // valid, no files
  write_file_atomic(join_path(cat, "styles.csv"), csv);

  std::string out = test::temp_dir("bad_out");
  PrepareSummary s = prepare_catalog(options(cat, out));
  std::map<std::string, int64_t> want = {{kSkipMalformedCsvRow, 3}, {kSkipMissingJson, 2},
                                         {kSkipInvalidJson, 2},     {kSkipMissingImage, 1},
                                         {kSkipTruncatedImage, 1},  {kSkipBadImage, 1}};
  EXPECT_EQ(s.skipped_by_reason, want);
  auto find = [&](const std::string& file_part, const char* reason) {
    for (const auto& k : s.skipped)
      if (k.file.find(file_part) != std::string::npos && k.reason == reason) return true;
    return false;
  };
  EXPECT_TRUE(find("styles/" + ids[2] + ".json", kSkipMissingJson));
  EXPECT_TRUE(find("styles/" + ids[3] + ".json", kSkipInvalidJson));
  EXPECT_TRUE(find("images/" + ids[4] + ".jpg", kSkipMissingImage));
  EXPECT_TRUE(find("images/" + ids[5] + ".jpg", kSkipTruncatedImage));
  EXPECT_TRUE(find("images/" + ids[6] + ".jpg", kSkipBadImage));
  EXPECT_TRUE(find("styles/" + ids[9] + ".json", kSkipInvalidJson));
  EXPECT_TRUE(find("styles/99992.json", kSkipMissingJson));
  EXPECT_TRUE(find("styles.csv:14", kSkipMalformedCsvRow));
  EXPECT_TRUE(find("styles.csv:15", kSkipMalformedCsvRow));
  EXPECT_TRUE(find("styles.csv:16", kSkipMalformedCsvRow));

  std::vector<VqaPair> pairs = read_pairs(join_path(out, "train.jsonl"));
  for (const auto& p : read_pairs(join_path(out, "val.jsonl"))) pairs.push_back(p);
  std::set<std::string> used = ids_of(pairs);
  EXPECT_EQ(used, (std::set<std::string>{ids[0], ids[1], ids[7], ids[8], ids[10], ids[11]}));
  for (const auto& p : pairs)
    if (p.id == ids[8]) EXPECT_EQ(p.image, fs::weakly_canonical(join_path(images, ids[8] + ".png")).string());

  ASSERT_EQ(s.warnings.size(), 2u);
  EXPECT_NE(s.warnings[0].find("data.id is 12345"), std::string::npos) << s.warnings[0];
  EXPECT_NE(s.warnings[1].find("differs from styles.csv \"Tops\""), std::string::npos) << s.warnings[1];

  // The pairs of the good products are exactly what their JSON holds.
  int64_t want_pairs = 0;
  for (const auto& id : used) {
    json d = json::parse(read_file(join_path(styles, id + ".json")))["data"];
    for (const auto& a : default_attributes()) {
      std::string v = a.name == "baseColour" ? d.value("baseColour", "")
                                             : d["articleAttributes"].value(a.name, std::string());
      want_pairs += !v.empty() && v != "NA";
    }
  }
  EXPECT_EQ(static_cast<int64_t>(pairs.size()), want_pairs);

  // The manifest lists every skipped item with file and reason; the printed summary too.
  json m = json::parse(read_file(join_path(out, "manifest.json")));
  ASSERT_EQ(m["skipped"].size(), 10u);
  EXPECT_EQ(m["skipped_by_reason"][kSkipTruncatedImage].get<int>(), 1);
  std::string text = format_prepare_summary(s);
  for (const auto& k : s.skipped) {
    EXPECT_NE(text.find(k.file + ": " + k.reason), std::string::npos) << k.file;
    bool listed = false;
    for (const auto& e : m["skipped"]) listed |= e["file"] == k.file && e["reason"] == k.reason;
    EXPECT_TRUE(listed) << k.file;
  }
}

TEST(Prepare, NothingUsableStillWritesTheManifest) {
  std::vector<std::string> ids = first_tops(3);
  std::string cat = copy_products("none", ids);
  for (const auto& id : ids) fs::remove(join_path(join_path(cat, "images"), id + ".jpg"));
  std::string out = test::temp_dir("none_out");
  PrepareSummary s = prepare_catalog(options(cat, out));
  EXPECT_FALSE(prepare_has_pairs(s));
  EXPECT_EQ(s.skipped_by_reason[kSkipMissingImage], 3);
  json m = json::parse(read_file(join_path(out, "manifest.json")));
  EXPECT_EQ(m["skipped"].size(), 3u);
}

TEST(Prepare, WholeRunProblemsAreErrors) {
  std::string empty = test::temp_dir("no_catalog");
  EXPECT_THROW(prepare_catalog(options(empty, join_path(empty, "out"))), Error);
  write_file_atomic(join_path(empty, "styles.csv"), std::string("name,colour\nx,y\n"));
  std::string e = prepare_error(options(empty, join_path(empty, "out")));
  EXPECT_NE(e.find("\"id\""), std::string::npos) << e;
  PrepareOptions o = options(test::fashion_catalog(), join_path(empty, "out"));
  o.val_fraction = 1.5;
  EXPECT_THROW(prepare_catalog(o), Error);
}

TEST(Prepare, CsvParsing) {
  std::vector<std::string> f;
  std::string why;
  ASSERT_TRUE(parse_csv_line("1,\"a, b\",\"say \"\"hi\"\"\",,x", &f, &why));
  EXPECT_EQ(f, (std::vector<std::string>{"1", "a, b", "say \"hi\"", "", "x"}));
  ASSERT_TRUE(parse_csv_line("", &f, &why));
  EXPECT_EQ(f.size(), 1u);
  EXPECT_FALSE(parse_csv_line("1,\"open", &f, &why));
  EXPECT_NE(why.find("unterminated"), std::string::npos);
  EXPECT_FALSE(parse_csv_line("1,\"a\"b", &f, &why));
  EXPECT_FALSE(parse_csv_line("1,a\"b", &f, &why));
  EXPECT_EQ(csv_field("plain"), "plain");
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
  // Quoting round-trips through the parser.
  ASSERT_TRUE(parse_csv_line(csv_field("q, \"r\"") + "," + csv_field("s"), &f, &why));
  EXPECT_EQ(f, (std::vector<std::string>{"q, \"r\"", "s"}));
  EXPECT_EQ(parse_article_types("all").size(), 0u);
  EXPECT_EQ(parse_article_types(" Shirts , Tshirts "), (std::vector<std::string>{"Shirts", "Tshirts"}));
}

TEST(Dataset, ReadPairsErrorsNameFileLineAndField) {
  std::string d = test::temp_dir("pairs");
  VqaPair p{"1", "/x/1.jpg", "Fit", "What?", "Question: What? Answer: ", "Fit: Slim Fit", "Slim Fit"};
  std::string good = pair_to_json_line(p);
  std::string path = join_path(d, "a.jsonl");
  write_file_atomic(path, good + "\n\n" + good + "\n");
  std::vector<VqaPair> v = read_pairs(path);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[1].answer, "Fit: Slim Fit");
  EXPECT_EQ(v[1].prompt, p.prompt);

  auto error_for = [&](const std::string& text) {
    write_file_atomic(path, text);
    try {
      read_pairs(path);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  json j = json::parse(good);
  j.erase("answer");
  std::string e = error_for(good + "\n" + j.dump() + "\n");
  EXPECT_NE(e.find(path + ":2"), std::string::npos) << e;
  EXPECT_NE(e.find("\"answer\""), std::string::npos) << e;
  j = json::parse(good);
  j["value"] = 3;
  e = error_for(j.dump() + "\n");
  EXPECT_NE(e.find(path + ":1"), std::string::npos) << e;
  EXPECT_NE(e.find("\"value\""), std::string::npos) << e;
  e = error_for(good + "\n" + good + "\n{not json\n");
  EXPECT_NE(e.find(path + ":3"), std::string::npos) << e;
  EXPECT_NE(e.find("invalid JSON"), std::string::npos) << e;
  EXPECT_THROW(read_pairs(join_path(d, "missing.jsonl")), Error);
}
