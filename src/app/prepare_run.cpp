#include "app/prepare_run.h"

#include <cstdio>

#include "catalog/prepare.h"
#include "core/attributes.h"
#include "util/error.h"
#include "util/text.h"

namespace tailor {

void run_prepare(const PrepareRunOptions& o) {
  PrepareOptions opt;
  CatalogSource source = catalog_source(o.catalog);
  opt.catalog_dir = source.location;
  opt.catalog_format = source.format;
  opt.columns = source.columns;
  opt.download = source.download;
  opt.out_dir = o.out;
  opt.article_types = parse_article_types(o.article_types);
  std::vector<AttributeSpec> all = o.templates.empty() ? default_attributes() : load_attribute_specs(o.templates);
  bool all_attrs = o.attributes.empty() || o.attributes == "all";
  opt.attributes = all_attrs ? all : select_attributes(all, split_comma_list(o.attributes));
  opt.val_fraction = o.val_fraction;
  opt.seed = o.seed;
  opt.split_by = o.split_by;
  opt.threads = o.threads;
  opt.progress = !o.quiet;
  PrepareSummary s = prepare_catalog(opt);
  std::fputs(format_prepare_summary(s).c_str(), stdout);
  std::fflush(stdout);
  if (!prepare_has_pairs(s))
    throw Error("prepare: nothing usable in " + s.catalog_dir + " (no question/answer pair; see " + s.out_dir +
                "/manifest.json)");
}

}  // namespace tailor
