#include "app/describe_run.h"

#include <cstdio>
#include <memory>

#include "catalog/images.h"
#include "infer/load.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/text.h"
#include "write/describe.h"

namespace tailor {

static void check_sources(const DescribeRunOptions& o) {
  if (o.model_dir.empty() == o.attributes_from.empty())
    throw Error("give exactly one source of attributes: --attributes-from catalog or --model DIR");
  if (!o.attributes_from.empty() && o.attributes_from != "catalog")
    throw Error("--attributes-from takes \"catalog\" (or use --model DIR to predict them)");
  int sources = !o.catalog.catalog.empty() + !o.images.empty() + !o.image_list.empty();
  if (sources != 1) throw Error("give exactly one of --catalog DIR, --images FILE..., --image-list FILE");
  if (!o.attributes_from.empty() && o.catalog.catalog.empty())
    throw Error("--attributes-from catalog needs --catalog DIR (photos alone have no attributes)");
}

// The photo paths of a list file: one per line, blank lines and lines starting with # skipped.
static std::vector<std::string> image_list_paths(const std::string& list_file) {
  std::vector<std::string> paths;
  for (const std::string& l : text_lines(read_file(list_file)))
    if (!l.empty() && l[0] != '#') paths.push_back(l);
  return paths;
}

static std::vector<Product> products_of(const DescribeRunOptions& o) {
  if (!o.catalog.catalog.empty()) {
    CatalogQuery q;
    if (!o.attributes_file.empty()) q.attributes = load_attribute_specs(o.attributes_file);
    q.article_types = o.article_types;
    q.ids = o.ids;
    q.limit = o.limit;
    q.read_attributes = o.model_dir.empty();
    return read_catalog_products(catalog_source(o.catalog), q);
  }
  std::vector<std::string> paths = o.images;
  if (!o.image_list.empty())
    for (const auto& p : image_list_paths(o.image_list)) paths.push_back(p);
  if (o.limit > 0 && static_cast<int64_t>(paths.size()) > o.limit) paths.resize(static_cast<size_t>(o.limit));
  return products_from_images(paths);
}

void run_describe_products(DescribeRunOptions o) {
  check_sources(o);
  if (!o.system_prompt_file.empty()) o.writer.system_prompt = read_file(o.system_prompt_file);
  o.writer.http.max_attempts = o.retries + 1;
  o.writer.http.total_timeout_ms = static_cast<int>(o.timeout_s * 1000);
  o.writer.http.read_timeout_ms = static_cast<int>(o.timeout_s * 1000);
  o.writer.http.connect_timeout_ms = static_cast<int>(o.connect_timeout_s * 1000);
  std::unique_ptr<Writer> writer = make_writer(o.writer);  // fails now on missing keys / region

  std::vector<Product> products = products_of(o);
  std::unique_ptr<Answerer> answerer;
  DescribeOptions opts;
  if (!o.model_dir.empty()) {
    LoadOptions lo;
    lo.device = o.device;
    lo.dtype = o.dtype;
    lo.quantize = o.quantize;
    answerer = load_answerer(o.model_dir, lo);
    opts.load_image = [](const std::string& path) { return load_image(path); };
  }
  opts.output_jsonl = o.output;
  opts.output_csv = o.csv;
  opts.concurrency = o.concurrency;
  opts.batch_size = o.batch_size;
  opts.show_progress = !o.quiet;
  opts.answer_mode = parse_answer_mode(o.answer);
  opts.review_below_override = o.review_below;
  opts.doubtful_to_writer = o.doubtful_to_writer;
  DescribeSummary s = describe_products(products, *writer, answerer.get(), opts);
  std::fputs(s.text().c_str(), stdout);
  std::fflush(stdout);
  if (s.failed > 0 || s.not_attempted > 0)
    throw Error(std::to_string(s.failed + s.not_attempted) + " of " + std::to_string(s.total) +
                " products have no description yet (reasons above); run again to retry them");
}

}  // namespace tailor
