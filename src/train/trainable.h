// What trains: with --full every parameter but the frozen parts, else PEFT's LoRA adapters; the
// trainable parameters by name, and the optimizer over them (one group, or the language model and
// the image side apart).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/blip2.h"
#include "train/optimizer.h"
#include "train/trainer.h"

namespace tailor {

// The model parts --freeze names.
enum class ModelPart { kVision, kQFormer, kProjection, kLanguage };
// --optimizer: AdamW (decoupled weight decay) or Adam (no decay, as before).
enum class OptimizerKind { kAdamW, kAdam };

struct Trainable {
  std::vector<std::pair<std::string, torch::Tensor>> named;  // in module order (the checkpoint's)
  std::vector<torch::Tensor> params;
  int64_t parameters = 0;      // trainable
  int64_t all_parameters = 0;
  // Vision tower, Q-Former and query tokens frozen: their output is a pure function of the photo.
  bool image_side_frozen = false;
  size_t optimizer_groups = 1;  // set by make_optimizer
};

// Sets requires_grad: everything (--full) less the `frozen` parts, or LoRA adapters attached (printed
// when `log`). Throws Error when nothing trains.
Trainable set_up_trainable(Blip2ForConditionalGeneration& m, const TrainOptions& o,
                           const std::vector<ModelPart>& frozen, bool log);

// FlatAdam over one group, or (image_lr_scale != 1) the language model's parameters and the image
// side's as two.
std::unique_ptr<FlatAdam> make_optimizer(Trainable& t, const TrainOptions& o, OptimizerKind kind);
// Group 0 gets lr; a second group (the image side) gets lr * image_scale.
void set_lr(FlatAdam& opt, const Trainable& t, double lr, double image_scale);

// Training mode for what trains; evaluation mode (no dropout) for a frozen image side, so its output
// is a pure function of the photo and the feature cache is exact. Called again after every
// evaluation, which switches the whole model back to training mode.
void set_modes(Blip2ForConditionalGeneration& m, bool image_side_frozen);

// Vision tower, Q-Former and query tokens by name: what image-side pre-training trains.
std::vector<std::pair<std::string, torch::Tensor>> image_side_parameters(Blip2ForConditionalGeneration& m);

}  // namespace tailor
