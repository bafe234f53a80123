#include "app/prepare_run.h"
#include "cli/commands.h"
#include "cli/flags.h"

namespace tailor::cli {

void add_prepare(CLI::App& app) {
  auto* cmd = app.add_subcommand("prepare", "Turn a catalog (Kaggle layout, product table, imagefolder, vqa files) into VQA pairs");
  auto args = std::make_shared<PrepareRunOptions>();
  add_catalog_flags(cmd, args->catalog, /*required=*/true);
  cmd->add_option("--out", args->out, "Output directory (train.jsonl, val.jsonl, vqa_*.csv, tailor_task.json, manifest.json), replaced as a whole")
      ->required();
  cmd->add_option("--article-types", args->article_types, "Comma-separated article types, or \"all\"")
      ->capture_default_str();
  cmd->add_option("--attributes", args->attributes,
                  "Comma-separated attributes to ask about (default: all of the templates)");
  cmd->add_option("--task,--templates", args->templates,
                  "Task file (JSON): the attributes, their questions, allowed values with aliases, article types "
                  "(docs/catalog.md); or {\"Attribute\": \"question\", ...}");
  cmd->add_option("--val-fraction", args->val_fraction, "Fraction of products for validation")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", args->seed, "Seed of the train/val split")->capture_default_str();
  cmd->add_option("--split-by", args->split_by,
                  "Split by this field's value instead of by product, every value wholly in train or in val: a "
                  "table's column; Kaggle: brand, or another field of the product's JSON (subCategory, usage, ...)");
  cmd->add_option("--threads", args->threads, "Worker threads (0 = one per core)")->capture_default_str();
  cmd->add_flag("--quiet", args->quiet, "No progress bar");
  cmd->callback([args] { run_prepare(*args); });
}

}  // namespace tailor::cli
