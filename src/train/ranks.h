// The ranks of a training run as the trainer sees them: one process (rank 0 of 1, where every
// collective is the identity) or a data-parallel job (train/distributed.h). The trainer has one code
// path for both: alone, the methods below hand their input back.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "train/eval.h"
#include "train/world.h"

namespace tailor {

class Distributed;
class GradReducer;

class Ranks {
 public:
  // Joins the job when `world` has more than one rank. A CUDA `dev` without an index becomes the
  // GPU of this rank's local_rank there.
  Ranks(const WorldInfo& world, torch::Device& dev);
  ~Ranks();
  Ranks(const Ranks&) = delete;
  Ranks& operator=(const Ranks&) = delete;

  bool main() const { return world_.is_main(); }  // rank 0: logs, checkpoints and outputs are its
  int rank() const { return world_.rank; }
  int size() const { return world_.world_size; }

  // This rank's contiguous part of `all` (all of it alone).
  Span part(Span all) const;
  // Throws Error on every rank when `text` differs between ranks.
  void check_same(const std::string& what, const std::string& text);
  // Rank 0's values in every rank's tensors.
  void broadcast_from_rank0(const std::vector<torch::Tensor>& tensors);
  // Every rank's rows ([k, ...], k <= rows_per_rank) in rank order.
  torch::Tensor gather_rows(const torch::Tensor& local, int64_t rows_per_rank);
  // Each rank answers its part of `pairs`; every rank gets the whole report.
  EvalReport evaluate(Answerer& model, const std::vector<VqaPair>& pairs, const std::vector<VqaPair>& reference,
                      int batch_size, const GenerationOptions& gen);

  // The eager step: gradients of `params` summed over the ranks from here on (bucketed, started
  // from the backward's hooks so they overlap it).
  void sum_gradients_of(const std::vector<torch::Tensor>& params);
  // The captured step sums its flat gradient buffers itself, inside its graph: each tensor summed
  // over the ranks in place, in stream order (on NCCL the collective is queued on the device and can
  // be captured in a CUDA graph; Gloo waits for it). Alone: nothing.
  void sum_in_step(const std::vector<torch::Tensor>& tensors);
  // After a captured step's graphs are queued, in a job on a GPU: waits for the device at most the
  // job's timeout (a dead or hung rank leaves a captured collective waiting forever), else an Error.
  void wait_for_step(const torch::Device& dev);
  // The next backward is the step's last: its hooks start the all-reduces.
  void arm_last_backward();
  // After the step's backward passes: the summed gradients in .grad, and the summed loss.
  double finish_step(double local_loss);
  // One line about the job for the log ("" alone), at the start and at the end.
  std::string start_line() const;
  std::string end_line() const;

 private:
  WorldInfo world_;
  std::unique_ptr<Distributed> group_;   // null alone
  std::unique_ptr<GradReducer> reducer_;  // null alone and with the captured step
};

}  // namespace tailor
