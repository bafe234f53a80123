#include "app/init_run.h"
#include "cli/commands.h"

namespace tailor::cli {

void add_init(CLI::App& app) {
  auto* cmd = app.add_subcommand("init", "Write a randomly initialised BLIP-2 model directory (HF layout)");
  auto o = std::make_shared<InitOptions>();
  cmd->add_option("--preset", o->preset, "tiny, small or blip2-flan-t5-xl")->capture_default_str();
  cmd->add_option("--out", o->out_dir, "Output directory")->required();
  cmd->add_option("--seed", o->seed, "Random seed")->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "Weights as written: f32 or bf16")->capture_default_str();
  cmd->add_option("--init", o->init, "Weight init: auto (= hf), hf, fan-in")->capture_default_str();
  cmd->add_option("--image-size", o->image_size, "The vision tower's input side in pixels (0: the preset's; tiny 64, small 224)")
      ->capture_default_str();
  cmd->add_option("--patch-size", o->patch_size, "Its patch side in pixels (0: the preset's; tiny 8, small 14)")->capture_default_str();
  cmd->add_option("--task", o->task_file, "Task file (JSON) stored as tailor_task.json (default: the eight fashion attributes)");
  cmd->callback([o] { run_init(*o); });
}

}  // namespace tailor::cli
