#include "app/catalog_flags.h"

#include "util/error.h"

namespace tailor {

CatalogSource catalog_source(const CatalogFlags& flags) {
  CatalogSource s;
  s.location = flags.catalog;
  s.format = flags.format;
  s.columns.id = flags.id_column;
  s.columns.article_type = flags.type_column;
  s.columns.images = flags.image_columns;
  for (const auto& text : flags.columns) {
    auto [attribute, column] = parse_column_mapping(text);
    if (s.columns.attributes.count(attribute)) throw Error("--column: attribute \"" + attribute + "\" mapped twice");
    s.columns.attributes[attribute] = column;
  }
  if (!flags.spec.empty()) apply_catalog_spec(flags.spec, &s);
  return s;
}

}  // namespace tailor
