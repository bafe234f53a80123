#include <cstdio>

#include "catalog/attributes.h"
#include "catalog/prepare.h"
#include "cli/commands.h"
#include "util/error.h"

namespace tailor::cli {

void add_prepare(CLI::App& app) {
  auto* cmd = app.add_subcommand("prepare", "Turn a catalog (styles.csv, styles/<id>.json, images/) into VQA pairs");
  struct Args {
    std::string catalog, out, types = "Shirts,Tshirts", attributes, templates;
    double val_fraction = 0.2;
    uint64_t seed = 42;
    int threads = 0;
    bool quiet = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--catalog", args->catalog, "Catalog directory (Kaggle Fashion Product Images layout)")->required();
  cmd->add_option("--out", args->out, "Output directory (train.jsonl, val.jsonl, vqa_*.csv, manifest.json)")
      ->required();
  cmd->add_option("--article-types", args->types, "Comma-separated article types, or \"all\"")
      ->capture_default_str();
  cmd->add_option("--attributes", args->attributes,
                  "Comma-separated attributes to ask about (default: all of the templates)");
  cmd->add_option("--templates", args->templates,
                  "JSON file of question templates: {\"Attribute\": \"question\", ...}");
  cmd->add_option("--val-fraction", args->val_fraction, "Fraction of products for validation")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", args->seed, "Seed of the train/val split")->capture_default_str();
  cmd->add_option("--threads", args->threads, "Worker threads (0 = one per core)")->capture_default_str();
  cmd->add_flag("--quiet", args->quiet, "No progress bar");
  cmd->callback([args] {
    PrepareOptions opt;
    opt.catalog_dir = args->catalog;
    opt.out_dir = args->out;
    opt.article_types = parse_article_types(args->types);
    std::vector<AttributeSpec> all = args->templates.empty() ? default_attributes()
                                                             : load_attribute_specs(args->templates);
    bool all_attrs = args->attributes.empty() || args->attributes == "all";
    opt.attributes = all_attrs ? all : select_attributes(all, split_comma_list(args->attributes));
    opt.val_fraction = args->val_fraction;
    opt.seed = args->seed;
    opt.threads = args->threads;
    opt.progress = !args->quiet;
    PrepareSummary s = prepare_catalog(opt);
    std::fputs(format_prepare_summary(s).c_str(), stdout);
    std::fflush(stdout);
    if (!prepare_has_pairs(s))
      throw Error("prepare: nothing usable in " + s.catalog_dir + " (no question/answer pair; see " +
                  s.out_dir + "/manifest.json)");
  });
}

}  // namespace tailor::cli
