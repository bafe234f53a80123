// What comes out of `tailor review`: the approved products for the shop (JSONL and CSV), and the
// reviewers' corrections as question/answer pairs in `tailor prepare`'s format, which
// `tailor train --extra-pairs` adds to the catalog's own pairs.
#pragma once
#include <string>
#include <vector>

#include "app/review_store.h"
#include "core/attributes.h"
#include "catalog/dataset.h"

namespace tailor {

// One line per approved product: {"id", "name", "attributes": {...}, "description", "writer", "model",
// "reviewer", "reviewed_at"}, in describe's order.
std::string approved_jsonl(const std::vector<ReviewProduct>& products);
// The same as CSV: id, name, one column per attribute (in first-seen order), description, reviewer, reviewed_at.
std::string approved_csv(const std::vector<ReviewProduct>& products);

// For every approved product, one pair per attribute a reviewer changed, with the reviewer's value
// as the answer. Only attributes with a question in `specs` (the model's task) become pairs; the
// photo must exist (its absolute path is the pair's image).
std::vector<VqaPair> correction_pairs(const std::vector<ReviewProduct>& products, const std::vector<AttributeSpec>& specs);
std::string pairs_jsonl(const std::vector<VqaPair>& pairs);

struct ExportSummary {
  int64_t approved = 0, corrections = 0;
  std::vector<std::string> paths;
};
// Writes approved.jsonl, approved.csv and corrections.jsonl into dir (each atomically).
ExportSummary write_review_exports(const ReviewStore& store, const std::string& dir, const std::vector<AttributeSpec>& specs);

}  // namespace tailor
