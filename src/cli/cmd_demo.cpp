#include "app/demo.h"
#include "cli/commands.h"

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
    run_whole_demo(args->opt);
  });
}

}  // namespace tailor::cli
