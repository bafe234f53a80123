#include "catalog/demo.h"
#include "cli/commands.h"

namespace tailor::cli {

void add_demo(CLI::App& app) {
  auto* cmd = app.add_subcommand("demo", "Run the pipeline offline on a synthetic catalog (synth, prepare)");
  struct Args {
    DemoOptions opt;
    bool quiet = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--out", args->opt.out_dir, "Output directory")->capture_default_str();
  cmd->add_option("--products", args->opt.products, "Synthetic products")->capture_default_str();
  cmd->add_option("--seed", args->opt.seed, "Seed of the catalog and the split")->capture_default_str();
  cmd->add_option("--threads", args->opt.threads, "Worker threads (0 = one per core)")->capture_default_str();
  cmd->add_flag("--quiet", args->quiet, "No progress bars");
  cmd->callback([args] {
    args->opt.progress = !args->quiet;
    DemoContext ctx = make_demo_context(args->opt);
    std::vector<DemoStep> steps = demo_catalog_steps();
    // Later stages append their steps here (train, evaluate, describe).
    run_demo(ctx, steps);
  });
}

}  // namespace tailor::cli
