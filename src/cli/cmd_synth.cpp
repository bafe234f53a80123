#include <cstdio>

#include "catalog/synth.h"
#include "cli/commands.h"
#include "util/error.h"

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
    SynthSummary s = synth_catalog(args->opt);
    std::printf("synth: %zu products (seed %llu) in %s in %.2f s\n", s.products.size(),
                (unsigned long long)args->opt.seed, s.out_dir.c_str(), s.seconds);
  });
}

}  // namespace tailor::cli
