#include "app/train_run.h"

#include <algorithm>
#include <cstdlib>

#include "app/training_job.h"
#include "cli/commands.h"
#include "cli/flags.h"

namespace tailor::cli {

void add_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "LoRA fine-tuning (default) or full training on prepared pairs");
  auto o = std::make_shared<TrainOptions>();
  // Required (the trainer says so), except in a SageMaker training job, where the job gives them.
  cmd->add_option("--model", o->model_dir, "Model directory (HF layout)");
  cmd->add_option("--data", o->data_dir, "Directory written by `tailor prepare`");
  cmd->add_option("--out", o->out_dir, "Output directory (model/, adapter/, checkpoint/, train_log.jsonl)");
  cmd->add_option("--extra-pairs", o->extra_pairs,
                  "More training pairs in prepare's format (e.g. `tailor review --export`'s corrections.jsonl); "
                  "one for a product and attribute already in --data replaces it");
  cmd->add_flag("--full", o->full, "Train every parameter (from-scratch models)");
  cmd->add_option("--freeze", o->freeze, "With --full: parts to keep frozen (vision,qformer,projection,language)")->delimiter(',');
  cmd->add_option("--lora-r", o->lora.r)->capture_default_str();
  cmd->add_option("--lora-alpha", o->lora.alpha)->capture_default_str();
  cmd->add_option("--lora-dropout", o->lora.dropout)->capture_default_str();
  cmd->add_option("--lora-targets", o->lora.targets, "Module-name suffixes, as PEFT")->delimiter(',')->capture_default_str();
  cmd->add_option("--attributes", o->attributes, "Train on these attributes only")->delimiter(',');
  cmd->add_option("--optimizer", o->optimizer, "adamw or adam")->capture_default_str();
  cmd->add_option("--lr", o->lr)->capture_default_str();
  cmd->add_option("--weight-decay", o->weight_decay)->capture_default_str();
  cmd->add_option("--warmup", o->warmup_ratio, "Warm-up, as a fraction of all steps")->capture_default_str();
  cmd->add_option("--max-grad-norm", o->max_grad_norm)->capture_default_str();
  cmd->add_option("--image-lr-scale", o->image_lr_scale, "Image side (vision, Q-Former, queries, projection) at lr times this")->capture_default_str();
  cmd->add_option("--adam-beta2", o->adam_beta2)->capture_default_str();
  cmd->add_option("--pretrain-epochs", o->pretrain.epochs,
                  "With --full: epochs of image-side pre-training with attribute heads first (0: none)")->capture_default_str();
  cmd->add_option("--pretrain-lr", o->pretrain.lr)->capture_default_str();
  cmd->add_option("--pretrain-batch-size", o->pretrain.batch_size, "Photos per pre-training step")->capture_default_str();
  cmd->add_option("--pretrain-augment", o->pretrain.augment, "Random horizontal flips in pre-training (true/false)")->capture_default_str();
  cmd->add_flag("--pretrain-reframe", o->pretrain.reframe,
                "Pre-training also sees each photo framed at random as other sources shoot: canvas aspect 3:4 to 4:3 and "
                "scale, background tone, blur, JPEG quality (labels stay true)");
  cmd->add_option("--pretrain-data", o->pretrain_data,
                  "More labelled photos for the pre-training alone: a `tailor prepare` directory (e.g. every product "
                  "with every field); products of --data's validation split are left out");
  cmd->add_option("--batch-size", o->batch_size)->capture_default_str();
  cmd->add_option("--grad-accum", o->grad_accum)->capture_default_str();
  cmd->add_option("--epochs", o->epochs)->capture_default_str();
  cmd->add_option("--max-steps", o->max_steps, "Stop after this many optimizer steps (0: all epochs)")->capture_default_str();
  cmd->add_option("--seed", o->seed)->capture_default_str();
  cmd->add_flag("--augment", o->augment, "Small random crops and horizontal flips");
  cmd->add_option("--cache", o->cache, "Frozen-feature cache: auto, on, off")->capture_default_str();
  cmd->add_option("--checkpoint-every", o->checkpoint_every, "Steps between checkpoints (0: every epoch)")->capture_default_str();
  cmd->add_flag("--resume", o->resume, "Continue from the checkpoint in --out");
  cmd->add_option("--device", o->device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "Frozen weights: auto (bf16 on CUDA), f32, bf16")->capture_default_str();
  cmd->add_option("--quantize", o->quantize, "Frozen weights: auto (as the model directory has them), none, int8 (per channel) or nf4 (QLoRA's 4-bit, groups of 64)" "; LoRA only")->capture_default_str();
  cmd->add_flag("--gradient-checkpointing", o->gradient_checkpointing,
               "Recompute T5's activations in backward instead of keeping them (LoRA; less memory, more compute)");
  cmd->add_option("--cuda-graph", o->cuda_graph,
                  "auto: on a GPU each optimizer step runs as captured CUDA graphs (batches padded to fixed shapes) "
                  "wherever valid (a frozen image side); on: always (an error where invalid; on the CPU the padded "
                  "step runs eagerly); off: the eager step")
      ->capture_default_str();
  cmd->add_flag("--log-lines", o->log_lines,
                "One line per step and epoch (\"Loss: ...\", \"Epoch Loss: ...\") instead of the progress bar, for "
                "log-based metrics");
  auto dist = std::make_shared<DistributedOptions>();
  add_distributed_flags(cmd, *dist);
  cmd->callback([o, dist] { run_training(*o, *dist); });
}

void run_training_job(CLI::App& app) {
  TrainingJob job = open_training_job();
  std::vector<std::string> args = {"train"};
  args.insert(args.end(), job.train_args.begin(), job.train_args.end());
  std::reverse(args.begin(), args.end());  // CLI11 takes a vector back to front
  app.parse(args);
  if (!std::getenv("WORLD_SIZE")) finish_training_job(job);  // --nproc's ranks: the launcher finishes the job
}

}  // namespace tailor::cli
