// `tailor train`: LoRA fine-tuning (PEFT's defaults) or full training of a BLIP-2 model directory
// on the pairs `tailor prepare` wrote, with checkpoints that resume exactly.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/eval.h"
#include "train/lora.h"
#include "train/pretrain.h"
#include "train/world.h"

namespace tailor {

struct TrainOptions {
  std::string model_dir, data_dir, out_dir;
  std::vector<std::string> extra_pairs;  // more pair files (`tailor review`'s corrections.jsonl), merged into train.jsonl's
  bool full = false;                  // train every parameter (from-scratch models)
  // The choices (freeze, optimizer, cache) are text, as the command line gives them; train_model
  // parses them once into ModelPart, OptimizerKind (train/trainable.h) and CacheMode (feature_cache.h).
  std::vector<std::string> freeze;    // with --full: vision, qformer, projection, language
  LoraOptions lora;
  std::vector<std::string> attributes;  // train on these only (default: all in the data)
  std::string optimizer = "adamw";    // adamw or adam
  double lr = 1e-4;
  double weight_decay = 0.01;
  double warmup_ratio = 0.05;         // of all optimizer steps
  double max_grad_norm = 1.0;
  // From-scratch training: the image side (vision tower, Q-Former, query tokens, projection) as a
  // second optimizer group at lr * image_lr_scale (1 = one group, as before).
  double image_lr_scale = 1.0;
  double adam_beta2 = 0.999;
  // From-scratch training (--full): first pretrain.epochs epochs of image-side pre-training with
  // attribute heads (train/pretrain.h), then the language-model training. seed/progress come from here.
  PretrainOptions pretrain;
  // More labelled photos for the image-side pre-training alone: a `tailor prepare` directory (its
  // train.jsonl and val.jsonl), e.g. every product of the catalog with every field it has. Products
  // and photos of --data's validation split are left out, so pre-training never sees them.
  std::string pretrain_data;
  int batch_size = 16;
  int grad_accum = 1;
  int epochs = 10;
  int64_t max_steps = 0;              // stop after this many optimizer steps (0 = all epochs)
  uint64_t seed = 0;
  bool augment = false;               // small random crops + horizontal flips (labels stay true)
  std::string cache = "auto";         // frozen-feature cache: auto, on, off
  int64_t checkpoint_every = 0;       // optimizer steps between checkpoints (0 = once per epoch)
  bool resume = false;
  bool eval_each_epoch = true;
  std::string device = "cpu";
  std::string dtype = "auto";         // frozen weights' dtype; trained weights stay float32
  // Frozen weights quantized (model/quantize.h): auto (the model directory as it is), none, int8,
  // nf4. LoRA only; the merged model is written from the original weights.
  std::string quantize = "auto";
  // T5's blocks recompute their activations in backward instead of keeping them (LoRA only): the
  // step's memory drops to about one block's, for about a third more compute. Same results.
  bool gradient_checkpointing = false;
  bool progress = true;
  // One line per step ("step 12/215 Loss: 2.9511 ...") and per epoch ("epoch 1 Epoch Loss: ...") on
  // stdout, for log-based metrics (SageMaker's metric definitions); the progress bar stays off.
  bool log_lines = false;
  // The optimizer step at fixed shapes (each batch padded to its most rows, the data's longest
  // prompt and answer), captured once as CUDA graphs and replayed: no per-operation dispatch
  // (train/step.h). auto: wherever valid (a GPU, a frozen image side); on: always (on the CPU its
  // fixed shapes run eagerly); off: the eager step.
  std::string cuda_graph = "auto";
  WorldInfo world;                    // data-parallel rank and job (train/world.h); default: one process
};

// Wall seconds of the parts of a run (rank 0's): where the time to a trained model goes.
struct TrainTimes {
  double data = 0;           // reading the pairs, decoding the photos
  double model = 0;          // loading the weights, LoRA, the optimizer
  double pretrain = 0;       // image-side pre-training (from scratch)
  double features = 0;       // the frozen-feature cache
  double first_step = 0;     // the first optimizer step (with its capture)
  double to_first_step = 0;  // from the start to the end of the first step
  double steps = 0;          // every later step
  double evaluation = 0;     // per-epoch validation
  double checkpoints = 0;
  double outputs = 0;        // adapter, merged model, eval.json
};

struct TrainResult {
  int64_t steps = 0;
  int64_t trainable_parameters = 0;
  std::vector<double> step_losses;   // one per optimizer step run in this process
  double samples_per_second = 0;
  bool cache_used = false;
  EvalReport final_eval;
  bool evaluated = false;
  std::string step_kind;  // how the steps ran (train/step.h StepPlan::why)
  TrainTimes times;
};

TrainResult train_model(const TrainOptions& o);

}  // namespace tailor
