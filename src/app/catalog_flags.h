// The catalog flags that prepare and describe share (--catalog, --format, --catalog-spec and the
// column mapping), as text, and their one translation into a CatalogSource.
#pragma once
#include <string>
#include <vector>

#include "catalog/catalog_reader.h"

namespace tailor {

struct CatalogFlags {
  std::string catalog;      // a directory or a table file
  std::string format;       // "" = recognised (catalog/catalog_reader.h detect_catalog_format)
  std::string spec;         // a catalog spec file (JSON); flags win over it
  std::string id_column, type_column;
  std::vector<std::string> image_columns;  // in order of preference
  std::vector<std::string> columns;        // "Attribute=column"
  // Remote tables and photos (catalog/download_cache.h).
  std::string download_cache;  // "" = $XDG_CACHE_HOME/tailor/downloads (or ~/.cache/...)
  int download_concurrency = 16, download_retries = 3;
  double download_timeout_s = 60;
  double max_image_mb = 50;
  std::string region, endpoint_url;  // S3
  bool s3_path_style = false;
};

// Throws Error naming a bad --column or spec file field.
CatalogSource catalog_source(const CatalogFlags& flags);

}  // namespace tailor
