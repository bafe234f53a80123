// Data-parallel training on libtorch's c10d: rendezvous through a TCPStore on rank 0, a Gloo process
// group on the CPU and NCCL on CUDA (when this build has it), gradient all-reduce in buckets started
// from autograd hooks while the backward pass still runs, and gathers for evaluation and the
// frozen-feature cache. Every collective has a timeout: a rank that died or hangs makes every other
// rank stop with an Error that says so, never wait forever.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "train/eval.h"
#include "train/world.h"

namespace tailor {

struct DistGroup;  // the store and process group (c10d types stay in distributed.cpp)

class Distributed {
 public:
  // Joins the job: rank 0 serves the TCPStore at MASTER_ADDR:MASTER_PORT, everyone connects, then the
  // process group is built (NCCL when `dev` is CUDA and the build has NCCL, else Gloo). Throws Error
  // when a rank does not arrive within the timeout.
  Distributed(const WorldInfo& world, const torch::Device& dev);
  ~Distributed();
  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;

  const WorldInfo& world() const { return world_; }
  int rank() const { return world_.rank; }
  int size() const { return world_.world_size; }
  std::string backend() const;
  torch::Device device() const { return dev_; }  // where collective tensors live

  // Collectives. Tensors live on the group's device (CPU for Gloo); all block until done.
  void all_reduce_sum(torch::Tensor& t);
  void broadcast_from_rank0(torch::Tensor& t);
  // Sums `t` (on the group's device, contiguous) over the ranks in stream order: NCCL queues it on
  // the current stream (capturable in a CUDA graph; no host wait), Gloo waits for it.
  void all_reduce_sum_queued(torch::Tensor& t);
  // Waits for this rank's GPU work queued so far, at most the timeout; else fails as a collective does.
  void wait_for_device(const std::string& what);
  // Every rank's `local` ([k, ...] with k <= rows_per_rank) in rank order: [sum of k, ...].
  torch::Tensor all_gather_rows(const torch::Tensor& local, int64_t rows_per_rank);
  // Every rank's bytes, in rank order.
  std::vector<std::string> all_gather_bytes(const std::string& local);
  // Throws Error on every rank when `text` (e.g. the training options) differs between ranks.
  void check_same(const std::string& what, const std::string& text);

  // Internals for GradReducer: start an async all-reduce, wait for one.
  struct Pending;
  std::shared_ptr<Pending> start_all_reduce(torch::Tensor& t);
  void wait(const std::shared_ptr<Pending>& p, const std::string& what);

 private:
  [[noreturn]] void fail(const std::string& what, const std::string& detail);
  WorldInfo world_;
  torch::Device dev_;  // where collective tensors must be
  std::unique_ptr<DistGroup> g_;
  bool failed_ = false;
};

// Sums the gradients of `params` over all ranks. The loss each rank backpropagates is weighted so the
// sum is the single-process gradient of the global batch (train/sampling.h, label_share). Gradients
// are packed into flat buckets (in reverse parameter order, about the order backward produces them); a bucket's
// all-reduce starts from a gradient hook as soon as its last gradient arrives and the buckets before
// it have started, so communication overlaps the rest of the backward pass. Buckets always start in
// the same order on every rank, as c10d requires.
class GradReducer {
 public:
  GradReducer(Distributed& dist, const std::vector<torch::Tensor>& params, int64_t bucket_bytes);
  ~GradReducer();
  // The next backward is the last one of the optimizer step: its hooks start the all-reduces.
  void arm();
  // After the last backward (or instead of it, for a rank with no pairs in this step): starts what
  // has not started, waits for all, and writes the summed gradients into .grad. Also sums
  // `local_loss` over the ranks and returns it.
  double finish(double local_loss);
  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }
  int64_t buckets_started() const { return started_; }                    // over all steps so far
  int64_t buckets_started_in_backward() const { return started_in_backward_; }  // of those, from a hook

 private:
  struct Slot {
    int64_t bucket = 0, offset = 0, numel = 0;
    bool ready = false;
  };
  struct Bucket {
    torch::Tensor flat;
    std::vector<int64_t> params;  // indices into params_
    int64_t waiting = 0;          // gradients not yet copied in
    std::shared_ptr<Distributed::Pending> pending;
  };
  void on_grad(int64_t i, const torch::Tensor& g);
  void fill_and_start(int64_t b);
  void start_ready_buckets();

  Distributed& dist_;
  std::vector<torch::Tensor> params_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  std::vector<unsigned> hook_ids_;
  bool armed_ = false;
  int64_t next_bucket_ = 0;  // buckets before it have started
  int64_t started_ = 0;
  int64_t started_in_backward_ = 0;
};

// Evaluation split across ranks: each rank answers its contiguous part of `pairs`, the predictions are
// gathered (in the order of `pairs`) and every rank gets the same report.
EvalReport evaluate_distributed(Distributed& dist, Answerer& model, const std::vector<VqaPair>& pairs,
                                const std::vector<VqaPair>& reference, int batch_size, const GenerationOptions& gen,
                                AnswerMode mode = AnswerMode::Free, double target_precision = 0.98,
                                PhotoShift shift = PhotoShift::None);

}  // namespace tailor
