// `tailor prepare` as one call: the attributes chosen from the flags' text forms, the catalog
// prepared (catalog/prepare.h), the summary printed; an Error when nothing usable came out.
#pragma once
#include <cstdint>
#include <string>

#include "app/catalog_flags.h"

namespace tailor {

struct PrepareRunOptions {
  CatalogFlags catalog;
  std::string out;
  std::string article_types = "Shirts,Tshirts";  // comma list; "all" = every type
  std::string attributes;  // comma list; empty or "all" = every attribute of the templates
  std::string templates;   // JSON file of question templates (default: the built-in ones)
  double val_fraction = 0.2;
  uint64_t seed = 42;
  std::string split_by;  // group field: whole groups (brands, ...) go to train or to val
  int threads = 0;
  bool quiet = false;
};

void run_prepare(const PrepareRunOptions& o);

}  // namespace tailor
