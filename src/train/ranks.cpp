#include "train/ranks.h"

#include "train/distributed.h"

namespace tailor {

Ranks::Ranks(const WorldInfo& world, torch::Device& dev) : world_(world) {
  if (!world.distributed()) return;
  if (dev.is_cuda() && !dev.has_index()) dev = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(world.local_rank));
  group_ = std::make_unique<Distributed>(world, dev);
}

Ranks::~Ranks() = default;

Span Ranks::part(Span all) const { return rank_part(all, world_.rank, world_.world_size); }

void Ranks::check_same(const std::string& what, const std::string& text) {
  if (group_) group_->check_same(what, text);
}

void Ranks::broadcast_from_rank0(const std::vector<torch::Tensor>& tensors) {
  if (!group_) return;
  for (torch::Tensor t : tensors) group_->broadcast_from_rank0(t);
}

torch::Tensor Ranks::gather_rows(const torch::Tensor& local, int64_t rows_per_rank) {
  return group_ ? group_->all_gather_rows(local, rows_per_rank) : local;
}

EvalReport Ranks::evaluate(Answerer& model, const std::vector<VqaPair>& pairs, const std::vector<VqaPair>& reference,
                           int batch_size, const GenerationOptions& gen) {
  if (group_) return evaluate_distributed(*group_, model, pairs, reference, batch_size, gen);
  return tailor::evaluate(model, pairs, reference, batch_size, gen, false);
}

void Ranks::sum_gradients_of(const std::vector<torch::Tensor>& params) {
  if (group_) reducer_ = std::make_unique<GradReducer>(*group_, params, world_.bucket_bytes);
}

void Ranks::sum_in_step(const std::vector<torch::Tensor>& tensors) {
  if (!group_) return;
  for (torch::Tensor t : tensors) group_->all_reduce_sum_queued(t);
}

void Ranks::wait_for_step(const torch::Device& dev) {
  if (group_ && dev.is_cuda()) group_->wait_for_device("the captured training step");
}

void Ranks::arm_last_backward() {
  if (reducer_) reducer_->arm();
}

double Ranks::finish_step(double local_loss) { return reducer_ ? reducer_->finish(local_loss) : local_loss; }

std::string Ranks::start_line() const {
  if (!group_) return "";
  std::string how = reducer_ ? "in " + std::to_string(reducer_->buckets()) + " buckets from the backward pass"
                             : "inside the captured step";
  return "data-parallel: " + std::to_string(world_.world_size) + " ranks (" + group_->backend() +
         "), gradients all-reduced " + how + "\n";
}

std::string Ranks::end_line() const {
  if (!reducer_) return "";
  return "data-parallel: " + std::to_string(reducer_->buckets_started_in_backward()) + " of " +
         std::to_string(reducer_->buckets_started()) + " bucket all-reduces started during the backward pass\n";
}

}  // namespace tailor
