// Test helper: the products of a Kaggle-layout catalog as its reader resolves them, for writing the
// same catalog in other forms (tables, imagefolder, URLs). Header-only.
#pragma once
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "catalog/catalog_reader.h"
#include "core/attributes.h"

namespace tailor {

// One product as the Kaggle reader resolves it (JSON first, then styles.csv).
struct Exported {
  std::string id, type, image_name;  // image_name: "<id>.jpg" under images/
  std::vector<std::pair<std::string, std::string>> values;
};

inline std::vector<Exported> export_products(const std::string& kaggle) {
  CatalogSource s;
  s.location = kaggle;
  auto reader = open_catalog(s, CatalogQueryAttributes{default_attributes(), {}});
  std::vector<Exported> out;
  CatalogRow row;
  while (reader->next(&row)) {
    if (!row.bad_reason.empty()) continue;
    CatalogProduct p = reader->product(row);
    if (!p.problem.empty()) continue;
    Exported e;
    e.id = row.id;
    e.type = p.article_type;
    e.image_name = std::filesystem::path(first_existing_image(p.images)).filename().string();
    for (const auto& [a, v] : p.values) e.values.push_back({default_attributes()[a].name, v});
    out.push_back(e);
  }
  return out;
}

inline std::string value_of(const Exported& e, const std::string& name) {
  for (const auto& [n, v] : e.values)
    if (n == name) return v;
  return "";
}

}  // namespace tailor
