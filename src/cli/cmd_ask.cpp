#include "app/ask_run.h"
#include "cli/commands.h"

namespace tailor::cli {

void add_ask(CLI::App& app) {
  auto* cmd = app.add_subcommand("ask", "Answer a question about a photo (all trained attributes if none)");
  auto o = std::make_shared<AskOptions>();
  cmd->add_option("--model", o->model_dir, "Model directory")->required();
  cmd->add_option("--image", o->image, "JPEG or PNG photo")->required();
  cmd->add_option("--question", o->question, "Question (wrapped as 'Question: ... Answer: ')");
  cmd->add_option("--device", o->device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "auto, f32, bf16, f16")->capture_default_str();
  cmd->add_option("--quantize", o->quantize, "Frozen weights: auto (as the model directory has them), none, int8 (per channel) or nf4 (QLoRA's 4-bit, groups of 64)")->capture_default_str();
  cmd->add_option("--answer", o->answer, "choice: the likeliest of each attribute's known values, with its confidence; free: generated text")
      ->check(CLI::IsMember({"choice", "free"}))
      ->capture_default_str();
  cmd->add_option("--max-new-tokens", o->generation.max_new_tokens)->capture_default_str();
  cmd->add_option("--num-beams", o->generation.num_beams)->capture_default_str();
  cmd->callback([o] { run_ask(*o); });
}

}  // namespace tailor::cli
