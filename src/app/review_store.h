// `tailor review`'s database: the products `tailor describe` wrote, and every reviewer decision on
// them, in one SQLite file.
//
// Rules:
// - WAL journal, synchronous=FULL, one transaction per decision: a decision is on disk before its
//   HTTP answer is sent, so a SIGKILL at any moment loses nothing that was answered.
// - Every product row has a version, +1 on each change. A change names the version it was made
//   from; when the row has moved on meanwhile (another reviewer), it is refused with ConflictError
//   saying who changed it and when. Several processes may share the file (busy timeout).
// - Importing a describe output adds the products not yet in the database and never touches the
//   ones already there: re-running `tailor review` after more `tailor describe` output keeps every
//   decision.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "util/error.h"

struct sqlite3;

namespace tailor {

// Editing a product someone else changed since the page was loaded.
struct ConflictError : Error {
  explicit ConflictError(const std::string& what) : Error(what) {}
};

struct ReviewAttribute {
  std::string name;                 // "Sleeve Length", "articleType", ...
  std::string value;                // current (the reviewer's, once changed)
  std::string predicted;            // as describe wrote it
  std::optional<double> confidence; // describe's per-attribute confidence, when it wrote one
};

// Product statuses: pending (not yet decided), approved, rejected, skipped (put aside; still left).
extern const char* const kStatusPending;
extern const char* const kStatusApproved;
extern const char* const kStatusRejected;
extern const char* const kStatusSkipped;
bool is_review_status(const std::string& s);

struct ReviewProduct {
  std::string id;
  int64_t line = 0;                 // line in the describe output it came from
  std::string name;                 // productDisplayName from the catalog, when known
  std::string image;                // photo path ("" when none was found)
  std::string image_error;          // why there is no photo (names the paths tried)
  std::string article_type;
  std::vector<ReviewAttribute> attributes;  // in describe's order
  std::optional<double> min_confidence;     // the lowest attribute confidence: the queue's order
  std::string description, original_description;
  std::string writer, model, attributes_from;
  std::string status = kStatusPending;
  int64_t version = 1;
  std::string reviewer, updated_at;  // who made the last change, when (UTC, ISO 8601)
  bool changed_attributes() const;   // any value differs from the prediction
};

// What the queue shows. Empty strings / nullopt: no filter.
struct QueueFilter {
  std::string status = kStatusPending;  // a status, or "all"
  std::string attribute;                // products that have this attribute...
  std::optional<double> max_confidence; // ...(or any attribute) with confidence at most this
  std::string article_type;
};

struct ReviewCounts {
  int64_t total = 0, pending = 0, approved = 0, rejected = 0, skipped = 0;
  int64_t done() const { return approved + rejected; }
  int64_t left() const { return pending + skipped; }
};

// One reviewer's edit of one product, made from the page showing `expected_version`.
struct ReviewChange {
  std::string id;
  int64_t expected_version = 0;
  std::string reviewer;
  std::map<std::string, std::string> attributes;  // name -> new value (only names the product has)
  std::optional<std::string> description;
  std::string status;  // "" keeps it
  std::string action;  // recorded in the history: save, approve, reject, skip, regenerate
};

// Where photos are: <catalog>/images/<id>.jpg|png, or <photos_dir>/<id>.jpg|png.
struct PhotoPlaces {
  std::string catalog_dir;
  std::string photos_dir;
};

struct ImportSummary {
  int64_t lines = 0, added = 0, already_there = 0;
  std::vector<std::string> missing_photos;  // "id: paths tried"
};

class ReviewStore {
 public:
  // Opens (creating when absent) the database; throws Error naming the file.
  explicit ReviewStore(const std::string& db_path);
  ~ReviewStore();
  ReviewStore(const ReviewStore&) = delete;
  ReviewStore& operator=(const ReviewStore&) = delete;

  // Reads a describe output and adds its new products. A malformed line throws Error naming
  // file:line and the field; nothing of that file is added then.
  ImportSummary import_describe(const std::string& jsonl_path, const PhotoPlaces& photos);

  // The queue in review order: lowest confidence first; products without confidence after those
  // with, in describe's order. limit 0 = all.
  std::vector<ReviewProduct> queue(const QueueFilter& filter, size_t limit = 0) const;
  std::vector<std::string> queue_ids(const QueueFilter& filter) const;  // the same, ids only
  std::optional<ReviewProduct> product(const std::string& id) const;
  std::vector<ReviewProduct> all_products() const;  // describe's order
  ReviewCounts counts() const;
  std::vector<std::string> article_types() const;
  std::vector<std::string> attribute_names() const;
  // attribute -> every value the data holds (predicted or set by a reviewer), sorted.
  std::map<std::string, std::vector<std::string>> values_seen() const;

  // Applies a change in one transaction, committed before returning. Throws ConflictError when the
  // row is no longer at change.expected_version, Error for an unknown product or attribute.
  ReviewProduct apply(const ReviewChange& change);

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
  // One connection for every HTTP thread: a transaction must not take in another thread's statements.
  mutable std::mutex mu_;
};

}  // namespace tailor
