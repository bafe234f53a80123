#include "app/eval_run.h"
#include "cli/commands.h"
#include "cli/flags.h"

namespace tailor::cli {

void add_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Accuracy per attribute on prepared pairs, with the majority baseline");
  auto o = std::make_shared<EvalRunOptions>();
  cmd->add_option("--model", o->model_dir, "Model directory")->required();
  cmd->add_option("--data", o->data_dir, "Directory written by `tailor prepare`")->required();
  cmd->add_option("--split", o->split, "val or train")->capture_default_str();
  cmd->add_option("--report", o->report, "Write the JSON report here (default: <data>/eval_<split>.json)");
  cmd->add_option("--batch-size", o->batch_size)->capture_default_str();
  cmd->add_option("--num-beams", o->generation.num_beams)->capture_default_str();
  cmd->add_option("--max-new-tokens", o->generation.max_new_tokens)->capture_default_str();
  cmd->add_option("--answer", o->answer, "choice (likeliest known value, with confidence and calibration; free text where no values are known), free (generated text), or both side by side (the free report beside --report, suffixed _free)")
      ->check(CLI::IsMember({"choice", "free", "both"}))
      ->capture_default_str();
  cmd->add_option("--target-precision", o->target_precision, "Suggest per attribute the lowest confidence threshold whose accepted choice answers reach this accuracy")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--shift", o->shift,
                  "Also answer with every photo framed as another source would (deterministic per product), once per "
                  "framing of a comma list: portrait (a 225x300 canvas the photo fills the width of), other-source (a "
                  "harder mix: portrait canvas, product at 70-95 %, another background tone, JPEG 40-75), zoom, "
                  "background, jpeg; each report beside --report, suffixed _<framing>")
      ->capture_default_str();
  cmd->add_flag("--calibrate", o->calibrate, "Store each attribute's fitted temperature and the threshold at it in the model's tailor_task.json (use the validation split)");
  cmd->add_option("--device", o->device)->capture_default_str();
  cmd->add_option("--dtype", o->dtype)->capture_default_str();
  cmd->add_option("--quantize", o->quantize, "Frozen weights: auto (as the model directory has them), none, int8 (per channel) or nf4 (QLoRA's 4-bit, groups of 64)")->capture_default_str();
  auto dist = std::make_shared<DistributedOptions>();
  add_distributed_flags(cmd, *dist);
  cmd->callback([o, dist] { run_evaluation(*o, *dist); });
}

}  // namespace tailor::cli
