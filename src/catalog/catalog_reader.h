// The one reader of a Kaggle-layout catalog (styles.csv, styles/<id>.json, images/<id>.jpg), used by
// `tailor prepare` (catalog/prepare.h) and `tailor describe` (write/describe.h). It decides what a
// product is; each caller decides what to do with a bad one (docs/catalog.md, "Reading a catalog"):
// - styles.csv is RFC 4180 per line (a leading UTF-8 BOM and CRLF endings are fine). A row that does
//   not parse, has the wrong number of fields, an empty or non-numeric id, or an id already seen is a
//   bad row, named by styles.csv:LINE. prepare skips and lists it; describe refuses the catalog.
// - The article type is data.articleType.typeName of styles/<id>.json, the CSV's articleType only
//   when the JSON has none (or cannot be read). baseColour likewise: data.baseColour, then the CSV.
//   Other attributes: data.articleAttributes[<name>], then a CSV column of that name. Where JSON and
//   CSV both have a type or colour and they differ, the JSON wins and a warning says so.
// - A value that is empty, NA, N/A, na, NULL or null (after trimming) is no value.
// - The image is images/<id>.jpg, or images/<id>.png when only that exists.
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/attributes.h"

namespace tailor {

// Why an item of the catalog cannot be used (stable: tests and prepare's manifest use them).
extern const char* const kSkipMalformedCsvRow;  // "malformed CSV row"
extern const char* const kSkipMissingJson;      // "missing JSON"
extern const char* const kSkipInvalidJson;      // "invalid JSON"
extern const char* const kSkipMissingImage;     // "missing image"
extern const char* const kSkipTruncatedImage;   // "truncated image"
extern const char* const kSkipBadImage;         // "undecodable image"

// One product row of styles.csv: its id and every column by header name (values trimmed).
struct StylesRow {
  int64_t line_no = 0;  // 1-based line in styles.csv
  std::string id;
  std::map<std::string, std::string> columns;
  std::string column(const std::string& name) const;  // "" when the CSV has no such column
};

// A row that could not be read, and why.
struct BadStylesRow {
  int64_t line_no = 0;
  std::string where;   // "<path>/styles.csv:LINE"
  std::string detail;  // "9 fields, the header has 10", "id \"x\" is not a number", ...
};

struct StylesCsv {
  std::string path;
  int64_t data_rows = 0;  // non-blank lines after the header
  std::vector<StylesRow> rows;     // good rows, in file order
  std::vector<BadStylesRow> bad;   // bad rows, in file order
};

// Throws Error naming the file for problems with the whole file: missing, empty, a header that does
// not parse or has no "id" column.
StylesCsv read_styles_csv(const std::string& catalog_dir);

// What styles/<id>.json (with the CSV row as fallback) says about one product.
struct CatalogProduct {
  std::string article_type;  // JSON first, CSV fallback; "" when neither has one
  bool type_selected = true;  // false: not of the wanted types (its attributes were not read)
  // (index into the attributes asked for, value) in the order asked for; no missing values.
  std::vector<std::pair<size_t, std::string>> values;
  std::vector<size_t> missing;        // attribute indices without a value
  std::vector<std::string> warnings;  // JSON/CSV disagreements
  // Why the product cannot be used ("" = it can): kSkipMissingJson or kSkipInvalidJson, the file at
  // fault and what is wrong.
  std::string problem, problem_file, problem_detail;
};

// Reads the product's JSON; attributes only when its type is in `types` (empty = every type).
CatalogProduct read_catalog_product(const std::string& catalog_dir, const StylesRow& row,
                                    const std::set<std::string>& types, const std::vector<AttributeSpec>& attributes);

// images/<id>.jpg, or images/<id>.png when only that exists (the .jpg path when neither does).
std::string catalog_image_path(const std::string& catalog_dir, const std::string& id);

// Empty, NA, N/A, na, NULL or null: the catalog (or a model) has no value.
bool is_missing_value(const std::string& value);

}  // namespace tailor
