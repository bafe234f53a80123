// One optimizer step of `tailor train`, in two variants behind one interface: eager (any batch
// shapes, gradient accumulation, data-parallel) and captured (fixed shapes, the whole step one CUDA
// graph replayed). Both end in fixed_shape_step's sequence: zero_grad, forward from the Q-Former
// output, loss, backward, clip, AdamW. The GPU benchmark (tools/gpu) times fixed_shape_step itself.
#pragma once
#include <torch/torch.h>

#include <memory>
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

// The whole optimizer step on one batch: zero_grad, forward + loss, backward, clip (when
// max_grad_norm > 0), AdamW; the loss copied into `loss_out` (a device scalar). Everything stays on
// the device, so a call can be captured as one CUDA graph.
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

std::unique_ptr<OptimizerStep> make_eager_step(const StepContext& c);

// --cuda-graph: the step over fixed-shape buffers (batch_size rows; the longest prompt and answer of
// `pairs`), captured on its first use. Padded rows repeat row 0 with every label -100, padded prompt
// positions are masked, padded answer positions are -100: the loss and its gradient are the unpadded
// batch's (only dropout's random draws fall differently on the larger tensors). Needs the feature
// cache, one process and one batch per step. On the CPU the same padded step runs eagerly.
std::unique_ptr<OptimizerStep> make_captured_step(const StepContext& c, const std::vector<VqaPair>& pairs,
                                                  int64_t batch_size);

}  // namespace tailor
