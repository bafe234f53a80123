#include "app/catalog_flags.h"

#include <cstdlib>

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
  DownloadOptions& d = s.download;
  d.cache_dir = flags.download_cache;
  if (d.cache_dir.empty()) {
    const char* xdg = std::getenv("XDG_CACHE_HOME");
    const char* home = std::getenv("HOME");
    std::string base = xdg && *xdg ? xdg : std::string(home && *home ? home : "/tmp") + "/.cache";
    d.cache_dir = base + "/tailor/downloads";
  }
  if (flags.download_concurrency < 1) throw Error("--download-concurrency must be at least 1");
  if (flags.download_retries < 0) throw Error("--download-retries must be 0 or more");
  if (!(flags.download_timeout_s > 0)) throw Error("--download-timeout must be positive");
  if (!(flags.max_image_mb > 0)) throw Error("--max-image-mb must be positive");
  d.concurrency = flags.download_concurrency;
  d.max_attempts = flags.download_retries + 1;
  d.timeout_ms = static_cast<int>(flags.download_timeout_s * 1000);
  d.max_bytes = static_cast<int64_t>(flags.max_image_mb * 1024 * 1024);
  d.region = flags.region;
  d.endpoint_url = flags.endpoint_url;
  d.path_style = flags.s3_path_style;
  return s;
}

}  // namespace tailor
