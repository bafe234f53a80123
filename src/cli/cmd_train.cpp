#include <cstdio>

#include "cli/commands.h"
#include "train/trainer.h"
#include "train/world.h"
#include "util/error.h"
#include "util/torch_threads.h"

namespace tailor::cli {

void add_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "LoRA fine-tuning (default) or full training on prepared pairs");
  auto o = std::make_shared<TrainOptions>();
  cmd->add_option("--model", o->model_dir, "Model directory (HF layout)")->required();
  cmd->add_option("--data", o->data_dir, "Directory written by `tailor prepare`")->required();
  cmd->add_option("--out", o->out_dir, "Output directory (model/, adapter/, checkpoint/, train_log.jsonl)")->required();
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
  cmd->add_flag("--cuda-graph", o->cuda_graph,
                "Run each optimizer step as one captured CUDA graph (batches padded to fixed shapes; needs "
                "--device cuda, the feature cache, one process, --grad-accum 1)");
  auto nproc = std::make_shared<int>(0);
  auto dist_timeout = std::make_shared<double>(0);
  cmd->add_option("--nproc", *nproc,
                  "Data-parallel on this host: start N ranks of tailor (else the torchrun variables RANK, "
                  "WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK say who this process is)");
  cmd->add_option("--dist-timeout", *dist_timeout,
                  "Seconds to wait for the other ranks at rendezvous and at each collective (default 300)");
  cmd->callback([o, nproc, dist_timeout] {
    if (o->cuda_graph && o->device.rfind("cuda", 0) != 0) throw Error("--cuda-graph needs --device cuda");
    o->world = world_from_env();
    if (*dist_timeout > 0) o->world.timeout_s = *dist_timeout;
    if (*nproc > 1) {
      if (o->world.distributed()) throw Error("--nproc: this process is already rank " + std::to_string(o->world.rank) +
                                              " of a job (WORLD_SIZE is set); drop --nproc");
      launch_local_workers(*nproc, without_nproc(own_command_line()));
      return;
    }
    init_torch_threads();
    TrainResult r = train_model(*o);
    if (!o->world.is_main()) return;  // rank 0 reports
    std::printf("trained %lld steps (%lld trainable parameters), %.1f samples/s; wrote %s/model%s\n", (long long)r.steps,
                (long long)r.trainable_parameters, r.samples_per_second, o->out_dir.c_str(),
                o->full ? "" : " and adapter/");
    if (r.evaluated) std::printf("%s", eval_table(r.final_eval).c_str());
  });
}

}  // namespace tailor::cli
