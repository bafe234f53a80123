#include "catalog/catalog_reader.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/text.h"

namespace tailor {

using json = nlohmann::json;

const char* const kSkipMalformedCsvRow = "malformed CSV row";
const char* const kSkipMalformedRow = "malformed row";
const char* const kSkipMissingJson = "missing JSON";
const char* const kSkipInvalidJson = "invalid JSON";
const char* const kSkipMissingImage = "missing image";
const char* const kSkipTruncatedImage = "truncated image";
const char* const kSkipBadImage = "undecodable image";

// A table or styles.csv larger than this is refused (a wrong path, not a catalog).
static const int64_t kMaxTableBytes = int64_t{64} << 30;
// A product's styles/<id>.json larger than this is invalid (the real ones are a few kB).
static const int64_t kMaxProductJsonBytes = int64_t{16} << 20;
// One JSON Lines row longer than this is a bad row (the reader keeps one row in memory).
static const size_t kMaxRowBytes = size_t{1} << 20;

std::string CatalogRow::column(const std::string& name) const {
  auto it = columns.find(name);
  return it == columns.end() ? std::string() : it->second;
}

bool is_missing_value(const std::string& v) {
  return v.empty() || v == "NA" || v == "N/A" || v == "na" || v == "NULL" || v == "null";
}

std::string first_existing_image(const std::vector<std::string>& candidates) {
  for (const auto& c : candidates)
    if (file_exists(c)) return c;
  return candidates.empty() ? std::string() : candidates.front();
}

// The one rule for a product's value of attribute `a`, whatever the source: no value, an allowed
// (normalised) value, or a value the task does not allow.
static void take_value(CatalogProduct& r, const std::vector<AttributeSpec>& attributes, size_t a,
                       const std::string& raw) {
  if (is_missing_value(raw)) {
    r.missing.push_back(a);
    return;
  }
  std::string value = normalize_value(attributes[a], raw);
  if (value.empty()) r.not_allowed.push_back({a, raw});
  else r.values.push_back({a, value});
}

LocatedImage locate_image(const std::vector<std::string>& candidates, DownloadCache* cache) {
  LocatedImage first;
  std::string others;
  for (const auto& c : candidates) {
    LocatedImage here;
    here.location = c;
    if (is_remote_location(c)) {
      if (!cache) throw Error("the photo " + c + " is remote, and no download cache was set up");
      Download d = cache->fetch(c);
      if (d.reason.empty()) {
        here.path = d.path;
        return here;
      }
      here.reason = d.reason;
      here.detail = d.detail;
    } else {
      if (file_exists(c)) {
        here.path = c;
        return here;
      }
      here.reason = kSkipMissingImage;
      here.detail = "no such file";
    }
    if (first.location.empty()) first = here;
    else others += (others.empty() ? "" : ", ") + std::filesystem::path(c).filename().string();
  }
  if (candidates.empty()) {
    first.reason = kSkipMissingImage;
    first.detail = "no image given";
  }
  if (!others.empty()) first.detail += " (nor " + others + ")";
  return first;
}

// The ids seen so far, for the duplicate check, as 64-bit hashes in one open-addressing table: 16
// bytes per row (16 MB per million rows) rather than a string set's ~80, the one per-row cost of a
// streamed catalog. Two different ids share a hash with probability about n^2 / 2^65 (3e-8 for a
// million rows); such a pair would be reported as a duplicate, never merged.
class SeenIds {
 public:
  // False when the id was seen before.
  bool insert(const std::string& id) {
    if ((count_ + 1) * 2 > slots_.size()) grow();
    uint64_t h = fnv1a64(id) | 1;  // 0 marks an empty slot
    if (place(h)) {
      ++count_;
      return true;
    }
    return false;
  }

 private:
  bool place(uint64_t h) {
    size_t mask = slots_.size() - 1;
    for (size_t i = (h * 0x9E3779B97F4A7C15ULL) >> 7 & mask;; i = (i + 1) & mask) {
      if (slots_[i] == h) return false;
      if (slots_[i] == 0) {
        slots_[i] = h;
        return true;
      }
    }
  }
  void grow() {
    std::vector<uint64_t> old = std::move(slots_);
    slots_.assign(old.empty() ? 1024 : old.size() * 2, 0);
    for (uint64_t h : old)
      if (h) place(h);
  }
  std::vector<uint64_t> slots_;
  size_t count_ = 0;
};

static bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

static bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

static bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The catalog's table as a stream; it must be a regular file of bounded size (not a FIFO or device
// that would never end).
static std::unique_ptr<std::istream> open_table_file(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) throw Error(path + " not found");
  if (!S_ISREG(st.st_mode)) throw Error(path + " is not a regular file");
  if (st.st_size > kMaxTableBytes)
    throw Error(path + " is " + std::to_string(st.st_size) + " bytes, more than the limit of " +
                std::to_string(kMaxTableBytes));
  auto in = std::make_unique<std::ifstream>(path, std::ios::binary);
  if (!*in) throw Error(path + ": cannot open for reading");
  return in;
}

std::pair<std::string, std::string> parse_column_mapping(const std::string& text) {
  size_t eq = text.find('=');
  std::string attr = eq == std::string::npos ? "" : trim(text.substr(0, eq));
  std::string col = eq == std::string::npos ? "" : trim(text.substr(eq + 1));
  if (attr.empty() || col.empty())
    throw Error("--column \"" + text + "\": expected ATTRIBUTE=COLUMN, e.g. \"Sleeve Length=sleeve\"");
  return {attr, col};
}

void apply_catalog_spec(const std::string& spec_path, CatalogSource* source) {
  json j;
  try {
    j = json::parse(read_file(spec_path));
  } catch (const json::exception& e) {
    throw Error(spec_path + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(spec_path + ": expected an object {\"format\", \"columns\"}");
  auto string_at = [&](const json& o, const std::string& key, const std::string& field) -> std::string {
    if (!o.contains(key)) return "";
    if (!o[key].is_string() || o[key].get<std::string>().empty())
      throw Error(spec_path + ": field " + field + " must be a non-empty string");
    return o[key].get<std::string>();
  };
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "format" && it.key() != "columns")
      throw Error(spec_path + ": unknown field \"" + it.key() + "\" (format, columns)");
  std::string format = string_at(j, "format", "format");
  if (source->format.empty() || source->format == "auto") source->format = format;
  if (!j.contains("columns")) return;
  const json& c = j["columns"];
  if (!c.is_object()) throw Error(spec_path + ": field columns must be an object");
  CatalogColumns& cols = source->columns;
  for (auto it = c.begin(); it != c.end(); ++it) {
    const std::string& key = it.key();
    if (key == "id") {
      if (cols.id.empty()) cols.id = string_at(c, key, "columns.id");
    } else if (key == "articleType") {
      if (cols.article_type.empty()) cols.article_type = string_at(c, key, "columns.articleType");
    } else if (key == "image") {
      std::vector<std::string> images;
      if (it.value().is_string()) images.push_back(string_at(c, key, "columns.image"));
      else if (it.value().is_array() && !it.value().empty()) {
        for (size_t i = 0; i < it.value().size(); ++i) {
          if (!it.value()[i].is_string() || it.value()[i].get<std::string>().empty())
            throw Error(spec_path + ": field columns.image[" + std::to_string(i) + "] must be a non-empty string");
          images.push_back(it.value()[i].get<std::string>());
        }
      } else {
        throw Error(spec_path + ": field columns.image must be a column name or a list of them");
      }
      if (cols.images.empty()) cols.images = images;
    } else if (key == "attributes") {
      if (!it.value().is_object()) throw Error(spec_path + ": field columns.attributes must be an object {attribute: column}");
      for (auto a = it.value().begin(); a != it.value().end(); ++a) {
        std::string col = string_at(it.value(), a.key(), "columns.attributes[\"" + a.key() + "\"]");
        if (!cols.attributes.count(a.key())) cols.attributes[a.key()] = col;
      }
    } else {
      throw Error(spec_path + ": unknown field columns." + key + " (id, image, articleType, attributes)");
    }
  }
}

static const char* const kFormats = "kaggle, csv, tsv, jsonl, imagefolder, vqa";

static bool is_vqa_header(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;  // a FIFO would block here
  std::ifstream in(path, std::ios::binary);
  std::string line;
  if (!std::getline(in, line)) return false;
  if (line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
  return trim(line) == "id,Question,Answer";
}

std::string detect_catalog_format(const std::string& location) {
  if (is_remote_location(location)) {
    std::string path = location.substr(0, location.find_first_of("?#"));
    if (ends_with(path, ".jsonl") || ends_with(path, ".ndjson")) return "jsonl";
    if (ends_with(path, ".tsv") || ends_with(path, ".tab")) return "tsv";
    if (ends_with(path, ".csv")) return "csv";
    throw Error("--catalog " + location + ": cannot tell the table's format from the URL; give --format (csv, tsv, jsonl)");
  }
  if (is_directory(location)) {
    if (file_exists(join_path(location, "styles.csv"))) return "kaggle";
    if (file_exists(join_path(location, "metadata.jsonl")) || file_exists(join_path(location, "metadata.csv")))
      return "imagefolder";
    if (file_exists(join_path(location, "vqa_train.csv")) || file_exists(join_path(location, "vqa_test.csv")))
      return "vqa";
    throw Error("--catalog " + location +
                ": no catalog found in this directory (looked for styles.csv, metadata.jsonl, metadata.csv, "
                "vqa_train.csv, vqa_test.csv); give a table file or --format");
  }
  if (!file_exists(location)) throw Error("--catalog " + location + ": no such file or directory");
  if (ends_with(location, ".jsonl") || ends_with(location, ".ndjson")) return "jsonl";
  if (ends_with(location, ".tsv") || ends_with(location, ".tab")) return "tsv";
  if (ends_with(location, ".csv")) return is_vqa_header(location) ? "vqa" : "csv";
  throw Error("--catalog " + location + ": cannot tell the format from the name (.csv, .tsv, .jsonl); give --format (" +
              kFormats + ")");
}

// ---- Kaggle: styles.csv + styles/<id>.json ------------------------------------------------------

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
    text = read_input_file(json_path, kMaxProductJsonBytes);
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

class KaggleReader : public CatalogReader {
 public:
  KaggleReader(const std::string& dir, const CatalogQueryAttributes& query) : dir_(dir), query_(query) {
    format_ = "kaggle";
    path_ = join_path(dir, "styles.csv");
    if (!file_exists(path_))
      throw Error(path_ + " not found (expected the Kaggle layout: styles.csv, styles/<id>.json, images/<id>.jpg)");
    in_ = open_table_file(path_);
    csv_ = std::make_unique<CsvRecordReader>(*in_, ',', /*quoted_newlines=*/false);
    bool ok = false;
    std::string why;
    if (!csv_->next(&header_, &ok, &why)) throw Error(path_ + " is empty (expected a header line)");
    if (!ok) throw Error(path_ + ":" + std::to_string(csv_->line_no()) + ": bad header: " + why);
    bool has_id = false;
    for (std::string& h : header_) {
      h = trim(h);
      has_id = has_id || h == "id";
    }
    if (!has_id) throw Error(path_ + ":1: the header has no \"id\" column");
  }

  bool next(CatalogRow* row) override {
    std::vector<std::string> fields;
    bool ok = false;
    std::string why;
    if (!csv_->next(&fields, &ok, &why)) return false;
    ++rows_;
    *row = CatalogRow();
    row->line_no = csv_->line_no();
    row->where = path_ + ":" + std::to_string(row->line_no);
    auto bad = [&](const std::string& detail) {
      row->bad_reason = kSkipMalformedCsvRow;
      row->bad_detail = detail;
      return true;
    };
    if (!ok) return bad(why);
    if (fields.size() != header_.size())
      return bad(std::to_string(fields.size()) + " fields, the header has " + std::to_string(header_.size()));
    for (size_t i = 0; i < header_.size(); ++i) row->columns[header_[i]] = trim(fields[i]);
    row->id = row->columns["id"];
    if (!all_digits(row->id)) return bad("id \"" + row->id + "\" is not a number");
    if (!seen_.insert(row->id)) return bad("id " + row->id + " already listed on an earlier line");
    return true;
  }

  int64_t bytes_read() const override { return csv_->bytes_read(); }

  CatalogProduct product(const CatalogRow& row) const override {
    CatalogProduct r;
    const std::string images = join_path(dir_, "images");
    r.images = {join_path(images, row.id + ".jpg"), join_path(images, row.id + ".png")};
    const std::string json_path = join_path(join_path(dir_, "styles"), row.id + ".json");
    const std::string csv_type = row.column("articleType"), csv_colour = row.column("baseColour");
    const auto& types = query_.article_types;
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
    if (!query_.group_by.empty()) r.group = kaggle_group(data, row);

    const json* article_attrs = nullptr;
    auto aa = data.find("articleAttributes");
    if (aa != data.end() && !aa->is_null()) {
      if (!aa->is_object()) return fail(kSkipInvalidJson, "data.articleAttributes is not an object");
      article_attrs = &*aa;
    }
    const auto& attributes = query_.attributes;
    for (size_t a = 0; a < attributes.size(); ++a) {
      if (!applies_to(attributes[a], r.article_type)) continue;
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
      take_value(r, attributes, a, value);
    }
    return r;
  }

 private:
  // The product's value of query_.group_by: data[field] as a string, or an object's typeName
  // (subCategory, articleType, ...), then the styles.csv column. "brand" stands for brandName.
  std::string kaggle_group(const json& data, const CatalogRow& row) const {
    const std::string field = query_.group_by == "brand" ? "brandName" : query_.group_by;
    auto it = data.find(field);
    if (it != data.end()) {
      if (it->is_string()) return trim(it->get<std::string>());
      if (it->is_object()) {
        auto tn = it->find("typeName");
        if (tn != it->end() && tn->is_string()) return trim(tn->get<std::string>());
      }
      if (it->is_number_integer()) return std::to_string(it->get<int64_t>());
    }
    return row.column(query_.group_by);
  }

  std::string dir_;
  CatalogQueryAttributes query_;
  std::unique_ptr<std::istream> in_;
  std::unique_ptr<CsvRecordReader> csv_;
  std::vector<std::string> header_;
  SeenIds seen_;
};

// ---- product tables: CSV, TSV, JSON Lines (and imagefolder's metadata) -------------------------

// The value a JSON Lines field stands for, as text: strings as they are, numbers and booleans as
// written, null as no value. Returns false for an object.
static bool json_field_text(const json& v, std::string* out) {
  if (v.is_string()) *out = v.get<std::string>();
  else if (v.is_null()) out->clear();
  else if (v.is_number() || v.is_boolean()) *out = v.dump();
  else return false;
  return true;
}

class TableReader : public CatalogReader {
 public:
  TableReader(std::unique_ptr<std::istream> in, const std::string& name, const std::string& format,
              const std::string& base_dir, const CatalogColumns& columns, const CatalogQueryAttributes& query)
      : in_(std::move(in)), base_dir_(base_dir), columns_(columns), query_(query) {
    format_ = format;
    path_ = name;
    imagefolder_ = format == "imagefolder";
    jsonl_ = format == "jsonl" || (imagefolder_ && ends_with(name, ".jsonl"));
    if (!jsonl_) {
      char sep = format == "tsv" ? '\t' : ',';
      csv_ = std::make_unique<CsvRecordReader>(*in_, sep, /*quoted_newlines=*/true);
      bool ok = false;
      std::string why;
      if (!csv_->next(&header_, &ok, &why)) throw Error(path_ + " is empty (expected a header line)");
      if (!ok) throw Error(path_ + ":" + std::to_string(csv_->line_no()) + ": bad header: " + why);
      std::set<std::string> names;
      for (std::string& h : header_) {
        h = trim(h);
        if (!names.insert(h).second) throw Error(path_ + ":1: column \"" + h + "\" appears twice in the header");
      }
      // Mapped columns must be there; default names only where they are.
      auto need = [&](const std::string& col, const std::string& what) {
        if (!names.count(col)) throw Error(path_ + ":1: the header has no column \"" + col + "\" (" + what + ")");
      };
      if (!columns_.id.empty()) need(columns_.id, "the id");
      else if (names.count("id")) columns_.id = "id";
      else if (!imagefolder_) need("id", "the id; map another column with --id-column");
      for (const auto& c : columns_.images) need(c, "an image");
      if (columns_.images.empty()) {
        for (const char* c : {"image", "image_url", "file_name"})
          if (names.count(c)) {
            columns_.images.push_back(c);
            break;
          }
        if (columns_.images.empty())
          throw Error(path_ + ":1: the header has no image column (image, image_url or file_name; map one with --image-column)");
      }
      if (imagefolder_ && columns_.id.empty() && columns_.images.front() != "file_name")
        throw Error(path_ + ":1: an imagefolder's metadata needs a file_name column");
      if (!columns_.article_type.empty()) need(columns_.article_type, "the article type");
      else columns_.article_type = "articleType";
      has_type_column_ = names.count(columns_.article_type) > 0;
      for (const auto& [attr, col] : columns_.attributes) need(col, "attribute " + attr);
      if (!query_.group_by.empty()) need(query_.group_by, "--split-by");
    }
    if (columns_.article_type.empty()) columns_.article_type = "articleType";
    for (const auto& [attr, col] : columns_.attributes) {
      bool asked = false;
      for (const auto& a : query_.attributes) asked = asked || a.name == attr;
      if (!asked) throw Error("a column is mapped to attribute \"" + attr + "\", which is not one of the task's attributes");
    }
  }

  int64_t bytes_read() const override { return csv_ ? csv_->bytes_read() : bytes_; }

  bool next(CatalogRow* row) override {
    *row = CatalogRow();
    if (jsonl_) {
      if (!next_jsonl(row)) return false;
    } else {
      std::vector<std::string> fields;
      bool ok = false;
      std::string why;
      if (!csv_->next(&fields, &ok, &why)) return false;
      row->line_no = csv_->line_no();
      row->where = path_ + ":" + std::to_string(row->line_no);
      if (!ok) return bad(row, kSkipMalformedCsvRow, why);
      if (fields.size() != header_.size())
        return bad(row, kSkipMalformedCsvRow,
                   std::to_string(fields.size()) + " fields, the header has " + std::to_string(header_.size()));
      for (size_t i = 0; i < header_.size(); ++i) row->columns[header_[i]] = trim(fields[i]);
    }
    ++rows_;
    if (!row->bad_reason.empty()) return true;
    const char* reason = jsonl_ ? kSkipMalformedRow : kSkipMalformedCsvRow;
    std::string id_col = id_column(*row);
    if (id_col.empty()) {
      // imagefolder without an id column: the photo's file name without extension.
      row->id = std::filesystem::path(row->column("file_name")).stem().string();
      if (row->id.empty()) return bad(row, reason, "field \"file_name\" is empty");
    } else {
      row->id = row->column(id_col);
      if (row->id.empty()) return bad(row, reason, "field \"" + id_col + "\" (the id) is empty");
    }
    for (char c : row->id)
      if (static_cast<unsigned char>(c) < 0x20 || c == '/' || c == '\\')
        return bad(row, reason, "field \"" + id_col + "\": the id \"" + row->id + "\" has a control character or slash");
    if (!seen_.insert(row->id)) return bad(row, reason, "id " + row->id + " already listed on an earlier line");
    return true;
  }

  CatalogProduct product(const CatalogRow& row) const override {
    CatalogProduct r;
    for (const auto& col : image_columns(row)) {
      auto list = row.lists.find(col);
      std::vector<std::string> values = list != row.lists.end() ? list->second : std::vector<std::string>{row.column(col)};
      for (const auto& v : values)
        if (!is_missing_value(v)) r.images.push_back(resolve_image(v));
    }
    const bool has_type = jsonl_ ? row.columns.count(columns_.article_type) > 0 : has_type_column_;
    r.article_type = row.column(columns_.article_type);
    // A source without article types takes every product; one with them filters (no type: not selected).
    r.type_selected = !has_type || query_.article_types.empty() || query_.article_types.count(r.article_type);
    if (!r.type_selected) return r;
    if (!query_.group_by.empty()) r.group = row.column(query_.group_by);
    const auto& attributes = query_.attributes;
    for (size_t a = 0; a < attributes.size(); ++a) {
      if (!applies_to(attributes[a], r.article_type)) continue;
      auto m = columns_.attributes.find(attributes[a].name);
      take_value(r, attributes, a, row.column(m == columns_.attributes.end() ? attributes[a].name : m->second));
    }
    return r;
  }

 private:
  bool bad(CatalogRow* row, const char* reason, const std::string& detail) {
    row->bad_reason = reason;
    row->bad_detail = detail;
    return true;
  }

  std::string id_column(const CatalogRow& row) const {
    if (!columns_.id.empty()) return columns_.id;
    if (jsonl_ && (!imagefolder_ || row.columns.count("id"))) return "id";
    return "";
  }

  std::vector<std::string> image_columns(const CatalogRow& row) const {
    if (!columns_.images.empty()) return columns_.images;
    for (const char* c : {"image", "image_url", "file_name"})
      if (row.columns.count(c) || row.lists.count(c)) return {c};
    return {};
  }

  std::string resolve_image(const std::string& v) const {
    if (is_remote_location(v) || (!v.empty() && v[0] == '/')) return v;
    return join_path(base_dir_, v);
  }

  bool next_jsonl(CatalogRow* row) {
    std::string line;
    do {
      if (!std::getline(*in_, line)) return false;
      bytes_ += static_cast<int64_t>(line.size()) + 1;
      if (++line_ == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
    } while (trim(line).empty());
    row->line_no = line_;
    row->where = path_ + ":" + std::to_string(line_);
    if (line.size() > kMaxRowBytes)
      return bad(row, kSkipMalformedRow, "the line is " + std::to_string(line.size()) + " bytes, more than " +
                                             std::to_string(kMaxRowBytes));
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      return bad(row, kSkipMalformedRow, std::string("invalid JSON: ") + e.what());
    }
    if (!j.is_object()) return bad(row, kSkipMalformedRow, "not a JSON object");
    std::vector<std::string> image_cols = columns_.images.empty()
                                              ? std::vector<std::string>{"image", "image_url", "file_name"}
                                              : columns_.images;
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& key = it.key();
      std::string text;
      if (it.value().is_array()) {
        bool image_col = false;
        for (const auto& c : image_cols) image_col = image_col || c == key;
        if (!image_col) return bad(row, kSkipMalformedRow, "field \"" + key + "\" is a list; only image fields take one");
        std::vector<std::string>& list = row->lists[key];
        for (size_t i = 0; i < it.value().size(); ++i) {
          if (!it.value()[i].is_string())
            return bad(row, kSkipMalformedRow, "field \"" + key + "\"[" + std::to_string(i) + "] is not a string");
          list.push_back(trim(it.value()[i].get<std::string>()));
        }
        row->columns[key] = list.empty() ? "" : list.front();
        continue;
      }
      if (!json_field_text(it.value(), &text))
        return bad(row, kSkipMalformedRow, "field \"" + key + "\" is an object, expected a string or number");
      row->columns[key] = trim(text);
    }
    return true;
  }

  std::unique_ptr<std::istream> in_;
  std::string base_dir_;
  CatalogColumns columns_;
  CatalogQueryAttributes query_;
  bool imagefolder_ = false, jsonl_ = false, has_type_column_ = false;
  std::unique_ptr<CsvRecordReader> csv_;
  std::vector<std::string> header_;
  SeenIds seen_;
  int64_t line_ = 0, bytes_ = 0;
};

// ---- the original system's vqa_train.csv / vqa_test.csv -----------------------------------------

// Its files hold one row per (product, question); the rows of a product are gathered into one
// CatalogRow whose columns are the attributes (from the Answer's "Attribute: value", or else the
// attribute whose question the Question is). These files are small (the original system's own data
// set), so they are read whole at open.
class VqaReader : public CatalogReader {
 public:
  VqaReader(const std::vector<std::string>& files, const std::string& images_dir, const CatalogQueryAttributes& query)
      : images_dir_(images_dir), query_(query) {
    format_ = "vqa";
    path_ = files.front();
    std::map<std::string, size_t> product_of_id;
    for (const auto& file : files) {
      auto in = open_table_file(file);
      CsvRecordReader csv(*in, ',', /*quoted_newlines=*/true);
      std::vector<std::string> f;
      bool ok = false;
      std::string why;
      if (!csv.next(&f, &ok, &why)) throw Error(file + " is empty (expected the header id,Question,Answer)");
      if (!ok || f.size() != 3 || trim(f[0]) != "id" || trim(f[1]) != "Question" || trim(f[2]) != "Answer")
        throw Error(file + ":1: expected the header id,Question,Answer");
      while (csv.next(&f, &ok, &why)) {
        CatalogRow line;
        line.line_no = csv.line_no();
        line.where = file + ":" + std::to_string(line.line_no);
        auto bad = [&](const std::string& detail) {
          line.bad_reason = kSkipMalformedCsvRow;
          line.bad_detail = detail;
          rows_list_.push_back(line);
        };
        if (!ok) { bad(why); continue; }
        if (f.size() != 3) { bad(std::to_string(f.size()) + " fields, the header has 3"); continue; }
        std::string id = trim(f[0]), question = trim(f[1]), answer = trim(f[2]);
        if (id.empty()) { bad("field \"id\" is empty"); continue; }
        std::string attribute, value;
        if (!attribute_of(question, answer, &attribute, &value)) {
          bad("field \"Answer\" \"" + answer + "\" is not \"Attribute: value\" and field \"Question\" is "
              "none of the task's questions");
          continue;
        }
        auto [it, fresh] = product_of_id.insert({id, rows_list_.size()});
        if (fresh) {
          CatalogRow p;
          p.line_no = line.line_no;
          p.where = line.where;
          p.id = id;
          rows_list_.push_back(p);
        }
        CatalogRow& p = rows_list_[it->second];
        auto have = p.columns.find(attribute);
        if (have != p.columns.end() && have->second != value) {
          bad("id " + id + " already has " + attribute + " = \"" + have->second + "\" (" + p.where + ")");
          continue;
        }
        p.columns[attribute] = value;
      }
    }
  }

  bool next(CatalogRow* row) override {
    if (next_ >= rows_list_.size()) return false;
    *row = std::move(rows_list_[next_++]);
    ++rows_;
    return true;
  }
  int64_t bytes_read() const override { return 0; }

  CatalogProduct product(const CatalogRow& row) const override {
    CatalogProduct r;
    r.images = {join_path(images_dir_, row.id + ".jpg"), join_path(images_dir_, row.id + ".png")};
    const auto& attributes = query_.attributes;
    for (size_t a = 0; a < attributes.size(); ++a) take_value(r, attributes, a, row.column(attributes[a].name));
    return r;
  }

 private:
  bool attribute_of(const std::string& question, const std::string& answer, std::string* attribute,
                    std::string* value) const {
    size_t colon = answer.find(':');
    if (colon != std::string::npos) {
      std::string name = trim(answer.substr(0, colon));
      for (const auto& a : query_.attributes)
        if (a.name == name) {
          *attribute = name;
          *value = trim(answer.substr(colon + 1));
          return true;
        }
    }
    for (const auto& a : query_.attributes)
      if (a.question == question || wrap_prompt(a.question) == question) {
        *attribute = a.name;
        *value = answer;
        return true;
      }
    // "Attribute: value" of an attribute not asked for: kept under its name, read by nobody.
    if (colon == std::string::npos || trim(answer.substr(0, colon)).empty()) return false;
    *attribute = trim(answer.substr(0, colon));
    *value = trim(answer.substr(colon + 1));
    return true;
  }

  std::string images_dir_;
  CatalogQueryAttributes query_;
  std::vector<CatalogRow> rows_list_;
  size_t next_ = 0;
};

// ---- opening ------------------------------------------------------------------------------------

std::unique_ptr<CatalogReader> open_table_stream(std::unique_ptr<std::istream> in, const std::string& name,
                                                 const std::string& format, const std::string& base_dir,
                                                 const CatalogColumns& columns, const CatalogQueryAttributes& query) {
  return std::make_unique<TableReader>(std::move(in), name, format, base_dir, columns, query);
}

// A table at a URL or in S3: downloaded into the cache (or found there), then read like a local one
// with its photos' relative paths resolved against the URL's directory.
static std::unique_ptr<CatalogReader> open_remote_table(const CatalogSource& source, const CatalogQueryAttributes& query) {
  const std::string& loc = source.location;
  std::string path = loc.substr(0, loc.find_first_of("?#"));
  std::string format = source.format;
  if (format.empty() || format == "auto") {
    if (ends_with(path, ".jsonl") || ends_with(path, ".ndjson")) format = "jsonl";
    else if (ends_with(path, ".tsv") || ends_with(path, ".tab")) format = "tsv";
    else if (ends_with(path, ".csv")) format = "csv";
    else throw Error("--catalog " + loc + ": cannot tell the table's format from the URL; give --format (csv, tsv, jsonl)");
  }
  if (format != "csv" && format != "tsv" && format != "jsonl" && format != "imagefolder")
    throw Error("--catalog " + loc + ": a catalog at a URL is a table (csv, tsv, jsonl, an imagefolder's metadata), not " + format);
  DownloadCache cache(source.download);
  Download d = cache.fetch(loc, kMaxTableBytes);
  if (!d.reason.empty()) throw Error("--catalog " + loc + ": " + d.reason + ": " + d.detail);
  const std::string base = path.substr(0, path.rfind('/'));
  return open_table_stream(open_table_file(d.path), loc, format, base, source.columns, query);
}

std::unique_ptr<CatalogReader> open_catalog(const CatalogSource& source, const CatalogQueryAttributes& query) {
  const std::string& loc = source.location;
  if (loc.empty()) throw Error("no catalog given (--catalog)");
  if (is_remote_location(loc)) return open_remote_table(source, query);
  std::string format = source.format.empty() || source.format == "auto" ? detect_catalog_format(loc) : source.format;
  const std::string parent = std::filesystem::path(loc).parent_path().string();
  const bool dir = is_directory(loc);
  if (format == "kaggle") {
    if (!dir) throw Error("--catalog " + loc + ": the Kaggle layout is a directory (styles.csv, styles/, images/)");
    return std::make_unique<KaggleReader>(loc, query);
  }
  if (format == "csv" || format == "tsv" || format == "jsonl") {
    if (dir) throw Error("--catalog " + loc + ": a " + format + " catalog is a table file, not a directory");
    return open_table_stream(open_table_file(loc), loc, format, parent.empty() ? "." : parent, source.columns, query);
  }
  if (format == "imagefolder") {
    std::string table = loc, base = parent;
    if (dir) {
      base = loc;
      table = join_path(loc, "metadata.jsonl");
      if (!file_exists(table)) table = join_path(loc, "metadata.csv");
      if (!file_exists(table)) throw Error("--catalog " + loc + ": an imagefolder needs metadata.jsonl or metadata.csv");
    }
    return open_table_stream(open_table_file(table), table, format, base.empty() ? "." : base, source.columns, query);
  }
  if (format == "vqa") {
    if (!query.group_by.empty())
      throw Error("--split-by " + query.group_by + ": the vqa format (id, Question, Answer) has no product fields to group by");
    std::vector<std::string> files;
    std::string base = parent;
    if (dir) {
      base = loc;
      for (const char* f : {"vqa_train.csv", "vqa_test.csv"})
        if (file_exists(join_path(loc, f))) files.push_back(join_path(loc, f));
      if (files.empty()) throw Error("--catalog " + loc + ": no vqa_train.csv or vqa_test.csv here");
    } else {
      files.push_back(loc);
    }
    return std::make_unique<VqaReader>(files, join_path(base.empty() ? "." : base, "images"), query);
  }
  throw Error("--format " + format + ": unknown catalog format (" + kFormats + ")");
}

}  // namespace tailor
