#include "app/init_run.h"
#include "cli/commands.h"

namespace tailor::cli {

void add_synth(CLI::App& app) {
  auto* cmd = app.add_subcommand("synth", "Write a synthetic catalog of drawn tops (Kaggle layout) with known attributes");
  struct Args {
    SynthOptions opt;
    bool quiet = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--products", args->opt.products, "Number of products")->capture_default_str();
  cmd->add_option("--out", args->opt.out_dir, "Output catalog directory")->required();
  cmd->add_option("--seed", args->opt.seed, "Seed (same seed, same bytes)")->capture_default_str();
  cmd->add_option("--threads", args->opt.threads, "Worker threads (0 = one per core)")->capture_default_str();
  cmd->add_flag("--quiet", args->quiet, "No progress bar");
  cmd->callback([args] {
    args->opt.progress = !args->quiet;
    run_synth(args->opt);
  });
}

}  // namespace tailor::cli
