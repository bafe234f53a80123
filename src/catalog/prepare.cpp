#include "catalog/prepare.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "catalog/catalog_reader.h"
#include "catalog/dataset.h"
#include "catalog/images.h"
#include "core/rng.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/parallel.h"
#include "util/progress.h"
#include "util/text.h"

namespace tailor {

const char* const kValueNotAllowed = "value not allowed";

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

std::vector<std::string> parse_article_types(const std::string& text) {
  std::string t = trim(text);
  if (t.empty() || t == "all" || t == "ALL" || t == "*") return {};
  return split_comma_list(t);
}

// ---- reading --------------------------------------------------------------------------------

// What one product turned into.
struct ProductResult {
  enum Kind { kPending, kUsable, kOtherType, kSkipped } kind = kPending;
  SkippedItem skip;
  std::vector<std::string> warnings;
  std::string image;                                        // absolute path
  std::string group;                                        // --split-by's value ("" = none)
  std::vector<std::pair<size_t, std::string>> values;       // (attribute index, value)
  std::vector<size_t> na;                                   // attribute indices without a value
  std::vector<std::pair<size_t, std::string>> not_allowed;  // (attribute index, the catalog's value)
};

static ProductResult read_product(const CatalogReader& reader, const CatalogRow& row, DownloadCache* cache,
                                  int64_t max_image_bytes) {
  ProductResult r;
  auto skip = [&](const std::string& reason, const std::string& file, const std::string& detail) {
    r.kind = ProductResult::kSkipped;
    r.skip = {reason, file, detail};
    return r;
  };
  CatalogProduct cp = reader.product(row);
  r.warnings = cp.warnings;
  if (!cp.problem.empty()) {
    r.kind = ProductResult::kSkipped;
    r.skip = {cp.problem, cp.problem_file, cp.problem_detail};
    return r;
  }
  if (!cp.type_selected) {
    r.kind = ProductResult::kOtherType;
    return r;
  }
  r.values = cp.values;
  r.group = cp.group;
  r.na = cp.missing;
  r.not_allowed = cp.not_allowed;
  if (r.values.empty()) {
    r.kind = ProductResult::kUsable;  // counted as "without pairs" by the caller
    return r;
  }

  // The image: found (or downloaded), then decoded in full so that no bad image reaches training.
  LocatedImage img = locate_image(cp.images, cache);
  if (img.path.empty()) {
    const std::string& file = img.location.empty() ? row.where : img.location;
    return skip(img.reason, file, img.detail);
  }
  const std::string img_path = img.path;
  try {
    std::string bytes = read_input_file(img_path, max_image_bytes);
    ImageRGB decoded = decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    (void)decoded;
  } catch (const Error& e) {
    std::string msg = e.what();
    bool truncated = msg.find("truncated") != std::string::npos;
    // A downloaded photo is named by its URL (its cached copy in the detail).
    std::string file = img.location == img_path ? img_path : img.location;
    if (file != img_path) msg += " (cached as " + img_path + ")";
    return skip(truncated ? kSkipTruncatedImage : kSkipBadImage, file, msg);
  }
  r.image = img_path;
  r.kind = ProductResult::kUsable;
  return r;
}

// A product that gives pairs, kept until the split (the only per-product memory of a run).
struct ProductPairs {
  std::string id, image, group;
  std::vector<std::pair<size_t, std::string>> values;
};

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

// The manifest is a function of the inputs and options only (no times, no thread count), so two
// runs over the same catalog give identical bytes.
static ojson manifest_json(const PrepareOptions& opt, const std::string& catalog, const PrepareSummary& sum) {
  ojson m;
  m["created_by"] = "tailor prepare";
  m["catalog"] = catalog;
  m["format"] = sum.catalog_format;
  ojson o;
  o["article_types"] = opt.article_types;  // [] = all
  o["attributes"] = ojson::array();
  for (const auto& a : opt.attributes) o["attributes"].push_back({{"name", a.name}, {"question", a.question}});
  o["val_fraction"] = opt.val_fraction;
  o["seed"] = opt.seed;
  if (!opt.split_by.empty()) o["split_by"] = opt.split_by;
  m["options"] = o;
  ojson c;
  c["csv_rows"] = sum.csv_rows;
  c["products_selected"] = sum.products_selected;
  c["products_other_type"] = sum.products_other_type;
  c["products_without_pairs"] = sum.products_without_pairs;
  c["products_skipped"] = static_cast<int64_t>(sum.skipped.size());
  c["products"] = {{"train", sum.products_train}, {"val", sum.products_val}};
  c["pairs"] = {{"train", sum.pairs_train}, {"val", sum.pairs_val}};
  if (!opt.split_by.empty()) {
    c["groups"] = {{"train", sum.groups_train}, {"val", sum.groups_val}};
    c["products_without_group"] = sum.products_without_group;
  }
  ojson per_attr = ojson::object();
  for (const auto& a : opt.attributes) {
    int64_t tr = sum.train_counts.count(a.name) ? sum_counts(sum.train_counts.at(a.name)) : 0;
    int64_t va = sum.val_counts.count(a.name) ? sum_counts(sum.val_counts.at(a.name)) : 0;
    int64_t na = sum.na_values.count(a.name) ? sum.na_values.at(a.name) : 0;
    int64_t bad = sum.not_allowed.count(a.name) ? sum.not_allowed.at(a.name) : 0;
    per_attr[a.name] = {{"train", tr}, {"val", va}, {"no_value", na}, {"not_allowed", bad}};
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
  m["values_not_allowed"] = ojson::array();
  for (const auto& s : sum.values_not_allowed)
    m["values_not_allowed"].push_back({{"file", s.file}, {"reason", s.reason}, {"detail", s.detail}});
  m["warnings"] = sum.warnings;
  m["ids_without_pairs"] = sum.ids_without_pairs;
  m["outputs"] = {"train.jsonl", "val.jsonl", "vqa_train.csv", "vqa_test.csv", "tailor_task.json"};
  return m;
}

// Split by product: order by a seeded hash of the id, the first round(f * n) are val. With
// --split-by, by group: the groups (a product without a value is a group of its own) are ordered by a
// seeded hash of their value, and each in turn goes to val when that brings val's product count
// closer to round(f * n) — so no group has products on both sides.
static std::vector<bool> val_products(const std::vector<ProductPairs>& products, const PrepareOptions& opt,
                                      PrepareSummary& sum) {
  // (own, key): own = a product on its own (by product, or without a value), keyed by its id.
  std::map<std::pair<bool, std::string>, std::vector<size_t>> groups;
  for (size_t i = 0; i < products.size(); ++i) {
    const bool own = opt.split_by.empty() || products[i].group.empty();
    if (!opt.split_by.empty() && own) ++sum.products_without_group;
    groups[{own, own ? products[i].id : products[i].group}].push_back(i);
  }
  std::vector<std::pair<uint64_t, std::pair<bool, std::string>>> order;
  for (const auto& g : groups) order.push_back({splitmix64_mix(opt.seed ^ fnv1a64(g.first.second)), g.first});
  std::sort(order.begin(), order.end());
  const int64_t n_val = std::llround(opt.val_fraction * static_cast<double>(products.size()));
  std::vector<bool> is_val(products.size(), false);
  int64_t val = 0;
  for (const auto& [hash, key] : order) {
    const auto& members = groups.at(key);
    const int64_t size = static_cast<int64_t>(members.size());
    const bool to_val = std::llabs(val + size - n_val) < std::llabs(val - n_val);
    if (to_val) {
      val += size;
      for (size_t i : members) is_val[i] = true;
    }
    if (!key.first) (to_val ? sum.groups_val : sum.groups_train)++;
  }
  return is_val;
}

// The pairs of the products that have values, as train/val JSONL and CSV text, counted in sum.
static void write_pairs(const std::vector<ProductPairs>& products, const PrepareOptions& opt, const std::string& dir,
                        PrepareSummary& sum) {
  std::vector<bool> is_val = val_products(products, opt, sum);
  std::string train_jsonl, val_jsonl;
  std::string header_csv = "id,Question,Answer\n";
  std::string train_csv = header_csv, val_csv = header_csv;
  for (size_t i = 0; i < products.size(); ++i) {
    const ProductPairs& r = products[i];
    bool val = is_val[i];
    (val ? sum.products_val : sum.products_train)++;
    for (const auto& [a, value] : r.values) {
      const AttributeSpec& spec = opt.attributes[a];
      VqaPair p;
      p.id = r.id;
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
  auto out = [&](const char* name) { return join_path(dir, name); };
  write_file_atomic(out("train.jsonl"), train_jsonl);
  write_file_atomic(out("val.jsonl"), val_jsonl);
  write_file_atomic(out("vqa_train.csv"), train_csv);
  write_file_atomic(out("vqa_test.csv"), val_csv);
  // The task the pairs were made with (allowed values, aliases, article types): train stores it with the model.
  TaskInfo task;
  task.attributes = opt.attributes;
  save_task_info(dir, task);
  auto final_path = [&](const char* name) { return join_path(opt.out_dir, name); };
  sum.outputs = {final_path("train.jsonl"), final_path("val.jsonl"), final_path("vqa_train.csv"),
                 final_path("vqa_test.csv"), final_path("tailor_task.json"), final_path("manifest.json")};
}

// prepare's outputs are one set: they are written into <out>.tmp and swapped in by renames (as
// checkpoints are), so a reader sees the previous complete set or the new one, never a mix. What a
// killed run leaves behind is put right first: a stale <out>.tmp goes; an <out>.old without <out>
// (a kill between the two renames) becomes <out> again. --out must be new, empty, or an earlier
// output of prepare (its manifest says so): a directory of other files is never replaced.
static std::string strip_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

// Every directory prepare writes holds this file, so that it replaces or removes only its own:
// <out>, <out>.tmp and <out>.old of a user's are left alone.
static const char* const kOutputMarker = ".tailor-prepare";

static bool is_prepare_output(const std::string& dir) {
  if (file_exists(join_path(dir, kOutputMarker))) return true;
  // Outputs written before the marker existed: their manifest says who wrote them.
  const std::string manifest = join_path(dir, "manifest.json");
  try {
    return file_exists(manifest) && json::parse(read_file(manifest)).value("created_by", "") == "tailor prepare";
  } catch (const std::exception&) {
    return false;
  }
}

static void prepare_output_dir(const std::string& out) {
  const std::string tmp = out + ".tmp", old = out + ".old";
  for (const std::string& d : {tmp, old})
    if (std::filesystem::exists(d) && !is_prepare_output(d))
      throw Error("prepare: " + d + " exists and is not a leftover of tailor prepare; move it away or give another --out");
  remove_tree(tmp);
  if (!std::filesystem::exists(out) && std::filesystem::exists(old)) std::filesystem::rename(old, out);
  remove_tree(old);
  if (!std::filesystem::exists(out)) return;
  if (!std::filesystem::is_directory(out)) throw Error("prepare: --out " + out + " exists and is not a directory");
  if (std::filesystem::is_empty(out) || is_prepare_output(out)) return;
  throw Error("prepare: --out " + out + " holds other files (it is no output of tailor prepare); give a new or empty "
              "directory, prepare replaces it as a whole");
}

static void swap_in_output_dir(const std::string& out) {
  const std::string tmp = out + ".tmp", old = out + ".old";
  if (std::filesystem::exists(out)) std::filesystem::rename(out, old);
  std::filesystem::rename(tmp, out);
  remove_tree(old);
}

// What one row turned into, counted into the summary in catalog order.
static void count_product(const CatalogRow& row, ProductResult&& r, const PrepareOptions& opt, PrepareSummary& sum,
                          std::vector<ProductPairs>& with_pairs) {
  for (auto& w : r.warnings) sum.warnings.push_back(std::move(w));
  if (r.kind == ProductResult::kSkipped) sum.skipped.push_back(r.skip);
  if (r.kind == ProductResult::kOtherType) ++sum.products_other_type;
  if (r.kind != ProductResult::kUsable) return;
  ++sum.products_selected;
  for (size_t a : r.na) sum.na_values[opt.attributes[a].name]++;
  for (const auto& [a, raw] : r.not_allowed) {
    sum.not_allowed[opt.attributes[a].name]++;
    sum.values_not_allowed.push_back({kValueNotAllowed, row.where, opt.attributes[a].name + " \"" + raw + "\""});
  }
  if (r.values.empty()) {
    ++sum.products_without_pairs;
    sum.ids_without_pairs.push_back(row.id);
  } else {
    with_pairs.push_back({row.id, std::move(r.image), std::move(r.group), std::move(r.values)});
  }
}

// Every row of the catalog, streamed: a chunk of rows is read, its products resolved by a few
// threads (JSON, image decoding), then counted in catalog order; memory holds one chunk plus the
// products that give pairs.
static std::vector<ProductPairs> read_products(CatalogReader& reader, const PrepareOptions& opt,
                                               PrepareSummary& sum) {
  const size_t kChunk = 4096;
  std::vector<ProductPairs> with_pairs;
  bool quiet = Progress::quiet;
  if (!opt.progress) Progress::quiet = true;
  std::error_code ec;
  int64_t table_bytes = static_cast<int64_t>(std::filesystem::file_size(reader.path(), ec));
  if (ec) table_bytes = 0;
  Progress progress("prepare", table_bytes, "bytes");
  int64_t bytes_shown = 0;
  // Downloads wait on the network, not the cores: a table's photos are read by as many threads as
  // downloads may be in flight.
  DownloadCache cache(opt.download);
  const bool table = reader.format() != "kaggle" && reader.format() != "vqa";
  const int workers = table ? std::max(worker_count(opt.threads), opt.download.concurrency) : worker_count(opt.threads);
  std::vector<CatalogRow> rows(kChunk);
  std::vector<ProductResult> results(kChunk);
  while (true) {
    size_t n = 0;
    while (n < kChunk && reader.next(&rows[n])) ++n;
    if (n == 0) break;
    parallel_for(static_cast<int64_t>(n), workers, [&](int64_t i) {
      results[i] = ProductResult();
      if (!rows[i].bad_reason.empty()) {
        results[i].kind = ProductResult::kSkipped;
        results[i].skip = {rows[i].bad_reason, rows[i].where, rows[i].bad_detail};
        return;
      }
      try {
        results[i] = read_product(reader, rows[i], &cache, opt.download.max_bytes);
      } catch (const std::exception& e) {
        // Anything unforeseen (e.g. out of memory on one file) still names the product.
        results[i].kind = ProductResult::kSkipped;
        results[i].skip = {kSkipInvalidJson, rows[i].where, std::string("unexpected error: ") + e.what()};
      }
    });
    for (size_t i = 0; i < n; ++i) count_product(rows[i], std::move(results[i]), opt, sum, with_pairs);
    progress.add(reader.bytes_read() - bytes_shown, std::to_string(reader.rows()) + " rows");
    bytes_shown = reader.bytes_read();
  }
  progress.finish();
  Progress::quiet = quiet;
  sum.csv_rows = reader.rows();
  for (const auto& s : sum.skipped) sum.skipped_by_reason[s.reason]++;
  return with_pairs;
}

PrepareSummary prepare_catalog(const PrepareOptions& opt) {
  auto t0 = std::chrono::steady_clock::now();
  if (opt.catalog_dir.empty()) throw Error("prepare: no catalog given");
  if (opt.out_dir.empty()) throw Error("prepare: no output directory given");
  if (!(opt.val_fraction >= 0.0 && opt.val_fraction <= 1.0))
    throw Error("prepare: --val-fraction must be in [0, 1], got " + std::to_string(opt.val_fraction));
  if (opt.attributes.empty()) throw Error("prepare: no attributes selected");
  std::set<std::string> attr_names;
  for (const auto& a : opt.attributes)
    if (!attr_names.insert(a.name).second) throw Error("prepare: attribute \"" + a.name + "\" given twice");

  std::error_code ec;
  std::string catalog = opt.catalog_dir;
  if (!is_remote_location(catalog)) {
    catalog = std::filesystem::weakly_canonical(std::filesystem::absolute(opt.catalog_dir), ec).string();
    if (ec) catalog = std::filesystem::absolute(opt.catalog_dir).string();
  }
  CatalogSource source;
  source.location = catalog;
  source.format = opt.catalog_format;
  source.columns = opt.columns;
  source.download = opt.download;
  CatalogQueryAttributes query;
  query.attributes = opt.attributes;
  query.article_types = std::set<std::string>(opt.article_types.begin(), opt.article_types.end());
  query.group_by = opt.split_by;
  std::unique_ptr<CatalogReader> reader;
  try {
    reader = open_catalog(source, query);
  } catch (const Error& e) {
    throw Error(std::string("prepare: ") + e.what());
  }

  const std::string out_dir = strip_slashes(opt.out_dir);
  prepare_output_dir(out_dir);

  PrepareSummary sum;
  sum.catalog_dir = catalog;
  sum.catalog_format = reader->format();
  sum.out_dir = opt.out_dir;
  std::vector<ProductPairs> with_pairs = read_products(*reader, opt, sum);
  const std::string tmp = out_dir + ".tmp";
  make_dirs(tmp);
  write_file_atomic(join_path(tmp, kOutputMarker), std::string("written by tailor prepare; replaced as a whole by the next run\n"));
  write_pairs(with_pairs, opt, tmp, sum);
  write_file_atomic(join_path(tmp, "manifest.json"),
                    manifest_json(opt, catalog, sum).dump(2, ' ', false, ojson::error_handler_t::replace) + "\n");
  swap_in_output_dir(out_dir);
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

std::string format_prepare_summary(const PrepareSummary& s, size_t max_listed) {
  std::string o;
  char b[512];
  std::snprintf(b, sizeof b, "prepare: %s -> %s in %.2f s\n", s.catalog_dir.c_str(), s.out_dir.c_str(), s.seconds);
  o += b;
  std::snprintf(b, sizeof b,
                "  products: %lld rows, %lld of the selected types, %lld of other types, %lld skipped, "
                "%lld without any value\n",
                (long long)s.csv_rows, (long long)s.products_selected, (long long)s.products_other_type,
                (long long)s.skipped.size(), (long long)s.products_without_pairs);
  o += b;
  std::snprintf(b, sizeof b, "  split: train %lld products / %lld pairs, val %lld products / %lld pairs\n",
                (long long)s.products_train, (long long)s.pairs_train, (long long)s.products_val,
                (long long)s.pairs_val);
  o += b;
  if (s.groups_train + s.groups_val + s.products_without_group > 0) {
    std::snprintf(b, sizeof b, "  split by group: %lld in train, %lld in val; %lld products without a value, split one by one\n",
                  (long long)s.groups_train, (long long)s.groups_val, (long long)s.products_without_group);
    o += b;
  }
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
  if (!s.values_not_allowed.empty()) {
    o += "  values the task does not allow (no pair):";
    for (const auto& kv : s.not_allowed) o += " " + kv.first + " " + std::to_string(kv.second) + ";";
    o += "\n";
    for (size_t i = 0; i < s.values_not_allowed.size() && i < max_listed; ++i)
      o += "    " + s.values_not_allowed[i].file + ": " + s.values_not_allowed[i].detail + "\n";
    if (s.values_not_allowed.size() > max_listed)
      o += "    ... and " + std::to_string(s.values_not_allowed.size() - max_listed) + " more (all listed in manifest.json)\n";
  }
  if (!s.warnings.empty())
    o += "  warnings: " + std::to_string(s.warnings.size()) + " CSV/JSON disagreements (listed in manifest.json)\n";
  return o;
}

}  // namespace tailor
