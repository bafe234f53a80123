#include "catalog/prepare.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>
#include <thread>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "catalog/dataset.h"
#include "catalog/images.h"
#include "catalog/rng.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/parallel.h"
#include "util/progress.h"

namespace tailor {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

const char* const kSkipMalformedCsvRow = "malformed CSV row";
const char* const kSkipMissingJson = "missing JSON";
const char* const kSkipInvalidJson = "invalid JSON";
const char* const kSkipMissingImage = "missing image";
const char* const kSkipTruncatedImage = "truncated image";
const char* const kSkipBadImage = "undecodable image";

static std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return "";
  size_t b = s.find_last_not_of(" \t\r\n");
  return s.substr(a, b - a + 1);
}

std::vector<std::string> parse_article_types(const std::string& text) {
  std::string t = trim(text);
  if (t.empty() || t == "all" || t == "ALL" || t == "*") return {};
  return split_comma_list(t);
}

std::vector<std::string> split_comma_list(const std::string& text) {
  std::vector<std::string> out;
  std::string t = trim(text);
  if (t.empty()) return out;
  size_t pos = 0;
  while (pos <= t.size()) {
    size_t c = t.find(',', pos);
    if (c == std::string::npos) c = t.size();
    std::string one = trim(t.substr(pos, c - pos));
    if (!one.empty()) out.push_back(one);
    pos = c + 1;
  }
  return out;
}

bool parse_csv_line(const std::string& line, std::vector<std::string>* fields, std::string* why) {
  fields->clear();
  std::string cur;
  size_t i = 0, n = line.size();
  while (true) {
    cur.clear();
    if (i < n && line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < n) {
        if (line[i] == '"') {
          if (i + 1 < n && line[i + 1] == '"') {
            cur += '"';
            i += 2;
          } else {
            closed = true;
            ++i;
            break;
          }
        } else {
          cur += line[i++];
        }
      }
      if (!closed) {
        *why = "unterminated quoted field " + std::to_string(fields->size() + 1);
        return false;
      }
      if (i < n && line[i] != ',') {
        *why = "characters after the closing quote of field " + std::to_string(fields->size() + 1);
        return false;
      }
    } else {
      while (i < n && line[i] != ',') {
        if (line[i] == '"') {
          *why = "stray quote in unquoted field " + std::to_string(fields->size() + 1);
          return false;
        }
        cur += line[i++];
      }
    }
    fields->push_back(cur);
    if (i >= n) break;
    ++i;  // the comma
  }
  return true;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

// ---- reading --------------------------------------------------------------------------------

struct CsvProduct {
  int64_t line_no = 0;
  std::string id, csv_type, csv_colour;
};

// What one product turned into.
struct ProductResult {
  enum Kind { kPending, kUsable, kOtherType, kSkipped } kind = kPending;
  SkippedItem skip;
  std::vector<std::string> warnings;
  std::string image;                                        // absolute path
  std::vector<std::pair<size_t, std::string>> values;       // (attribute index, value)
  std::vector<size_t> na;                                   // attribute indices without a value
};

static bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// Reads styles/<id>.json's string at data.<key>.<subkey> (subkey empty = data.<key>).
// Returns 0 absent (or JSON null), 1 found, -1 present but not a string.
static int json_string_at(const json& data, const char* key, const char* subkey, std::string* out) {
  auto it = data.find(key);
  if (it == data.end() || it->is_null()) return 0;
  const json* v = &*it;
  if (subkey) {
    if (!v->is_object()) return -1;
    auto jt = v->find(subkey);
    if (jt == v->end() || jt->is_null()) return 0;
    v = &*jt;
  }
  if (!v->is_string()) return -1;
  *out = v->get<std::string>();
  return 1;
}

static ProductResult read_product(const CsvProduct& p, const std::string& catalog,
                                  const std::set<std::string>& types, const std::vector<AttributeSpec>& attrs) {
  ProductResult r;
  auto skip = [&](const char* reason, const std::string& file, const std::string& detail) {
    r.kind = ProductResult::kSkipped;
    r.skip = {reason, file, detail};
    return r;
  };
  std::string json_path = join_path(join_path(catalog, "styles"), p.id + ".json");
  std::string text;
  try {
    text = read_file(json_path);
  } catch (const Error& e) {
    if (!file_exists(json_path)) return skip(kSkipMissingJson, json_path, "no such file");
    return skip(kSkipInvalidJson, json_path, e.what());
  }
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    return skip(kSkipInvalidJson, json_path, e.what());
  }
  if (!doc.is_object() || !doc.contains("data") || !doc["data"].is_object())
    return skip(kSkipInvalidJson, json_path, "no object \"data\" at the top level");
  const json& data = doc["data"];
  auto jid = data.find("id");
  if (jid != data.end()) {
    std::string id = jid->is_number_integer() ? std::to_string(jid->get<int64_t>())
                     : jid->is_string()       ? jid->get<std::string>()
                                              : std::string("?");
    if (id != p.id) r.warnings.push_back(json_path + ": data.id is " + id + ", the file name says " + p.id);
  }

  // Article type: JSON first, CSV as fallback.
  std::string type;
  int got = json_string_at(data, "articleType", "typeName", &type);
  if (got < 0) return skip(kSkipInvalidJson, json_path, "data.articleType.typeName is not a string");
  type = trim(type);
  if (got == 0 || type.empty()) {
    type = p.csv_type;
    if (type.empty())
      return skip(kSkipInvalidJson, json_path, "no data.articleType.typeName and no articleType in styles.csv");
  } else if (!p.csv_type.empty() && p.csv_type != type) {
    r.warnings.push_back(json_path + ": article type \"" + type + "\" differs from styles.csv \"" + p.csv_type +
                         "\" (the JSON is used)");
  }
  if (!types.empty() && !types.count(type)) {
    r.kind = ProductResult::kOtherType;
    return r;
  }

  const json* article_attrs = nullptr;
  auto aa = data.find("articleAttributes");
  if (aa != data.end() && !aa->is_null()) {
    if (!aa->is_object()) return skip(kSkipInvalidJson, json_path, "data.articleAttributes is not an object");
    article_attrs = &*aa;
  }
  for (size_t a = 0; a < attrs.size(); ++a) {
    const std::string& name = attrs[a].name;
    std::string value;
    if (name == "baseColour") {
      int g = json_string_at(data, "baseColour", nullptr, &value);
      if (g < 0) return skip(kSkipInvalidJson, json_path, "data.baseColour is not a string");
      value = trim(value);
      if (g == 0 || value.empty()) {
        value = p.csv_colour;
      } else if (!p.csv_colour.empty() && p.csv_colour != value) {
        r.warnings.push_back(json_path + ": baseColour \"" + value + "\" differs from styles.csv \"" + p.csv_colour +
                             "\" (the JSON is used)");
      }
    } else if (article_attrs) {
      auto it = article_attrs->find(name);
      if (it != article_attrs->end() && !it->is_null()) {
        if (!it->is_string())
          return skip(kSkipInvalidJson, json_path, "data.articleAttributes[\"" + name + "\"] is not a string");
        value = trim(it->get<std::string>());
      }
    }
    if (value.empty() || value == "NA") r.na.push_back(a);
    else r.values.push_back({a, value});
  }
  if (r.values.empty()) {
    r.kind = ProductResult::kUsable;  // counted as "without pairs" by the caller
    return r;
  }

  // The image: decoded in full so that no bad image reaches training.
  std::string images = join_path(catalog, "images");
  std::string img_path = join_path(images, p.id + ".jpg");
  if (!file_exists(img_path)) {
    std::string png = join_path(images, p.id + ".png");
    if (!file_exists(png)) return skip(kSkipMissingImage, img_path, "no such file (nor " + p.id + ".png)");
    img_path = png;
  }
  try {
    std::vector<uint8_t> bytes = read_file_bytes(img_path);
    ImageRGB img = decode_image(bytes);
    (void)img;
  } catch (const Error& e) {
    std::string msg = e.what();
    bool truncated = msg.find("truncated") != std::string::npos;
    return skip(truncated ? kSkipTruncatedImage : kSkipBadImage, img_path, msg);
  }
  r.image = img_path;
  r.kind = ProductResult::kUsable;
  return r;
}

// ---- writing --------------------------------------------------------------------------------

static ojson counts_json(const std::map<std::string, std::map<std::string, int64_t>>& m) {
  ojson j = ojson::object();
  for (const auto& [attr, values] : m) {
    // Most frequent first, then by name, so the manifest reads like a histogram.
    std::vector<std::pair<std::string, int64_t>> v(values.begin(), values.end());
    std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    ojson o = ojson::object();
    for (const auto& [value, n] : v) o[value] = n;
    j[attr] = o;
  }
  return j;
}

static int64_t sum_counts(const std::map<std::string, int64_t>& m) {
  int64_t s = 0;
  for (const auto& kv : m) s += kv.second;
  return s;
}

PrepareSummary prepare_catalog(const PrepareOptions& opt) {
  auto t0 = std::chrono::steady_clock::now();
  if (opt.catalog_dir.empty()) throw Error("prepare: no catalog directory given");
  if (opt.out_dir.empty()) throw Error("prepare: no output directory given");
  if (!(opt.val_fraction >= 0.0 && opt.val_fraction <= 1.0))
    throw Error("prepare: --val-fraction must be in [0, 1], got " + std::to_string(opt.val_fraction));
  if (opt.attributes.empty()) throw Error("prepare: no attributes selected");
  std::set<std::string> attr_names;
  for (const auto& a : opt.attributes)
    if (!attr_names.insert(a.name).second) throw Error("prepare: attribute \"" + a.name + "\" given twice");

  std::error_code ec;
  std::string catalog = std::filesystem::weakly_canonical(std::filesystem::absolute(opt.catalog_dir), ec).string();
  if (ec) catalog = std::filesystem::absolute(opt.catalog_dir).string();
  std::string csv_path = join_path(catalog, "styles.csv");
  if (!file_exists(csv_path))
    throw Error("prepare: " + csv_path + " not found (expected the Kaggle layout: styles.csv, styles/<id>.json, "
                "images/<id>.jpg)");

  PrepareSummary sum;
  sum.catalog_dir = catalog;
  sum.out_dir = opt.out_dir;

  // styles.csv: one product per line (quoted fields allowed, but no line breaks inside them).
  std::string text = read_file(csv_path);
  if (text.size() >= 3 && static_cast<uint8_t>(text[0]) == 0xEF && static_cast<uint8_t>(text[1]) == 0xBB &&
      static_cast<uint8_t>(text[2]) == 0xBF)
    text.erase(0, 3);
  std::vector<std::string> lines;
  {
    size_t pos = 0;
    while (pos < text.size()) {
      size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      std::string line = text.substr(pos, end - pos);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      lines.push_back(std::move(line));
      pos = end + 1;
    }
  }
  if (lines.empty()) throw Error("prepare: " + csv_path + " is empty");
  std::vector<std::string> header;
  std::string why;
  if (!parse_csv_line(lines[0], &header, &why)) throw Error("prepare: " + csv_path + ":1: bad header: " + why);
  int col_id = -1, col_type = -1, col_colour = -1;
  for (size_t i = 0; i < header.size(); ++i) {
    std::string h = trim(header[i]);
    if (h == "id") col_id = static_cast<int>(i);
    if (h == "articleType") col_type = static_cast<int>(i);
    if (h == "baseColour") col_colour = static_cast<int>(i);
  }
  if (col_id < 0) throw Error("prepare: " + csv_path + ":1: the header has no \"id\" column");

  std::vector<CsvProduct> products;
  std::vector<std::pair<int64_t, SkippedItem>> csv_skips;  // (line, item)
  std::unordered_set<std::string> seen;
  std::vector<std::string> fields;
  for (size_t ln = 1; ln < lines.size(); ++ln) {
    const std::string& line = lines[ln];
    if (trim(line).empty()) continue;
    ++sum.csv_rows;
    int64_t line_no = static_cast<int64_t>(ln) + 1;
    std::string where = csv_path + ":" + std::to_string(line_no);
    auto bad = [&](const std::string& detail) {
      csv_skips.push_back({line_no, {kSkipMalformedCsvRow, where, detail}});
    };
    if (!parse_csv_line(line, &fields, &why)) {
      bad(why);
      continue;
    }
    if (fields.size() != header.size()) {
      bad(std::to_string(fields.size()) + " fields, the header has " + std::to_string(header.size()));
      continue;
    }
    CsvProduct p;
    p.line_no = line_no;
    p.id = trim(fields[col_id]);
    if (!all_digits(p.id)) {
      bad("id \"" + p.id + "\" is not a number");
      continue;
    }
    if (!seen.insert(p.id).second) {
      bad("id " + p.id + " already listed on an earlier line");
      continue;
    }
    if (col_type >= 0) p.csv_type = trim(fields[col_type]);
    if (col_colour >= 0) p.csv_colour = trim(fields[col_colour]);
    products.push_back(std::move(p));
  }

  // Read every product: JSON, attributes, image. Products are independent, so a few threads take
  // them from a shared counter; results land in their catalog slot (output order = catalog order).
  std::set<std::string> types(opt.article_types.begin(), opt.article_types.end());
  std::vector<ProductResult> results(products.size());
  int threads = worker_count(opt.threads);
  {
    bool quiet = Progress::quiet;
    if (!opt.progress) Progress::quiet = true;
    Progress progress("prepare", static_cast<int64_t>(products.size()), "products");
    parallel_for(static_cast<int64_t>(products.size()), threads, [&](int64_t i) {
      try {
        results[i] = read_product(products[i], catalog, types, opt.attributes);
      } catch (const std::exception& e) {
        // Anything unforeseen (e.g. out of memory on one file) still names the product.
        results[i].kind = ProductResult::kSkipped;
        results[i].skip = {kSkipInvalidJson, join_path(join_path(catalog, "styles"), products[i].id + ".json"),
                           std::string("unexpected error: ") + e.what()};
      }
      progress.add(1);
    });
    progress.finish();
    Progress::quiet = quiet;
  }

  // Skipped items in catalog (line) order: CSV rows and products interleaved.
  {
    size_t c = 0;
    for (size_t i = 0; i <= products.size(); ++i) {
      int64_t line = i < products.size() ? products[i].line_no : INT64_MAX;
      while (c < csv_skips.size() && csv_skips[c].first < line) sum.skipped.push_back(csv_skips[c++].second);
      if (i < products.size() && results[i].kind == ProductResult::kSkipped) sum.skipped.push_back(results[i].skip);
    }
  }
  for (const auto& s : sum.skipped) sum.skipped_by_reason[s.reason]++;

  std::vector<size_t> with_pairs;
  for (size_t i = 0; i < products.size(); ++i) {
    const ProductResult& r = results[i];
    for (const auto& w : r.warnings) sum.warnings.push_back(w);
    if (r.kind == ProductResult::kOtherType) ++sum.products_other_type;
    if (r.kind != ProductResult::kUsable) continue;
    ++sum.products_selected;
    for (size_t a : r.na) sum.na_values[opt.attributes[a].name]++;
    if (r.values.empty()) {
      ++sum.products_without_pairs;
      sum.ids_without_pairs.push_back(products[i].id);
    } else {
      with_pairs.push_back(i);
    }
  }

  // Split by product: order by a seeded hash of the id, the first round(f * n) are val.
  std::vector<std::pair<uint64_t, size_t>> order;
  for (size_t i : with_pairs) order.push_back({splitmix64_mix(opt.seed ^ fnv1a64(products[i].id)), i});
  std::sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    return products[a.second].id < products[b.second].id;
  });
  size_t n_val = static_cast<size_t>(std::llround(opt.val_fraction * static_cast<double>(order.size())));
  std::vector<bool> is_val(products.size(), false);
  for (size_t k = 0; k < n_val && k < order.size(); ++k) is_val[order[k].second] = true;

  std::string train_jsonl, val_jsonl;
  std::string header_csv = "id,Question,Answer\n";
  std::string train_csv = header_csv, val_csv = header_csv;
  for (size_t i : with_pairs) {
    const ProductResult& r = results[i];
    bool val = is_val[i];
    (val ? sum.products_val : sum.products_train)++;
    for (const auto& [a, value] : r.values) {
      const AttributeSpec& spec = opt.attributes[a];
      VqaPair p;
      p.id = products[i].id;
      p.image = r.image;
      p.attribute = spec.name;
      p.question = spec.question;
      p.prompt = wrap_prompt(spec.question);
      p.answer = answer_text(spec.name, value);
      p.value = value;
      (val ? val_jsonl : train_jsonl) += pair_to_json_line(p) + "\n";
      (val ? val_csv : train_csv) += csv_field(p.id) + "," + csv_field(p.question) + "," + csv_field(p.answer) + "\n";
      (val ? sum.val_counts : sum.train_counts)[spec.name][value]++;
      (val ? sum.pairs_val : sum.pairs_train)++;
    }
  }

  make_dirs(opt.out_dir);
  auto out = [&](const char* name) { return join_path(opt.out_dir, name); };
  write_file_atomic(out("train.jsonl"), train_jsonl);
  write_file_atomic(out("val.jsonl"), val_jsonl);
  write_file_atomic(out("vqa_train.csv"), train_csv);
  write_file_atomic(out("vqa_test.csv"), val_csv);
  sum.outputs = {out("train.jsonl"), out("val.jsonl"), out("vqa_train.csv"), out("vqa_test.csv"),
                 out("manifest.json")};

  // The manifest is a function of the inputs and options only (no times, no thread count), so two
  // runs over the same catalog give identical bytes.
  ojson m;
  m["created_by"] = "tailor prepare";
  m["catalog"] = catalog;
  ojson o;
  o["article_types"] = opt.article_types;  // [] = all
  o["attributes"] = ojson::array();
  for (const auto& a : opt.attributes) o["attributes"].push_back({{"name", a.name}, {"question", a.question}});
  o["val_fraction"] = opt.val_fraction;
  o["seed"] = opt.seed;
  m["options"] = o;
  ojson c;
  c["csv_rows"] = sum.csv_rows;
  c["products_selected"] = sum.products_selected;
  c["products_other_type"] = sum.products_other_type;
  c["products_without_pairs"] = sum.products_without_pairs;
  c["products_skipped"] = static_cast<int64_t>(sum.skipped.size());
  c["products"] = {{"train", sum.products_train}, {"val", sum.products_val}};
  c["pairs"] = {{"train", sum.pairs_train}, {"val", sum.pairs_val}};
  ojson per_attr = ojson::object();
  for (const auto& a : opt.attributes) {
    int64_t tr = sum.train_counts.count(a.name) ? sum_counts(sum.train_counts.at(a.name)) : 0;
    int64_t va = sum.val_counts.count(a.name) ? sum_counts(sum.val_counts.at(a.name)) : 0;
    int64_t na = sum.na_values.count(a.name) ? sum.na_values.at(a.name) : 0;
    per_attr[a.name] = {{"train", tr}, {"val", va}, {"no_value", na}};
  }
  c["per_attribute"] = per_attr;
  c["values"] = {{"train", counts_json(sum.train_counts)}, {"val", counts_json(sum.val_counts)}};
  m["counts"] = c;
  ojson by_reason = ojson::object();
  for (const auto& kv : sum.skipped_by_reason) by_reason[kv.first] = kv.second;
  m["skipped_by_reason"] = by_reason;
  m["skipped"] = ojson::array();
  for (const auto& s : sum.skipped)
    m["skipped"].push_back({{"file", s.file}, {"reason", s.reason}, {"detail", s.detail}});
  m["warnings"] = sum.warnings;
  m["ids_without_pairs"] = sum.ids_without_pairs;
  m["outputs"] = {"train.jsonl", "val.jsonl", "vqa_train.csv", "vqa_test.csv"};
  write_file_atomic(out("manifest.json"), m.dump(2, ' ', false, ojson::error_handler_t::replace) + "\n");

  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

std::string format_prepare_summary(const PrepareSummary& s, size_t max_listed) {
  std::string o;
  char b[512];
  std::snprintf(b, sizeof b, "prepare: %s -> %s in %.2f s\n", s.catalog_dir.c_str(), s.out_dir.c_str(), s.seconds);
  o += b;
  std::snprintf(b, sizeof b,
                "  products: %lld rows in styles.csv, %lld of the selected types, %lld of other types, %lld skipped, "
                "%lld without any value\n",
                (long long)s.csv_rows, (long long)s.products_selected, (long long)s.products_other_type,
                (long long)s.skipped.size(), (long long)s.products_without_pairs);
  o += b;
  std::snprintf(b, sizeof b, "  split: train %lld products / %lld pairs, val %lld products / %lld pairs\n",
                (long long)s.products_train, (long long)s.pairs_train, (long long)s.products_val,
                (long long)s.pairs_val);
  o += b;
  std::set<std::string> attrs;
  for (const auto& kv : s.train_counts) attrs.insert(kv.first);
  for (const auto& kv : s.val_counts) attrs.insert(kv.first);
  for (const auto& a : attrs) {
    int64_t tr = s.train_counts.count(a) ? sum_counts(s.train_counts.at(a)) : 0;
    int64_t va = s.val_counts.count(a) ? sum_counts(s.val_counts.at(a)) : 0;
    size_t nv = 0;
    std::set<std::string> vals;
    if (s.train_counts.count(a))
      for (const auto& kv : s.train_counts.at(a)) vals.insert(kv.first);
    if (s.val_counts.count(a))
      for (const auto& kv : s.val_counts.at(a)) vals.insert(kv.first);
    nv = vals.size();
    std::snprintf(b, sizeof b, "  %-16s %6lld train %6lld val  (%zu values)\n", a.c_str(), (long long)tr,
                  (long long)va, nv);
    o += b;
  }
  if (!s.skipped.empty()) {
    o += "  skipped:";
    for (const auto& kv : s.skipped_by_reason) o += " " + kv.first + " " + std::to_string(kv.second) + ";";
    o += "\n";
    for (size_t i = 0; i < s.skipped.size() && i < max_listed; ++i)
      o += "    " + s.skipped[i].file + ": " + s.skipped[i].reason + ": " + s.skipped[i].detail + "\n";
    if (s.skipped.size() > max_listed)
      o += "    ... and " + std::to_string(s.skipped.size() - max_listed) + " more (all listed in manifest.json)\n";
  }
  if (!s.warnings.empty())
    o += "  warnings: " + std::to_string(s.warnings.size()) + " CSV/JSON disagreements (listed in manifest.json)\n";
  return o;
}

}  // namespace tailor
