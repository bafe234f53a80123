#include "app/quantize_run.h"
#include "cli/commands.h"

namespace tailor::cli {

void add_quantize(CLI::App& app) {
  auto* cmd = app.add_subcommand("quantize", "A model directory with its frozen weights stored as int8 or NF4");
  auto o = std::make_shared<QuantizeOptions>();
  cmd->add_option("--model", o->model_dir, "Model directory (HF layout)")->required();
  cmd->add_option("--out", o->out_dir, "Directory to write")->required();
  cmd->add_option("--format", o->format, "int8 (per output channel) or nf4 (QLoRA's 4-bit, groups of 64)")->capture_default_str();
  cmd->add_option("--device", o->device, "Where to quantize: cpu or cuda")->capture_default_str();
  cmd->callback([o] { run_quantize(*o); });
}

}  // namespace tailor::cli
