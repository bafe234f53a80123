#include "train/step.h"

#include <algorithm>
#include <string>

#include "infer/batch.h"
#include "infer/cuda_graph.h"

namespace tailor {

using torch::Tensor;

void fixed_shape_step(Blip2ForConditionalGeneration& m, FlatAdam& opt, const LmBatch& batch, double max_grad_norm,
                      Tensor& loss_out) {
  opt.zero_grad();
  Tensor loss = lm_loss(m->forward_from_qformer(batch.q, batch.ids, batch.mask, batch.slot, batch.labels), batch.labels);
  loss.backward();
  if (max_grad_norm > 0) opt.clip_grad_norm(max_grad_norm);
  opt.step();
  loss_out.copy_(loss.detach());
}

namespace {

class EagerStep : public OptimizerStep {
 public:
  explicit EagerStep(const StepContext& c) : c_(c) {}

  double run(const std::vector<std::vector<const VqaPair*>>& batches, const std::vector<double>& shares,
             int64_t epoch) override {
    c_.opt.zero_grad();
    const double count = static_cast<double>(batches.size());
    double step_loss = 0;
    for (size_t a = 0; a < batches.size(); ++a) {
      if (batches[a].empty()) continue;  // more ranks than pairs in this batch
      if (a + 1 == batches.size()) c_.ranks.arm_last_backward();  // this backward starts the all-reduces
      Tensor loss = batch_loss(batches[a], epoch);
      (loss * shares[a] / count).backward();
      step_loss += loss.item<double>() * shares[a] / count;
    }
    step_loss = c_.ranks.finish_step(step_loss);  // the gradients and loss summed over the ranks
    if (c_.max_grad_norm > 0) c_.opt.clip_grad_norm(c_.max_grad_norm);
    c_.opt.step();
    return step_loss;
  }

 private:
  Tensor batch_loss(const std::vector<const VqaPair*>& batch, int64_t epoch) {
    Blip2Bundle& b = c_.bundle;
    Tensor q = c_.features.rows(batch, epoch);
    std::vector<std::string> prompts, answers;
    for (auto* p : batch) {
      prompts.push_back(p->prompt);
      answers.push_back(p->answer);
    }
    TokenBatch tb = prompt_batch(*b.tokenizer, prompts, b.cfg);
    Tensor labels = label_batch(*b.tokenizer, answers).to(c_.dev);  // padding = -100: not in the loss
    Tensor slot = b.model->image_slots(tb.ids).to(c_.dev);
    return lm_loss(b.model->forward_from_qformer(q, tb.ids.to(c_.dev), tb.mask.to(c_.dev), slot, labels), labels);
  }

  StepContext c_;
};

class CapturedStep : public OptimizerStep {
 public:
  CapturedStep(const StepContext& c, const std::vector<VqaPair>& pairs, int64_t batch_size) : c_(c) {
    Blip2Bundle& b = c_.bundle;
    int64_t T = 1, L = 1;
    for (const VqaPair& p : pairs) {
      T = std::max<int64_t>(T, static_cast<int64_t>(b.model->with_image_tokens(b.tokenizer->encode(p.prompt, true)).size()));
      L = std::max<int64_t>(L, static_cast<int64_t>(b.tokenizer->encode(p.answer, true).size()));
    }
    const int64_t B = batch_size;
    const Tensor& any_row = c_.features.cached(pairs.front().image);
    auto lo = torch::TensorOptions().dtype(torch::kLong).device(c_.dev);
    fixed_.q = torch::zeros({B, any_row.size(0), any_row.size(1)}, any_row.options());
    fixed_.ids = torch::zeros({B, T}, lo);
    fixed_.mask = torch::zeros({B, T}, lo);
    fixed_.slot = torch::full({B, T}, -1, lo);
    fixed_.labels = torch::full({B, L}, -100, lo);
    loss_ = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat).device(c_.dev));
  }

  double run(const std::vector<std::vector<const VqaPair*>>& batches, const std::vector<double>&, int64_t) override {
    fill(batches.front());  // one batch per step (--grad-accum 1)
    if (!captured_) {
      // On a GPU the warm-up call is this first step; on the CPU nothing ran yet.
      graph_.capture([this] { fixed_shape_step(c_.bundle.model, c_.opt, fixed_, c_.max_grad_norm, loss_); },
                     c_.dev.is_cuda() && cuda_graphs_available(), /*warmups=*/1);
      captured_ = true;
      if (!graph_.is_graph()) graph_.replay();
    } else {
      graph_.replay();
    }
    return loss_.item<double>();
  }

 private:
  // The batch into the fixed buffers, padded as the header says.
  void fill(const std::vector<const VqaPair*>& batch) {
    Blip2Bundle& b = c_.bundle;
    const int64_t B = fixed_.ids.size(0), T = fixed_.ids.size(1), L = fixed_.labels.size(1);
    const int64_t rows = static_cast<int64_t>(batch.size());
    std::vector<std::string> prompts, answers;
    for (int64_t r = 0; r < B; ++r) prompts.push_back(batch[r < rows ? r : 0]->prompt);
    for (int64_t r = 0; r < rows; ++r) answers.push_back(batch[r]->answer);
    TokenBatch tb = prompt_batch(*b.tokenizer, prompts, b.cfg);
    Tensor labels = label_batch(*b.tokenizer, answers);
    Tensor ids = torch::full({B, T}, b.cfg.text.pad_token_id, torch::kLong), mask = torch::zeros({B, T}, torch::kLong);
    Tensor lab = torch::full({B, L}, -100, torch::kLong);
    ids.narrow(1, 0, tb.ids.size(1)).copy_(tb.ids);
    mask.narrow(1, 0, tb.mask.size(1)).copy_(tb.mask);
    lab.narrow(0, 0, rows).narrow(1, 0, labels.size(1)).copy_(labels);
    std::vector<Tensor> q;
    for (int64_t r = 0; r < B; ++r) q.push_back(c_.features.cached(batch[r < rows ? r : 0]->image));
    torch::NoGradGuard ng;
    fixed_.q.copy_(torch::stack(q));
    fixed_.ids.copy_(ids);
    fixed_.mask.copy_(mask);
    fixed_.slot.copy_(b.model->image_slots(ids));
    fixed_.labels.copy_(lab);
  }

  StepContext c_;
  LmBatch fixed_;  // the buffers the graph reads
  Tensor loss_;    // and writes
  CudaGraph graph_;
  bool captured_ = false;
};

}  // namespace

std::unique_ptr<OptimizerStep> make_eager_step(const StepContext& c) { return std::make_unique<EagerStep>(c); }

std::unique_ptr<OptimizerStep> make_captured_step(const StepContext& c, const std::vector<VqaPair>& pairs,
                                                  int64_t batch_size) {
  return std::make_unique<CapturedStep>(c, pairs, batch_size);
}

}  // namespace tailor
