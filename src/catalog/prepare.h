// tailor prepare: a catalog (any source of catalog/catalog_reader.h: the Kaggle layout, a product
// table, an imagefolder, the original system's vqa files) becomes visual question/answer pairs,
// split by product into train and val. The catalog is streamed: memory holds the pairs, not the rows.
//
// The catalog is read by catalog/catalog_reader.h (which products, where each attribute comes from,
// what counts as no value). On top of it (see docs/catalog.md for the why):
// - Bad rows are skipped as "malformed CSV row" / "malformed row", listed with FILE:LINE.
// - One pair per product and selected attribute; a product without a value for an attribute gives
//   no pair for it.
// - The image is fully decoded, whatever its name says, and a product whose image fails is skipped
//   with the reason.
// - Products of other article types are left out (counted, not listed). Products of a selected type
//   without any usable attribute value are counted and listed (no pair, nothing to train on).
// - The split is by product: the products that have pairs are ordered by a hash of (seed, id), and
//   the first round(val_fraction * n) go to val. Same catalog + seed → same split. With split_by, by
//   group (brand, ...): whole groups go to val until it holds about val_fraction of the products.
#pragma once
#include <cstdint>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "catalog/catalog_reader.h"
#include "core/attributes.h"
#include "util/text.h"

namespace tailor {

struct PrepareOptions {
  std::string catalog_dir;     // the catalog: a directory or a table file (catalog/catalog_reader.h)
  std::string catalog_format;  // "" = recognised from what is there
  CatalogColumns columns;      // which table column holds what (tables only)
  DownloadOptions download;    // remote tables and photos: cache, concurrency, retries, limits, S3
  std::string out_dir;
  std::vector<std::string> article_types = {"Shirts", "Tshirts"};  // empty = every article type
  std::vector<AttributeSpec> attributes = default_attributes();
  double val_fraction = 0.2;
  uint64_t seed = 42;
  // Split by this field's value instead of by product (catalog/catalog_reader.h group_by: a
  // brand, a product group): every group lies wholly in train or in val, so val measures products
  // of brands the model never saw. "" = by product.
  std::string split_by;
  int threads = 0;  // 0 = one per core
  bool progress = true;
};

// A value the task's allowed values and aliases do not cover (no pair; listed, never dropped silently).
extern const char* const kValueNotAllowed;  // "value not allowed"

// One input item that could not be used, and why.
struct SkippedItem {
  std::string reason;  // one of the kSkip* names (catalog/catalog_reader.h)
  std::string file;    // the file at fault (styles.csv:LINE for CSV rows)
  std::string detail;  // what exactly is wrong
};

struct PrepareSummary {
  std::string catalog_dir, catalog_format, out_dir;
  int64_t csv_rows = 0;              // data rows of the catalog (styles.csv, the table, ...)
  int64_t products_other_type = 0;   // left out: article type not selected
  int64_t products_selected = 0;     // of a selected type, read without error
  int64_t products_without_pairs = 0;
  int64_t products_train = 0, products_val = 0;
  int64_t pairs_train = 0, pairs_val = 0;
  int64_t groups_train = 0, groups_val = 0;  // --split-by: groups with a value on each side
  int64_t products_without_group = 0;        // --split-by: products without a value (each its own group)
  // attribute -> value -> pair count, per split
  std::map<std::string, std::map<std::string, int64_t>> train_counts, val_counts;
  std::map<std::string, int64_t> na_values;  // attribute -> products whose value was "NA"/empty/absent
  std::map<std::string, int64_t> not_allowed;  // attribute -> products whose value the task does not allow
  std::vector<SkippedItem> values_not_allowed;  // each: kValueNotAllowed, FILE:LINE, Attribute "value"
  std::map<std::string, int64_t> skipped_by_reason;
  std::vector<SkippedItem> skipped;       // in catalog order
  std::vector<std::string> warnings;      // CSV/JSON disagreements
  std::vector<std::string> ids_without_pairs;
  double seconds = 0;
  std::vector<std::string> outputs;       // paths written
};

// Reads, checks and writes everything (train.jsonl, val.jsonl, vqa_train.csv, vqa_test.csv,
// tailor_task.json (the attributes asked), manifest.json in out_dir, each written atomically). Throws Error only for problems with the whole
// run (no styles.csv, unusable header, bad options, cannot write); bad items are skipped and reported.
// The caller decides what "nothing usable" means (see prepare_has_pairs).
PrepareSummary prepare_catalog(const PrepareOptions& opt);
inline bool prepare_has_pairs(const PrepareSummary& s) { return s.pairs_train + s.pairs_val > 0; }

// Human-readable summary: counts, pairs per attribute, every skipped item with file and reason.
std::string format_prepare_summary(const PrepareSummary& s, size_t max_listed = SIZE_MAX);

// Splits "Shirts,Tshirts" → {"Shirts","Tshirts"}; "all" or "" → {} (every type).
std::vector<std::string> parse_article_types(const std::string& text);

}  // namespace tailor
