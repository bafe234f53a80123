// `tailor describe` as one call: the products (a catalog, or photos given by path or in a list
// file) → their attributes (the catalog's own, or answered by a model) → a description each from a
// writer (write/describe.h does the resumable run itself).
#pragma once
#include <cstdint>
#include <string>

#include "app/catalog_flags.h"
#include <vector>

#include "write/batch.h"
#include "write/writer.h"

namespace tailor {

struct DescribeRunOptions {
  // The products: exactly one of catalog, images, image_list.
  CatalogFlags catalog;
  std::vector<std::string> images;
  std::string image_list;  // one photo path per line; blank lines and lines starting with # skipped
  // The attributes: exactly one of attributes_from ("catalog") and model_dir.
  std::string attributes_from, model_dir;
  std::string attributes_file;  // templates (JSON) of the attributes read from the catalog
  std::vector<std::string> article_types, ids;
  int64_t limit = 0;
  std::string device = "cpu", dtype = "auto", quantize = "auto";
  int batch_size = 8, concurrency = 4;
  std::string answer = "choice";  // with a model: choice answers carry a confidence (write/describe.h)
  double review_below = -1;       // >= 0: one review threshold for every attribute
  bool doubtful_to_writer = false;
  std::string output = "descriptions.jsonl", csv;
  bool quiet = false;
  WriterConfig writer;
  // Shapes writer.http and writer.system_prompt.
  int retries = 4;
  double timeout_s = 180, connect_timeout_s = 10;
  std::string system_prompt_file;
  // Batch jobs at the batch price instead of one call per product (write/batch.h).
  bool batch = false;
  BatchOptions batch_options;
  // The cost estimate, printed before every run; estimate_only prints it and stops.
  bool estimate_only = false;
  std::string prices;  // the price table; "" = write/cost.h find_price_table
};

// Prints the cost estimate, then (unless estimate_only) runs and prints the summary with the tokens
// used; throws Error when some products are left without a description.
void run_describe_products(DescribeRunOptions o);

}  // namespace tailor
