// One optimizer step of `tailor train`, in two variants behind one interface: eager (any batch
// shapes) and captured (fixed shapes; on a GPU the step is two CUDA graphs replayed). Both do
// gradient accumulation and data-parallel training; both run the same named parts:
// accumulate_gradients (forward from the Q-Former output, loss, backward) once per batch, then
// apply_gradients (clip, AdamW). The GPU benchmark (tools/gpu) times fixed_shape_step, the two in one.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "catalog/dataset.h"
#include "model/model_dir.h"
#include "train/feature_cache.h"
#include "train/optimizer.h"
#include "train/ranks.h"

namespace tailor {

// One batch as the language model takes it: Q-Former output per row [B, Q, H], prompt ids and mask
// [B, T], image slots [B, T], labels [B, L] (-100: not in the loss).
struct LmBatch {
  torch::Tensor q, ids, mask, slot, labels;
};

// Forward + loss on one batch, backward of loss * scale (a device scalar) into the gradients, and
// loss * scale added to loss_sum (a device scalar). No host synchronisation: capturable.
void accumulate_gradients(Blip2ForConditionalGeneration& m, const LmBatch& batch, const torch::Tensor& scale,
                          torch::Tensor& loss_sum);
// Clip (when max_grad_norm > 0) and the optimizer's update. Capturable.
void apply_gradients(FlatAdam& opt, double max_grad_norm);

// The whole step on one batch (zero_grad, accumulate with scale 1, apply), the loss into `loss_out`.
void fixed_shape_step(Blip2ForConditionalGeneration& m, FlatAdam& opt, const LmBatch& batch, double max_grad_norm,
                      torch::Tensor& loss_out);

// What a step needs besides its batches. References: they outlive the step.
struct StepContext {
  Blip2Bundle& bundle;
  FlatAdam& opt;
  ImageFeatures& features;
  Ranks& ranks;
  torch::Device dev;
  double max_grad_norm = 1.0;
  const std::vector<torch::Tensor>& params;  // what trains (the eager step hooks its all-reduce onto them)
};

class OptimizerStep {
 public:
  virtual ~OptimizerStep() = default;
  // One optimizer step over this rank's part of each of the step's batches (a part may be empty
  // when there are more ranks than pairs). shares[i]: batch i's rank share (sampling.h). Each batch's
  // loss is divided by the number of batches, so a short step at an epoch's end is a mean too.
  // Returns the step's loss (summed over the ranks).
  virtual double run(const std::vector<std::vector<const VqaPair*>>& batches, const std::vector<double>& shares,
                     int64_t epoch) = 0;
};

// --cuda-graph auto|on|off: which variant runs, and why (one line for the log).
struct StepPlan {
  bool captured = false;
  bool graphs = false;  // captured as CUDA graphs (else the captured step's fixed shapes run eagerly: the CPU)
  std::string why;
};
// auto: captured wherever it is valid (a GPU with CUDA graphs and a frozen image side); on: captured
// (an Error where it is not valid; on the CPU its fixed shapes run eagerly); off: eager.
StepPlan plan_step(const std::string& cuda_graph, const torch::Device& dev, bool image_side_frozen);

std::unique_ptr<OptimizerStep> make_eager_step(const StepContext& c);

// The step over fixed-shape buffers: rows = the most pairs a rank gets of one batch, the longest
// prompt and answer of `pairs`. Padded rows repeat row 0 with every label -100, padded prompt
// positions are masked, padded answer positions are -100: the loss and its gradient are the unpadded
// batch's (only dropout's random draws fall differently on the larger tensors). The Q-Former output
// comes from the feature cache or from the frozen image side, run before the graph. With `graphs`,
// accumulate_gradients and (the all-reduce, apply_gradients) are each captured once and replayed.
std::unique_ptr<OptimizerStep> make_captured_step(const StepContext& c, const std::vector<VqaPair>& pairs, int64_t rows,
                                                  bool graphs);

}  // namespace tailor
