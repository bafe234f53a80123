#include "app/review_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "catalog/catalog_reader.h"
#include "catalog/prepare.h"
#include "util/fs.h"

namespace tailor {

using ordered_json = nlohmann::ordered_json;

const char* const kStatusPending = "pending";
const char* const kStatusApproved = "approved";
const char* const kStatusRejected = "rejected";
const char* const kStatusSkipped = "skipped";

bool is_review_status(const std::string& s) {
  return s == kStatusPending || s == kStatusApproved || s == kStatusRejected || s == kStatusSkipped;
}

bool ReviewProduct::changed_attributes() const {
  for (const auto& a : attributes)
    if (a.value != a.predicted) return true;
  return false;
}

namespace {

const char* const kSchema = R"sql(
CREATE TABLE IF NOT EXISTS products (
  id TEXT PRIMARY KEY,
  line INTEGER NOT NULL,
  name TEXT NOT NULL DEFAULT '',
  image TEXT NOT NULL DEFAULT '',
  image_error TEXT NOT NULL DEFAULT '',
  article_type TEXT NOT NULL DEFAULT '',
  attributes TEXT NOT NULL,            -- JSON [{name, value, predicted, confidence?}]
  min_confidence REAL,                 -- NULL: describe wrote no confidence
  description TEXT NOT NULL,
  original_description TEXT NOT NULL,
  writer TEXT NOT NULL DEFAULT '',
  model TEXT NOT NULL DEFAULT '',
  attributes_from TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT 'pending',
  version INTEGER NOT NULL DEFAULT 1,
  reviewer TEXT NOT NULL DEFAULT '',
  updated_at TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS products_queue ON products(status, min_confidence, line);
CREATE TABLE IF NOT EXISTS attribute_values (  -- every value an attribute has had: the page's lists
  name TEXT NOT NULL,
  value TEXT NOT NULL,
  first_seen INTEGER NOT NULL,         -- line * 1000 + position: attributes in the order first seen
  PRIMARY KEY (name, value)
);
CREATE TABLE IF NOT EXISTS history (    -- every change, for audit
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  product_id TEXT NOT NULL,
  version INTEGER NOT NULL,            -- the version the change made
  reviewer TEXT NOT NULL,
  action TEXT NOT NULL,
  detail TEXT NOT NULL,                -- JSON of what changed
  at TEXT NOT NULL
);
)sql";

std::string now_utc() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return b;
}

// A prepared statement that finalizes itself; errors name the database file and SQLite's reason.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& path, const char* sql) : db_(db), path_(path) {
    if (sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) != SQLITE_OK)
      throw Error(path + ": " + sqlite3_errmsg(db) + " (in: " + sql + ")");
  }
  ~Statement() { sqlite3_finalize(st_); }
  Statement& text(int i, const std::string& v) {
    sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& integer(int i, int64_t v) {
    sqlite3_bind_int64(st_, i, v);
    return *this;
  }
  Statement& real(int i, std::optional<double> v) {
    if (v) sqlite3_bind_double(st_, i, *v);
    else sqlite3_bind_null(st_, i);
    return *this;
  }
  // true while there is a row.
  bool step() {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw Error(path_ + ": " + sqlite3_errmsg(db_));
  }
  std::string column_text(int i) const {
    const unsigned char* t = sqlite3_column_text(st_, i);
    return t ? std::string(reinterpret_cast<const char*>(t), sqlite3_column_bytes(st_, i)) : std::string();
  }
  int64_t column_int(int i) const { return sqlite3_column_int64(st_, i); }
  std::optional<double> column_real(int i) const {
    if (sqlite3_column_type(st_, i) == SQLITE_NULL) return std::nullopt;
    return sqlite3_column_double(st_, i);
  }

 private:
  sqlite3* db_;
  std::string path_;
  sqlite3_stmt* st_ = nullptr;
};

void exec(sqlite3* db, const std::string& path, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string why = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    throw Error(path + ": " + why);
  }
}

// Rolls back unless committed (an exception between BEGIN and COMMIT leaves nothing behind).
class Transaction {
 public:
  Transaction(sqlite3* db, const std::string& path) : db_(db), path_(path) { exec(db, path, "BEGIN IMMEDIATE"); }
  ~Transaction() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void commit() {
    exec(db_, path_, "COMMIT");
    done_ = true;
  }

 private:
  sqlite3* db_;
  std::string path_;
  bool done_ = false;
};

const char* const kProductColumns =
    "id, line, name, image, image_error, article_type, attributes, min_confidence, description, "
    "original_description, writer, model, attributes_from, status, version, reviewer, updated_at";

std::string attributes_json(const std::vector<ReviewAttribute>& attributes) {
  ordered_json a = ordered_json::array();
  for (const auto& x : attributes) {
    ordered_json j;
    j["name"] = x.name;
    j["value"] = x.value;
    j["predicted"] = x.predicted;
    if (x.confidence) j["confidence"] = *x.confidence;
    a.push_back(j);
  }
  return a.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

ReviewProduct read_product_row(const Statement& s) {
  ReviewProduct p;
  p.id = s.column_text(0);
  p.line = s.column_int(1);
  p.name = s.column_text(2);
  p.image = s.column_text(3);
  p.image_error = s.column_text(4);
  p.article_type = s.column_text(5);
  for (const auto& j : nlohmann::json::parse(s.column_text(6))) {
    ReviewAttribute a;
    a.name = j.at("name").get<std::string>();
    a.value = j.at("value").get<std::string>();
    a.predicted = j.at("predicted").get<std::string>();
    if (j.contains("confidence")) a.confidence = j["confidence"].get<double>();
    p.attributes.push_back(a);
  }
  p.min_confidence = s.column_real(7);
  p.description = s.column_text(8);
  p.original_description = s.column_text(9);
  p.writer = s.column_text(10);
  p.model = s.column_text(11);
  p.attributes_from = s.column_text(12);
  p.status = s.column_text(13);
  p.version = s.column_int(14);
  p.reviewer = s.column_text(15);
  p.updated_at = s.column_text(16);
  return p;
}

void remember_value(sqlite3* db, const std::string& path, const std::string& name, const std::string& value,
                    int64_t first_seen) {
  Statement s(db, path, "INSERT OR IGNORE INTO attribute_values (name, value, first_seen) VALUES (?1, ?2, ?3)");
  s.text(1, name).text(2, value).integer(3, first_seen);
  s.step();
}

// What the catalog says about a product that reviewing needs: its name and photo candidates.
struct CatalogEntry {
  std::string name;  // the productDisplayName column; "" when unknown
  std::vector<std::string> images;
};

// The catalog through the one reader (catalog/catalog_reader.h, any of its sources), id -> entry.
// Rows the reader calls bad are left out here (prepare lists them): a name is only a convenience,
// and the photo search below still looks in <catalog>/images/. A directory that is no catalog (only
// images/) gives no entries.
static std::map<std::string, CatalogEntry> catalog_entries(const std::string& catalog_dir) {
  std::map<std::string, CatalogEntry> entries;
  if (catalog_dir.empty()) return entries;
  CatalogSource source;
  source.location = catalog_dir;
  std::unique_ptr<CatalogReader> reader;
  try {
    detect_catalog_format(catalog_dir);
    reader = open_catalog(source, CatalogQueryAttributes{});
  } catch (const Error&) {
    return entries;
  }
  CatalogRow row;
  while (reader->next(&row)) {
    if (!row.bad_reason.empty()) continue;
    CatalogProduct p = reader->product(row);
    entries[row.id] = CatalogEntry{row.column("productDisplayName"), p.images};
  }
  return entries;
}

// The photo of a product: the catalog's own (the reader's candidates), else the first of
// <dir>/<id>.jpg, <dir>/<id>.png that exists.
static std::string find_photo(const PhotoPlaces& places, const CatalogEntry* entry, const std::string& id,
                              std::string* tried) {
  if (entry) {
    for (const auto& c : entry->images) {
      if (!is_remote_location(c) && file_exists(c)) return c;
      *tried += (tried->empty() ? "" : ", ") + c;
    }
  }
  std::vector<std::string> dirs;
  if (!places.catalog_dir.empty()) dirs.push_back(join_path(places.catalog_dir, "images"));
  if (!places.photos_dir.empty()) dirs.push_back(places.photos_dir);
  for (const auto& dir : dirs)
    for (const char* ext : {".jpg", ".png"}) {
      std::string path = join_path(dir, id + ext);
      if (file_exists(path)) return path;
      if (tried->find(path) == std::string::npos) *tried += (tried->empty() ? "" : ", ") + path;
    }
  if (dirs.empty()) *tried = "no --catalog or --photos given";
  return "";
}

// One describe record -> a product (no photo yet). Errors name file:line and the field.
ReviewProduct parse_describe_line(const std::string& line, const std::string& where) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded()) throw Error(where + ": not valid JSON");
  if (!j.is_object()) throw Error(where + ": not a JSON object");
  auto string_field = [&](const char* name, bool required) -> std::string {
    if (!j.contains(name)) {
      if (required) throw Error(where + ": field \"" + name + "\" is missing");
      return "";
    }
    if (!j[name].is_string()) throw Error(where + ": field \"" + name + "\" must be a string, got " + j[name].dump());
    return j[name].get<std::string>();
  };
  ReviewProduct p;
  p.id = string_field("id", true);
  if (p.id.empty()) throw Error(where + ": field \"id\" is empty");
  p.description = string_field("description", true);
  p.original_description = p.description;
  p.writer = string_field("writer", false);
  p.model = string_field("model", false);
  p.attributes_from = string_field("attributes_from", false);
  p.name = string_field("name", false);
  if (!j.contains("attributes") || !j["attributes"].is_object())
    throw Error(where + ": field \"attributes\" must be an object of attribute -> value");
  // The order of the line (nlohmann::json sorts keys; ordered_json keeps them).
  ordered_json oj = ordered_json::parse(line);
  for (auto it = oj["attributes"].begin(); it != oj["attributes"].end(); ++it) {
    if (!it.value().is_string())
      throw Error(where + ": field \"attributes." + it.key() + "\" must be a string, got " + it.value().dump());
    ReviewAttribute a{it.key(), it.value().get<std::string>(), it.value().get<std::string>(), std::nullopt};
    if (a.name == "articleType") p.article_type = a.value;
    p.attributes.push_back(a);
  }
  // Optional per-attribute confidence: {"Sleeve Length": 0.93, ...}, each a number in [0, 1].
  if (j.contains("confidence") && !j["confidence"].is_null()) {
    if (!j["confidence"].is_object())
      throw Error(where + ": field \"confidence\" must be an object of attribute -> number");
    for (auto it = j["confidence"].begin(); it != j["confidence"].end(); ++it) {
      const auto& v = it.value();
      if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 1 || std::isnan(v.get<double>()))
        throw Error(where + ": field \"confidence." + it.key() + "\" must be a number in [0, 1], got " + v.dump());
      auto a = std::find_if(p.attributes.begin(), p.attributes.end(), [&](const auto& x) { return x.name == it.key(); });
      if (a == p.attributes.end()) continue;  // a confidence for an attribute left out (e.g. "NA")
      a->confidence = v.get<double>();
      if (!p.min_confidence || *a->confidence < *p.min_confidence) p.min_confidence = a->confidence;
    }
  }
  return p;
}

}  // namespace

ReviewStore::ReviewStore(const std::string& db_path) : path_(db_path) {
  if (sqlite3_open_v2(db_path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error("cannot open the review database " + db_path + ": " + why);
  }
  sqlite3_busy_timeout(db_, 10000);  // another `tailor review` on the same file holds the write lock
  try {
    exec(db_, path_, "PRAGMA journal_mode=WAL");
    exec(db_, path_, "PRAGMA synchronous=FULL");
    exec(db_, path_, kSchema);
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

ReviewStore::~ReviewStore() { sqlite3_close(db_); }

ImportSummary ReviewStore::import_describe(const std::string& jsonl_path, const PhotoPlaces& photos) {
  std::string text = read_file(jsonl_path);
  std::map<std::string, CatalogEntry> catalog = catalog_entries(photos.catalog_dir);
  std::vector<ReviewProduct> products;
  std::set<std::string> ids;
  ImportSummary sum;
  std::istringstream in(text);
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string where = jsonl_path + ":" + std::to_string(line_no);
    ReviewProduct p = parse_describe_line(line, where);
    if (!ids.insert(p.id).second) throw Error(where + ": field \"id\": product " + p.id + " appears twice");
    p.line = line_no;
    auto entry = catalog.find(p.id);
    if (p.name.empty() && entry != catalog.end()) p.name = entry->second.name;
    std::string tried;
    p.image = find_photo(photos, entry == catalog.end() ? nullptr : &entry->second, p.id, &tried);
    if (p.image.empty()) {
      p.image_error = "no photo for product " + p.id + " (tried " + tried + ")";
      sum.missing_photos.push_back(p.image_error);
    }
    products.push_back(std::move(p));
  }
  sum.lines = static_cast<int64_t>(products.size());

  std::lock_guard<std::mutex> lock(mu_);
  Transaction tx(db_, path_);
  for (const auto& p : products) {
    Statement s(db_, path_,
                "INSERT OR IGNORE INTO products (id, line, name, image, image_error, article_type, attributes, "
                "min_confidence, description, original_description, writer, model, attributes_from) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12)");
    s.text(1, p.id).integer(2, p.line).text(3, p.name).text(4, p.image).text(5, p.image_error);
    s.text(6, p.article_type).text(7, attributes_json(p.attributes)).real(8, p.min_confidence);
    s.text(9, p.description).text(10, p.writer).text(11, p.model).text(12, p.attributes_from);
    s.step();
    if (sqlite3_changes(db_) > 0) sum.added++;
    else sum.already_there++;
    for (size_t i = 0; i < p.attributes.size(); ++i)
      remember_value(db_, path_, p.attributes[i].name, p.attributes[i].value, p.line * 1000 + static_cast<int64_t>(i));
  }
  tx.commit();
  return sum;
}

namespace {

// The queue's SELECT of `columns`, parameters ?1 status, ?2 article type, ?3 attribute, ?4 confidence.
// The attribute and confidence filters look inside the attributes JSON (SQLite's JSON1).
std::string queue_sql(const QueueFilter& filter, const std::string& columns, size_t limit) {
  if (filter.status != "all" && !is_review_status(filter.status))
    throw Error("unknown status \"" + filter.status + "\" (pending, approved, rejected, skipped or all)");
  std::string sql = "SELECT " + columns +
                    " FROM products p WHERE (?1 = 'all' OR status = ?1) AND (?2 = '' OR article_type = ?2)"
                    " AND (?3 = '' AND ?4 IS NULL OR EXISTS (SELECT 1 FROM json_each(p.attributes) a"
                    "   WHERE (?3 = '' OR json_extract(a.value, '$.name') = ?3)"
                    "   AND (?4 IS NULL OR json_extract(a.value, '$.confidence') <= ?4)))"
                    " ORDER BY min_confidence IS NULL, min_confidence, line";
  if (limit > 0) sql += " LIMIT " + std::to_string(limit);
  return sql;
}

}  // namespace

std::vector<ReviewProduct> ReviewStore::queue(const QueueFilter& filter, size_t limit) const {
  std::string sql = queue_sql(filter, kProductColumns, limit);
  std::lock_guard<std::mutex> lock(mu_);
  Statement s(db_, path_, sql.c_str());
  s.text(1, filter.status).text(2, filter.article_type).text(3, filter.attribute).real(4, filter.max_confidence);
  std::vector<ReviewProduct> out;
  while (s.step()) out.push_back(read_product_row(s));
  return out;
}

std::vector<std::string> ReviewStore::queue_ids(const QueueFilter& filter) const {
  std::string sql = queue_sql(filter, "id", 0);
  std::lock_guard<std::mutex> lock(mu_);
  Statement s(db_, path_, sql.c_str());
  s.text(1, filter.status).text(2, filter.article_type).text(3, filter.attribute).real(4, filter.max_confidence);
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.column_text(0));
  return out;
}

std::optional<ReviewProduct> ReviewStore::product(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  Statement s(db_, path_, (std::string("SELECT ") + kProductColumns + " FROM products WHERE id = ?1").c_str());
  s.text(1, id);
  if (!s.step()) return std::nullopt;
  return read_product_row(s);
}

std::vector<ReviewProduct> ReviewStore::all_products() const {
  std::lock_guard<std::mutex> lock(mu_);
  Statement s(db_, path_, (std::string("SELECT ") + kProductColumns + " FROM products ORDER BY line").c_str());
  std::vector<ReviewProduct> out;
  while (s.step()) out.push_back(read_product_row(s));
  return out;
}

ReviewCounts ReviewStore::counts() const {
  std::lock_guard<std::mutex> lock(mu_);
  Statement s(db_, path_, "SELECT status, COUNT(*) FROM products GROUP BY status");
  ReviewCounts c;
  while (s.step()) {
    std::string status = s.column_text(0);
    int64_t n = s.column_int(1);
    c.total += n;
    if (status == kStatusPending) c.pending = n;
    else if (status == kStatusApproved) c.approved = n;
    else if (status == kStatusRejected) c.rejected = n;
    else if (status == kStatusSkipped) c.skipped = n;
  }
  return c;
}

std::vector<std::string> ReviewStore::article_types() const {
  std::lock_guard<std::mutex> lock(mu_);
  Statement s(db_, path_, "SELECT DISTINCT article_type FROM products WHERE article_type != '' ORDER BY 1");
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.column_text(0));
  return out;
}

std::vector<std::string> ReviewStore::attribute_names() const {
  std::lock_guard<std::mutex> lock(mu_);
  Statement s(db_, path_, "SELECT name FROM attribute_values GROUP BY name ORDER BY MIN(first_seen)");
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.column_text(0));
  return out;
}

std::map<std::string, std::vector<std::string>> ReviewStore::values_seen() const {
  std::lock_guard<std::mutex> lock(mu_);
  Statement s(db_, path_, "SELECT name, value FROM attribute_values ORDER BY name, value");
  std::map<std::string, std::vector<std::string>> out;
  while (s.step()) out[s.column_text(0)].push_back(s.column_text(1));
  return out;
}

ReviewProduct ReviewStore::apply(const ReviewChange& change) {
  if (!change.status.empty() && !is_review_status(change.status))
    throw Error("unknown status \"" + change.status + "\"");
  std::lock_guard<std::mutex> lock(mu_);
  Transaction tx(db_, path_);
  Statement read(db_, path_, (std::string("SELECT ") + kProductColumns + " FROM products WHERE id = ?1").c_str());
  read.text(1, change.id);
  if (!read.step()) throw Error("no product with id \"" + change.id + "\"");
  ReviewProduct p = read_product_row(read);
  if (p.version != change.expected_version)
    throw ConflictError("product " + change.id + " was changed by " + (p.reviewer.empty() ? "another reviewer" : p.reviewer) +
                        " at " + p.updated_at + " (it is now at version " + std::to_string(p.version) +
                        ", your page showed version " + std::to_string(change.expected_version) +
                        "); your change was not saved: look at theirs and decide again");

  ordered_json detail = ordered_json::object();
  for (const auto& [name, value] : change.attributes) {
    auto a = std::find_if(p.attributes.begin(), p.attributes.end(), [&](const auto& x) { return x.name == name; });
    if (a == p.attributes.end()) throw Error("product " + change.id + " has no attribute \"" + name + "\"");
    if (a->value == value) continue;
    detail["attributes"][name] = {{"from", a->value}, {"to", value}};
    a->value = value;
    if (name == "articleType") p.article_type = value;
  }
  if (change.description && *change.description != p.description) {
    detail["description"] = {{"from", p.description}, {"to", *change.description}};
    p.description = *change.description;
  }
  if (!change.status.empty() && change.status != p.status) {
    detail["status"] = {{"from", p.status}, {"to", change.status}};
    p.status = change.status;
  }
  p.version += 1;
  p.reviewer = change.reviewer;
  p.updated_at = now_utc();
  Statement update(db_, path_,
                   "UPDATE products SET attributes = ?1, article_type = ?2, description = ?3, status = ?4, "
                   "version = ?5, reviewer = ?6, updated_at = ?7 WHERE id = ?8 AND version = ?9");
  update.text(1, attributes_json(p.attributes)).text(2, p.article_type).text(3, p.description).text(4, p.status);
  update.integer(5, p.version).text(6, p.reviewer).text(7, p.updated_at).text(8, p.id).integer(9, change.expected_version);
  update.step();
  for (const auto& [name, value] : change.attributes) remember_value(db_, path_, name, value, p.line * 1000);
  Statement history(db_, path_,
                    "INSERT INTO history (product_id, version, reviewer, action, detail, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  history.text(1, p.id).integer(2, p.version).text(3, p.reviewer).text(4, change.action);
  history.text(5, detail.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)).text(6, p.updated_at);
  history.step();
  tx.commit();
  return p;
}

}  // namespace tailor
