// `tailor describe` as a library: products (from a catalog or a list of photos) -> attributes (the
// catalog's own, or predicted by a model in batches) -> a description per product from a Writer,
// appended as one JSONL line each. Resumable: ids already in the output are skipped, lines are
// written whole, a torn last line from a crash is dropped and reported. One run per output: a run
// holds a flock on <output>.lock, and a second one is refused, as is an output that describe did
// not write.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "catalog/catalog_reader.h"
#include "core/attributes.h"
#include "core/image.h"
#include "infer/answerer.h"
#include "util/fs.h"
#include "write/writer.h"

namespace tailor {

struct Product {
  std::string id;
  std::string image_path;
  ProductAttributes attributes;  // catalog attributes, or filled in by the model
  std::string error;             // why it cannot be described (reported as failed, never skipped silently)
  std::map<std::string, double> confidence;  // predicted by choice: attribute -> confidence
  std::vector<std::string> doubtful;         // predicted attributes below their review threshold
};

struct CatalogQuery {
  std::vector<AttributeSpec> attributes = default_attributes();  // which attributes to read
  std::vector<std::string> article_types;  // keep only these articleType values; empty = all
  std::vector<std::string> ids;            // keep only these ids; empty = all
  int64_t limit = 0;                       // first N after filtering; 0 = all
  bool read_attributes = true;             // false when a model predicts them
};

// A catalog of any source, read by catalog/catalog_reader.h (its rules say where each attribute
// comes from and what counts as no value). Attributes come in the order of query.attributes, then
// "articleType". A missing or broken JSON file makes that product's `error` (when attributes are
// read), not an exception; a bad row throws Error naming FILE:LINE.
std::vector<Product> read_catalog_products(const CatalogSource& source, const CatalogQuery& query);
// One product per photo, id = file name without extension; duplicate ids throw Error.
std::vector<Product> products_from_images(const std::vector<std::string>& image_paths);

struct DescribeOptions {
  std::string output_jsonl;  // required; appended to
  std::string output_csv;    // optional; rewritten whole from the JSONL at the end
  int concurrency = 4;       // writer calls in flight
  int batch_size = 8;        // photos per model pass
  GenerationOptions generation;
  AnswerMode answer_mode = AnswerMode::Choice;  // model mode: choice answers carry a confidence
  // A predicted attribute whose confidence is below its threshold is doubtful: the product is marked
  // needs_review. The threshold is the model's calibrated one (tailor eval --calibrate), else this;
  // review_below_override >= 0 replaces both.
  double review_below = 0.5;
  double review_below_override = -1;
  bool doubtful_to_writer = false;  // false: doubtful attributes are left out of the writer's facts
  // The lines' "attributes_from"; "" = the answerer's name, or "catalog" without one (batch retries
  // of predicted products set the model's name, which they no longer run).
  std::string attributes_from;
  // Model mode only: reads a photo. app/describe_run passes catalog/images.h load_image; tests pass their own.
  std::function<ImageRGB(const std::string& path)> load_image;
  int stop_after_consecutive_failures = 10;  // a dead endpoint or bad key stops the run early
  bool show_progress = true;
  std::function<void(const std::string&)> log;  // notes (dropped partial line, stopping); nullptr = stderr
};

struct DescribeSummary {
  int64_t total = 0;          // products given
  int64_t done = 0;           // written in this run
  int64_t skipped = 0;        // already in the output
  int64_t failed = 0;         // with a reason in failures
  int64_t not_attempted = 0;  // left when the run stopped early
  int64_t dropped_partial_bytes = 0;  // a torn last line removed from the output on start
  std::map<std::string, std::vector<std::string>> failures;  // reason -> ids
  TokenUsage usage;           // this run's tokens, from the APIs' own counts
  TokenUsage batch_usage;     // the part of usage answered in batch jobs (the rest: on demand)
  std::string text() const;   // a few lines for people
};

// describe's output file, held by one run: the flock on <output>.lock, the ids already written (a
// torn last line dropped and reported through `log`), and append(): one whole line per product
// with one write(2) + fdatasync. The on-demand loop and the batch jobs (write/batch.h) write
// through this one class, so the file has one writer and every product is in it once.
class DescribeOutput {
 public:
  DescribeOutput(const std::string& jsonl_path, const std::function<void(const std::string&)>& log);
  ~DescribeOutput();
  DescribeOutput(const DescribeOutput&) = delete;
  DescribeOutput& operator=(const DescribeOutput&) = delete;
  const std::string& path() const { return path_; }
  bool has(const std::string& id) const;  // thread-safe
  int64_t dropped_partial_bytes() const { return dropped_partial_bytes_; }
  // Appends the product's line; false (nothing written) when its id is already in the output.
  // Thread-safe.
  bool append(const Product& p, const std::string& description, const std::string& writer_name,
              const std::string& writer_model, const std::string& attributes_from);

 private:
  std::string path_;
  std::unique_ptr<FileLock> lock_;
  mutable std::mutex mu_;
  std::set<std::string> ids_;
  int64_t dropped_partial_bytes_ = 0;
};

// One output line: {"id", "attributes", ["confidence", "needs_review", "doubtful"], "description",
// "writer", "model", "attributes_from"}.
std::string describe_record_line(const Product& p, const std::string& description, const std::string& writer_name,
                                 const std::string& writer_model, const std::string& attributes_from);
// The facts a writer gets: the product's attributes, without the doubtful ones unless asked.
ProductAttributes writer_facts(const Product& p, bool doubtful_to_writer);

// Describes every product not yet in options.output_jsonl. With `answerer` (may be null) the
// attributes are predicted: for each photo, one AnswerRequest per attribute of answerer->task(),
// all sharing the photo's image, batch_size photos per answer() call. Each output line holds the
// attributes, their confidences (choice answers), needs_review and the doubtful attributes.
DescribeSummary describe_products(const std::vector<Product>& products, const Writer& writer, Answerer* answerer,
                                  const DescribeOptions& options);
// The same into an output already held (describe_products opens it, runs this, writes the CSV).
DescribeSummary describe_into(DescribeOutput& output, const std::vector<Product>& products, const Writer& writer,
                              Answerer* answerer, const DescribeOptions& options);

// The attributes of `ready` predicted by the model (one request per attribute of its task, the
// requests of a photo sharing its image, all in one answer() call). Returns the products that got
// them; `failed` is called for each that did not (photo unreadable, model error).
std::vector<Product> predict_attributes(std::vector<Product> ready, Answerer& answerer, const DescribeOptions& options,
                                        const std::function<void(const std::string&, const std::string&)>& failed);

// The confidence below which a predicted attribute is doubtful (see DescribeOptions).
double review_threshold(const TaskInfo& task, const std::string& attribute, const DescribeOptions& options);

// For serving (POST /describe): one product from an attribute map. Attributes are ordered as
// default_attributes(), then articleType, then the rest by name; "NA"/empty values are dropped.
struct DescribedProduct {
  ProductAttributes attributes;
  std::string description;
  std::string writer;
  std::string model;
};
DescribedProduct describe_one(const Writer& writer, const std::map<std::string, std::string>& attributes);

// The ids already written to a describe output; drops (and counts) a torn last line. Throws Error
// naming the line for a line that is not a describe record (the file is not describe's own: nothing
// is changed in it), and for a path that is not a regular file.
struct ResumeState {
  std::vector<std::string> ids;
  int64_t dropped_partial_bytes = 0;
};
ResumeState read_describe_output(const std::string& jsonl_path);

// Rewrites `csv_path` (atomically) from every record of `jsonl_path`.
void write_describe_csv(const std::string& jsonl_path, const std::string& csv_path);

}  // namespace tailor
