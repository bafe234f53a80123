#include "catalog/catalog_reader.h"

#include <unordered_set>

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/fs.h"
#include "util/text.h"

namespace tailor {

using json = nlohmann::json;

const char* const kSkipMalformedCsvRow = "malformed CSV row";
const char* const kSkipMissingJson = "missing JSON";
const char* const kSkipInvalidJson = "invalid JSON";
const char* const kSkipMissingImage = "missing image";
const char* const kSkipTruncatedImage = "truncated image";
const char* const kSkipBadImage = "undecodable image";

std::string StylesRow::column(const std::string& name) const {
  auto it = columns.find(name);
  return it == columns.end() ? std::string() : it->second;
}

bool is_missing_value(const std::string& v) {
  return v.empty() || v == "NA" || v == "N/A" || v == "na" || v == "NULL" || v == "null";
}

static bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

StylesCsv read_styles_csv(const std::string& catalog_dir) {
  StylesCsv csv;
  csv.path = join_path(catalog_dir, "styles.csv");
  if (!file_exists(csv.path))
    throw Error(csv.path + " not found (expected the Kaggle layout: styles.csv, styles/<id>.json, images/<id>.jpg)");
  std::vector<std::string> lines = text_lines(read_file(csv.path));
  if (lines.empty()) throw Error(csv.path + " is empty (expected a header line)");
  std::vector<std::string> header;
  std::string why;
  if (!parse_csv_line(lines[0], &header, &why)) throw Error(csv.path + ":1: bad header: " + why);
  bool has_id = false;
  for (std::string& h : header) {
    h = trim(h);
    has_id = has_id || h == "id";
  }
  if (!has_id) throw Error(csv.path + ":1: the header has no \"id\" column");

  std::unordered_set<std::string> seen;
  std::vector<std::string> fields;
  for (size_t ln = 1; ln < lines.size(); ++ln) {
    const std::string& line = lines[ln];
    if (trim(line).empty()) continue;
    ++csv.data_rows;
    const int64_t line_no = static_cast<int64_t>(ln) + 1;
    auto bad = [&](const std::string& detail) {
      csv.bad.push_back({line_no, csv.path + ":" + std::to_string(line_no), detail});
    };
    if (!parse_csv_line(line, &fields, &why)) {
      bad(why);
      continue;
    }
    if (fields.size() != header.size()) {
      bad(std::to_string(fields.size()) + " fields, the header has " + std::to_string(header.size()));
      continue;
    }
    StylesRow row;
    row.line_no = line_no;
    for (size_t i = 0; i < header.size(); ++i) row.columns[header[i]] = trim(fields[i]);
    row.id = row.columns["id"];
    if (!all_digits(row.id)) {
      bad("id \"" + row.id + "\" is not a number");
      continue;
    }
    if (!seen.insert(row.id).second) {
      bad("id " + row.id + " already listed on an earlier line");
      continue;
    }
    csv.rows.push_back(std::move(row));
  }
  return csv;
}

// Reads styles/<id>.json's string at data.<key>.<subkey> (subkey null = data.<key>).
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

// styles/<id>.json's "data" object, or why there is none (reason, detail).
static bool read_product_data(const std::string& json_path, json* data, std::string* reason, std::string* detail) {
  std::string text;
  try {
    text = read_file(json_path);
  } catch (const Error& e) {
    bool missing = !file_exists(json_path);
    *reason = missing ? kSkipMissingJson : kSkipInvalidJson;
    *detail = missing ? "no such file" : e.what();
    return false;
  }
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    *reason = kSkipInvalidJson;
    *detail = e.what();
    return false;
  }
  if (!doc.is_object() || !doc.contains("data") || !doc["data"].is_object()) {
    *reason = kSkipInvalidJson;
    *detail = "no object \"data\" at the top level";
    return false;
  }
  *data = std::move(doc["data"]);
  return true;
}

CatalogProduct read_catalog_product(const std::string& catalog_dir, const StylesRow& row,
                                    const std::set<std::string>& types, const std::vector<AttributeSpec>& attributes) {
  CatalogProduct r;
  const std::string json_path = join_path(join_path(catalog_dir, "styles"), row.id + ".json");
  const std::string csv_type = row.column("articleType"), csv_colour = row.column("baseColour");
  auto fail = [&](const std::string& reason, const std::string& detail) {
    r.problem = reason;
    r.problem_file = json_path;
    r.problem_detail = detail;
    return r;
  };
  // Without a readable JSON the CSV's type still says whether the product was asked for.
  r.article_type = csv_type;
  r.type_selected = types.empty() || types.count(csv_type);
  json data;
  std::string reason, detail;
  if (!read_product_data(json_path, &data, &reason, &detail)) return fail(reason, detail);
  auto jid = data.find("id");
  if (jid != data.end()) {
    std::string id = jid->is_number_integer() ? std::to_string(jid->get<int64_t>())
                     : jid->is_string()       ? jid->get<std::string>()
                                              : std::string("?");
    if (id != row.id) r.warnings.push_back(json_path + ": data.id is " + id + ", the file name says " + row.id);
  }

  std::string type;
  int got = json_string_at(data, "articleType", "typeName", &type);
  if (got < 0) return fail(kSkipInvalidJson, "data.articleType.typeName is not a string");
  type = trim(type);
  if (got == 0 || type.empty()) {
    if (csv_type.empty()) return fail(kSkipInvalidJson, "no data.articleType.typeName and no articleType in styles.csv");
    type = csv_type;
  } else if (!csv_type.empty() && csv_type != type) {
    r.warnings.push_back(json_path + ": article type \"" + type + "\" differs from styles.csv \"" + csv_type +
                         "\" (the JSON is used)");
  }
  r.article_type = type;
  r.type_selected = types.empty() || types.count(type);
  if (!r.type_selected) return r;

  const json* article_attrs = nullptr;
  auto aa = data.find("articleAttributes");
  if (aa != data.end() && !aa->is_null()) {
    if (!aa->is_object()) return fail(kSkipInvalidJson, "data.articleAttributes is not an object");
    article_attrs = &*aa;
  }
  for (size_t a = 0; a < attributes.size(); ++a) {
    const std::string& name = attributes[a].name;
    const std::string csv_value = row.column(name);
    std::string value;
    bool in_json = false;
    if (name == "baseColour") {
      int g = json_string_at(data, "baseColour", nullptr, &value);
      if (g < 0) return fail(kSkipInvalidJson, "data.baseColour is not a string");
      value = trim(value);
      in_json = g > 0 && !value.empty();
    } else if (article_attrs) {
      auto it = article_attrs->find(name);
      if (it != article_attrs->end() && !it->is_null()) {
        if (!it->is_string()) return fail(kSkipInvalidJson, "data.articleAttributes[\"" + name + "\"] is not a string");
        value = trim(it->get<std::string>());
        in_json = !value.empty();
      }
    }
    if (!in_json) {
      value = csv_value;
    } else if (name == "baseColour" && !csv_value.empty() && csv_value != value) {
      r.warnings.push_back(json_path + ": baseColour \"" + value + "\" differs from styles.csv \"" + csv_value +
                           "\" (the JSON is used)");
    }
    if (is_missing_value(value)) r.missing.push_back(a);
    else r.values.push_back({a, value});
  }
  return r;
}

std::string catalog_image_path(const std::string& catalog_dir, const std::string& id) {
  const std::string images = join_path(catalog_dir, "images");
  const std::string jpg = join_path(images, id + ".jpg"), png = join_path(images, id + ".png");
  if (!file_exists(jpg) && file_exists(png)) return png;
  return jpg;
}

}  // namespace tailor
