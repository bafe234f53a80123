// Product tables of the catalog reader (catalog/catalog_reader.h open_table_stream): CSV, TSV and
// JSON Lines, the format chosen by the input's first byte; every row read and every good row turned
// into a product.
#include <memory>
#include <sstream>

#include "catalog/catalog_reader.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const char* const formats[] = {"csv", "tsv", "jsonl"};
  const char* format = formats[data[0] % 3];
  auto in = std::make_unique<std::istringstream>(std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  tailor::CatalogQueryAttributes query;
  query.attributes = tailor::default_attributes();
  try {
    auto reader = tailor::open_table_stream(std::move(in), "fuzz.table", format, "/nonexistent", tailor::CatalogColumns{}, query);
    tailor::CatalogRow row;
    while (reader->next(&row))
      if (row.bad_reason.empty()) reader->product(row);
  } catch (const tailor::Error&) {
  }
  return 0;
}
