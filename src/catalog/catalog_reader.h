// The one catalog reader, used by `tailor prepare` (catalog/prepare.h) and `tailor describe`
// (write/describe.h). It decides what a product is; each caller decides what to do with a bad one
// (docs/catalog.md, "Reading a catalog"). Sources behind the one interface (CatalogReader):
// - kaggle: styles.csv + styles/<id>.json + images/<id>.jpg (the rules below);
// - csv / tsv / jsonl: a product table, one product per row, columns mapped by CatalogColumns;
// - imagefolder: Hugging Face's layout, metadata.jsonl or metadata.csv with file_name beside images;
// - vqa: the original system's vqa_train.csv / vqa_test.csv (id, Question, Answer) + images/<id>.jpg.
// Rows are read one at a time (next(), serial, memory of one row); a row's product is resolved by
// product() (thread-safe: Kaggle reads the product's JSON there), so a caller can stream any size.
// Shared rules, whatever the source:
// - A row that does not parse, lacks an id, or repeats an id is a bad row named FILE:LINE. prepare
//   skips and lists it; describe refuses the catalog.
// - A value that is empty, NA, N/A, na, NULL or null (after trimming) is no value. Any other value is
//   normalised by the task (core/attributes.h normalize_value: case, spaces, aliases); one the task
//   does not allow is listed in not_allowed. An attribute is read only for the article types it
//   applies to (applies_to).
// - A product's photo is the first of its candidate images that exists or downloads (Kaggle:
//   images/<id>.jpg, then .png; a table: its image columns in order, each a path relative to the
//   table, an http(s) URL or s3://bucket/key); none → the first candidate's failure is named.
// - A source with an article type filters by it; a source without one (vqa, a table without the
//   column) takes every product.
// Kaggle only: the article type is data.articleType.typeName of styles/<id>.json, the CSV's
// articleType when the JSON has none. baseColour likewise: data.baseColour, then the CSV. Other
// attributes: data.articleAttributes[<name>], then a CSV column of that name. Where JSON and CSV both
// have a type or colour and they differ, the JSON wins and a warning says so. Kaggle ids are numbers.
#pragma once
#include <cstdint>
#include <istream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "catalog/download_cache.h"
#include "core/attributes.h"

namespace tailor {

// Why an item of the catalog cannot be used (stable: tests and prepare's manifest use them).
extern const char* const kSkipMalformedCsvRow;  // "malformed CSV row" (styles.csv, CSV/TSV tables)
extern const char* const kSkipMalformedRow;     // "malformed row" (JSON Lines, vqa files)
extern const char* const kSkipMissingJson;      // "missing JSON"
extern const char* const kSkipInvalidJson;      // "invalid JSON"
extern const char* const kSkipMissingImage;     // "missing image"
extern const char* const kSkipTruncatedImage;   // "truncated image"
extern const char* const kSkipBadImage;         // "undecodable image"

// Which column of a product table holds what; empty = the default names.
struct CatalogColumns {
  std::string id;                   // default "id" (imagefolder without one: the file_name's stem)
  std::vector<std::string> images;  // default: the first of image, image_url, file_name that the table has
  std::string article_type;         // default "articleType"
  std::map<std::string, std::string> attributes;  // attribute -> column; default: the attribute's name
};

// Where a catalog is and how to read it (tailor prepare/describe --catalog, --format, column flags).
struct CatalogSource {
  std::string location;  // a directory, a table file, or a table's http(s) URL or s3:// URI
  std::string format;    // kaggle, csv, tsv, jsonl, imagefolder, vqa; "" or "auto" = recognised
  CatalogColumns columns;
  DownloadOptions download;  // remote tables and photos (catalog/download_cache.h)
};

// Reads a catalog spec file into `source`, keeping what is already set (flags win):
// {"format": "csv", "columns": {"id": "sku", "image": "photo" or [...], "articleType": "category",
//  "attributes": {"Sleeve Length": "sleeve"}}}. Errors name the file and field.
void apply_catalog_spec(const std::string& spec_path, CatalogSource* source);
// Parses "Attribute=column" (the --column flag); throws Error naming the text.
std::pair<std::string, std::string> parse_column_mapping(const std::string& text);

// The source's format from what is at `location` (a directory's files, a file's extension); throws
// Error saying what was looked for.
std::string detect_catalog_format(const std::string& location);

// One row of the catalog: a product as its file states it.
struct CatalogRow {
  int64_t line_no = 0;  // 1-based first line of the row
  std::string where;    // "<file>:LINE"
  std::string id;
  std::map<std::string, std::string> columns;             // every field by column name, trimmed
  std::map<std::string, std::vector<std::string>> lists;  // JSON Lines arrays (image columns only)
  std::string bad_reason, bad_detail;                     // set: the row cannot be used (kSkipMalformed*)
  std::string column(const std::string& name) const;      // "" when the row has no such column
};

// What the catalog says about one product.
struct CatalogProduct {
  std::string article_type;  // "" when the source has none
  bool type_selected = true;  // false: not of the wanted types (its attributes were not read)
  // (index into the attributes asked for, value) in the order asked for; no missing values.
  std::vector<std::pair<size_t, std::string>> values;
  std::vector<size_t> missing;        // attribute indices without a value
  // (attribute index, the catalog's value) where the task allows other values only (normalize_value).
  std::vector<std::pair<size_t, std::string>> not_allowed;
  std::vector<std::string> warnings;  // JSON/CSV disagreements
  std::vector<std::string> images;    // where its photo may be, in order of preference
  std::string group;                  // the value of the query's group_by field ("" = none or no value)
  // Why the product cannot be used ("" = it can): kSkipMissingJson or kSkipInvalidJson, the file at
  // fault and what is wrong.
  std::string problem, problem_file, problem_detail;
};

class CatalogReader {
 public:
  virtual ~CatalogReader() = default;
  // The next row (bad ones too, with bad_reason set); false at the end. Not thread-safe.
  virtual bool next(CatalogRow* row) = 0;
  // The product of a good row. Thread-safe; reads files only for Kaggle (the product's JSON).
  virtual CatalogProduct product(const CatalogRow& row) const = 0;
  const std::string& format() const { return format_; }
  const std::string& path() const { return path_; }  // the table (or styles.csv) read
  int64_t rows() const { return rows_; }             // rows returned so far
  virtual int64_t bytes_read() const = 0;            // of path(), for progress

 protected:
  std::string format_, path_;
  int64_t rows_ = 0;
};

// The attributes to read and the article types wanted (empty = every type).
struct CatalogQueryAttributes {
  std::vector<AttributeSpec> attributes;
  std::set<std::string> article_types;
  // A field whose value groups products (prepare's --split-by): a table's column; Kaggle: a string
  // of the product's JSON data (brand = brandName; an object's typeName, e.g. subCategory), then the
  // styles.csv column of that name. "" = none.
  std::string group_by;
};

// Opens the catalog at source.location. Throws Error naming the file for problems with the whole
// catalog (missing, empty, a header without the id column, a mapped column that is not there).
std::unique_ptr<CatalogReader> open_catalog(const CatalogSource& source, const CatalogQueryAttributes& query);
// A product table (csv, tsv, jsonl, imagefolder's metadata) read from a stream: the parsers as
// functions over bytes. `name` names the stream in errors; relative image paths are under base_dir.
std::unique_ptr<CatalogReader> open_table_stream(std::unique_ptr<std::istream> in, const std::string& name,
                                                 const std::string& format, const std::string& base_dir,
                                                 const CatalogColumns& columns, const CatalogQueryAttributes& query);

// The first candidate that exists; the first one when none does ("" for none).
std::string first_existing_image(const std::vector<std::string>& candidates);

// A product's photo: the first candidate that is a local file or downloads (into `cache`, which
// may be null when no candidate is remote). On failure `path` is "", and reason/location/detail are
// the first candidate's failure (kSkipMissingImage or a download reason), the others named in detail.
struct LocatedImage {
  std::string path;      // local file (a remote photo's cached copy)
  std::string location;  // the candidate used, or the one at fault
  std::string reason, detail;
};
LocatedImage locate_image(const std::vector<std::string>& candidates, DownloadCache* cache);

// Empty, NA, N/A, na, NULL or null: the catalog (or a model) has no value.
bool is_missing_value(const std::string& value);

}  // namespace tailor
