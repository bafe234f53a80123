#include "app/review_export.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "catalog/prepare.h"
#include "util/fs.h"

namespace tailor {

using ordered_json = nlohmann::ordered_json;

namespace {

std::vector<const ReviewProduct*> approved_only(const std::vector<ReviewProduct>& products) {
  std::vector<const ReviewProduct*> out;
  for (const auto& p : products)
    if (p.status == kStatusApproved) out.push_back(&p);
  return out;
}

}  // namespace

std::string approved_jsonl(const std::vector<ReviewProduct>& products) {
  std::string out;
  for (const ReviewProduct* p : approved_only(products)) {
    ordered_json j;
    j["id"] = p->id;
    if (!p->name.empty()) j["name"] = p->name;
    j["attributes"] = ordered_json::object();
    for (const auto& a : p->attributes) j["attributes"][a.name] = a.value;
    j["description"] = p->description;
    j["writer"] = p->writer;
    j["model"] = p->model;
    j["reviewer"] = p->reviewer;
    j["reviewed_at"] = p->updated_at;
    out += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  return out;
}

std::string approved_csv(const std::vector<ReviewProduct>& products) {
  std::vector<const ReviewProduct*> approved = approved_only(products);
  std::vector<std::string> columns;
  for (const ReviewProduct* p : approved)
    for (const auto& a : p->attributes)
      if (std::find(columns.begin(), columns.end(), a.name) == columns.end()) columns.push_back(a.name);
  std::string out = "id,name";
  for (const auto& c : columns) out += "," + csv_field(c);
  out += ",description,reviewer,reviewed_at\n";
  for (const ReviewProduct* p : approved) {
    out += csv_field(p->id) + "," + csv_field(p->name);
    for (const auto& c : columns) {
      auto a = std::find_if(p->attributes.begin(), p->attributes.end(), [&](const auto& x) { return x.name == c; });
      out += "," + csv_field(a == p->attributes.end() ? "" : a->value);
    }
    out += "," + csv_field(p->description) + "," + csv_field(p->reviewer) + "," + csv_field(p->updated_at) + "\n";
  }
  return out;
}

std::vector<VqaPair> correction_pairs(const std::vector<ReviewProduct>& products, const std::vector<AttributeSpec>& specs) {
  std::vector<VqaPair> out;
  for (const ReviewProduct* p : approved_only(products)) {
    if (p->image.empty()) continue;  // nothing to learn from without the photo
    for (const auto& a : p->attributes) {
      if (a.value == a.predicted) continue;
      auto spec = std::find_if(specs.begin(), specs.end(), [&](const auto& s) { return s.name == a.name; });
      if (spec == specs.end()) continue;  // no question for it (articleType, catalog metadata)
      VqaPair pair;
      pair.id = p->id;
      pair.image = std::filesystem::absolute(p->image).lexically_normal().string();
      pair.attribute = a.name;
      pair.question = spec->question;
      pair.prompt = wrap_prompt(spec->question);
      pair.answer = answer_text(a.name, a.value);
      pair.value = a.value;
      out.push_back(pair);
    }
  }
  return out;
}

std::string pairs_jsonl(const std::vector<VqaPair>& pairs) {
  std::string out;
  for (const auto& p : pairs) out += pair_to_json_line(p) + "\n";
  return out;
}

ExportSummary write_review_exports(const ReviewStore& store, const std::string& dir, const std::vector<AttributeSpec>& specs) {
  std::vector<ReviewProduct> products = store.all_products();
  make_dirs(dir);
  ExportSummary sum;
  sum.approved = static_cast<int64_t>(approved_only(products).size());
  std::vector<VqaPair> pairs = correction_pairs(products, specs);
  sum.corrections = static_cast<int64_t>(pairs.size());
  sum.paths = {join_path(dir, "approved.jsonl"), join_path(dir, "approved.csv"), join_path(dir, "corrections.jsonl")};
  write_file_atomic(sum.paths[0], approved_jsonl(products));
  write_file_atomic(sum.paths[1], approved_csv(products));
  write_file_atomic(sum.paths[2], pairs_jsonl(pairs));
  return sum;
}

}  // namespace tailor
