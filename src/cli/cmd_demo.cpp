#include "catalog/demo.h"
#include "cli/commands.h"
#include "model/presets.h"
#include "train/demo.h"
#include "util/error.h"
#include "util/torch_threads.h"

namespace tailor::cli {

void add_demo(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "demo", "The whole pipeline offline on the CPU: synth, prepare, init, train, evaluate, describe, HTML report");
  struct Args {
    DemoOptions opt;
    bool quiet = false;
  };
  auto args = std::make_shared<Args>();
  DemoOptions& o = args->opt;
  cmd->add_option("--out", o.out_dir, "Output directory (report.html, eval.json, examples.jsonl, ...)")->capture_default_str();
  cmd->add_option("--products", o.products, "Synthetic products")->capture_default_str();
  cmd->add_option("--seed", o.seed, "Seed of the catalog, the split, the model and the training")->capture_default_str();
  cmd->add_option("--threads", o.threads, "Worker threads for synth and prepare (0 = one per core)")->capture_default_str();
  cmd->add_option("--val-fraction", o.val_fraction, "Products held out for evaluation")->capture_default_str();
  cmd->add_option("--preset", o.preset, "Model preset (tailor init)")->capture_default_str();
  cmd->add_option("--init", o.init, "Model weight init (tailor init --init): auto, hf, fan-in")->capture_default_str();
  cmd->add_option("--pretrain-epochs", o.pretrain_epochs,
                  "Image-side pre-training with attribute heads, then the image side frozen (0: one stage)")->capture_default_str();
  cmd->add_option("--pretrain-lr", o.pretrain_lr)->capture_default_str();
  cmd->add_option("--epochs", o.epochs, "Epochs of the language model's training")->capture_default_str();
  cmd->add_option("--lr", o.lr, "Peak learning rate (warm-up + cosine)")->capture_default_str();
  cmd->add_option("--batch-size", o.batch_size)->capture_default_str();
  cmd->add_option("--examples", o.examples, "Validation products shown in the report and described")->capture_default_str();
  cmd->add_flag("--quiet", args->quiet, "No progress bars");
  cmd->callback([args] {
    args->opt.progress = !args->quiet;
    preset_config(args->opt.preset, 1);  // an unknown preset fails now, not after synth and prepare
    if (args->opt.products < 2) throw Error("--products must be at least 2 (one to train on, one to evaluate)");
    if (args->opt.epochs < 1 || args->opt.batch_size < 1) throw Error("--epochs and --batch-size must be at least 1");
    if (args->opt.pretrain_epochs < 0) throw Error("--pretrain-epochs must be 0 or more");
    if (!(args->opt.val_fraction > 0 && args->opt.val_fraction < 1)) throw Error("--val-fraction must be between 0 and 1");
    init_torch_threads();
    DemoContext ctx = make_demo_context(args->opt);
    std::vector<DemoStep> steps = demo_catalog_steps();
    for (auto& s : demo_model_steps(ctx.opt)) steps.push_back(std::move(s));
    run_demo(ctx, steps);
  });
}

}  // namespace tailor::cli
