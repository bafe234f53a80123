#include "train/step.h"

#include <algorithm>
#include <string>
#include <unordered_map>

#include "infer/batch.h"
#include "infer/cuda_graph.h"
#include "util/error.h"

namespace tailor {

using torch::Tensor;

void accumulate_gradients(Blip2ForConditionalGeneration& m, const LmBatch& batch, const Tensor& scale, Tensor& loss_sum) {
  Tensor loss = lm_loss(m->forward_from_qformer(batch.q, batch.ids, batch.mask, batch.slot, batch.labels), batch.labels);
  (loss * scale).backward();
  torch::NoGradGuard ng;
  loss_sum.add_(loss.detach() * scale);
}

void apply_gradients(FlatAdam& opt, double max_grad_norm) {
  if (max_grad_norm > 0) opt.clip_grad_norm(max_grad_norm);
  opt.step();
}

void fixed_shape_step(Blip2ForConditionalGeneration& m, FlatAdam& opt, const LmBatch& batch, double max_grad_norm,
                      Tensor& loss_out) {
  opt.zero_grad();
  {
    torch::NoGradGuard ng;
    loss_out.zero_();
  }
  accumulate_gradients(m, batch, torch::ones({}, loss_out.options()), loss_out);
  apply_gradients(opt, max_grad_norm);
}

StepPlan plan_step(const std::string& cuda_graph, const torch::Device& dev, bool image_side_frozen) {
  if (cuda_graph != "auto" && cuda_graph != "on" && cuda_graph != "off")
    throw Error("--cuda-graph must be auto, on or off, not \"" + cuda_graph + "\"");
  StepPlan p;
  if (cuda_graph == "off") {
    p.why = "eager (--cuda-graph off)";
    return p;
  }
  if (!image_side_frozen) {
    if (cuda_graph == "on")
      throw Error("--cuda-graph on needs a frozen image side (vision tower and Q-Former): the captured step runs the "
                  "language model only (use --freeze vision,qformer, or --cuda-graph auto to train eagerly)");
    p.why = "eager (the image side trains: its backward runs outside the captured step)";
    return p;
  }
  const bool graphs = dev.is_cuda() && cuda_graphs_available();
  if (cuda_graph == "auto" && !graphs) {
    p.why = dev.is_cuda() ? "eager (CUDA graphs turned off by TAILOR_CUDA_GRAPHS=0)" : "eager (no CUDA graphs on the CPU)";
    return p;
  }
  p.captured = true;
  p.graphs = graphs;
  p.why = graphs ? "captured as CUDA graphs (batches padded to fixed shapes)"
                 : "the captured step's fixed shapes, run eagerly (no CUDA graphs here)";
  return p;
}

namespace {

class EagerStep : public OptimizerStep {
 public:
  explicit EagerStep(const StepContext& c) : c_(c) {
    c_.ranks.sum_gradients_of(c_.params);  // bucketed all-reduces from the backward's hooks (alone: nothing)
    auto f = torch::TensorOptions().dtype(torch::kFloat).device(c_.dev);
    scale_ = torch::zeros({}, f);
    loss_sum_ = torch::zeros({}, f);
  }

  double run(const std::vector<std::vector<const VqaPair*>>& batches, const std::vector<double>& shares,
             int64_t epoch) override {
    c_.opt.zero_grad();
    const double count = static_cast<double>(batches.size());
    double step_loss = 0;
    for (size_t a = 0; a < batches.size(); ++a) {
      if (batches[a].empty()) continue;  // more ranks than pairs in this batch
      if (a + 1 == batches.size()) c_.ranks.arm_last_backward();  // this backward starts the all-reduces
      scale_.fill_(shares[a] / count);
      loss_sum_.zero_();
      accumulate_gradients(c_.bundle.model, batch_of(batches[a], epoch), scale_, loss_sum_);
      step_loss += loss_sum_.item<double>();
    }
    step_loss = c_.ranks.finish_step(step_loss);  // the gradients and loss summed over the ranks
    apply_gradients(c_.opt, c_.max_grad_norm);
    return step_loss;
  }

 private:
  LmBatch batch_of(const std::vector<const VqaPair*>& batch, int64_t epoch) {
    Blip2Bundle& b = c_.bundle;
    std::vector<std::string> prompts, answers;
    for (auto* p : batch) {
      prompts.push_back(p->prompt);
      answers.push_back(p->answer);
    }
    TokenBatch tb = prompt_batch(*b.tokenizer, prompts, b.cfg);
    Tensor labels = label_batch(*b.tokenizer, answers).to(c_.dev);  // padding = -100: not in the loss
    return {c_.features.rows(batch, epoch), tb.ids.to(c_.dev), tb.mask.to(c_.dev), b.model->image_slots(tb.ids).to(c_.dev),
            labels};
  }

  StepContext c_;
  Tensor scale_, loss_sum_;
};

class CapturedStep : public OptimizerStep {
 public:
  CapturedStep(const StepContext& c, const std::vector<VqaPair>& pairs, int64_t rows, bool graphs)
      : c_(c), graphs_(graphs) {
    Blip2Bundle& b = c_.bundle;
    // Every pair tokenized once (prompt_batch's and label_batch's ids), not at each step.
    int64_t T = 1, L = 1;
    for (const VqaPair& p : pairs) {
      Tokens& t = tokens_[&p];
      t.prompt = b.model->with_image_tokens(b.tokenizer->encode(p.prompt, true));
      t.answer = b.tokenizer->encode(p.answer, true);
      T = std::max<int64_t>(T, static_cast<int64_t>(t.prompt.size()));
      L = std::max<int64_t>(L, static_cast<int64_t>(t.answer.size()));
    }
    const int64_t B = rows;
    // The Q-Former output's shape and type, from one photo.
    Tensor one;
    {
      torch::NoGradGuard ng;
      one = c_.features.rows({&pairs.front()}, 0)[0];
    }
    auto lo = torch::TensorOptions().dtype(torch::kLong).device(c_.dev);
    fixed_.q = torch::zeros({B, one.size(0), one.size(1)}, one.options().requires_grad(false));
    fixed_.ids = torch::zeros({B, T}, lo);
    fixed_.mask = torch::zeros({B, T}, lo);
    fixed_.slot = torch::full({B, T}, -1, lo);
    fixed_.labels = torch::full({B, L}, -100, lo);
    auto f = torch::TensorOptions().dtype(torch::kFloat).device(c_.dev);
    scale_ = torch::zeros({}, f);
    loss_sum_ = torch::zeros({}, f);
    loss_out_ = torch::zeros({}, f);
    c_.opt.zero_grad();  // the update graph zeroes them after each step; the first step starts at zero too
  }

  double run(const std::vector<std::vector<const VqaPair*>>& batches, const std::vector<double>& shares,
             int64_t epoch) override {
    const double count = static_cast<double>(batches.size());
    for (size_t a = 0; a < batches.size(); ++a) {
      if (batches[a].empty()) continue;  // more ranks than pairs in this batch: nothing to add
      fill(batches[a], epoch);
      scale_.fill_(shares[a] / count);
      replay(micro_, micro_captured_, [this] { accumulate_gradients(c_.bundle.model, fixed_, scale_, loss_sum_); });
    }
    replay(update_, update_captured_, [this] {
      c_.ranks.sum_in_step(c_.opt.gradient_buffers());  // gradients and loss over the ranks (alone: nothing)
      c_.ranks.sum_in_step({loss_sum_});
      apply_gradients(c_.opt, c_.max_grad_norm);
      loss_out_.copy_(loss_sum_);
      loss_sum_.zero_();
      c_.opt.zero_grad();
    });
    c_.ranks.wait_for_step(c_.dev);  // in a job: a rank that died must not leave this one waiting forever
    return loss_out_.item<double>();
  }

 private:
  // The first call captures `fn` (on a GPU its warm-up run is this call's work; on the CPU it runs
  // now), later calls replay it.
  void replay(CudaGraph& g, bool& captured, std::function<void()> fn) {
    if (captured) {
      g.replay();
      return;
    }
    g.capture(std::move(fn), graphs_, /*warmups=*/1);
    captured = true;
    if (!g.is_graph()) g.replay();
  }

  // The batch into the fixed buffers, padded as the header says.
  void fill(const std::vector<const VqaPair*>& batch, int64_t epoch) {
    Blip2Bundle& b = c_.bundle;
    const int64_t B = fixed_.ids.size(0), T = fixed_.ids.size(1), L = fixed_.labels.size(1);
    const int64_t rows = static_cast<int64_t>(batch.size());
    if (rows > B) throw Error("captured step: " + std::to_string(rows) + " rows > its " + std::to_string(B));
    Tensor ids = torch::full({B, T}, b.cfg.text.pad_token_id, torch::kLong), mask = torch::zeros({B, T}, torch::kLong);
    Tensor lab = torch::full({B, L}, -100, torch::kLong);
    int64_t* id = ids.data_ptr<int64_t>();
    int64_t* mk = mask.data_ptr<int64_t>();
    int64_t* lb = lab.data_ptr<int64_t>();
    for (int64_t r = 0; r < B; ++r) {
      const Tokens& t = tokens_.at(batch[r < rows ? r : 0]);
      for (size_t i = 0; i < t.prompt.size(); ++i) {
        id[r * T + static_cast<int64_t>(i)] = t.prompt[i];
        mk[r * T + static_cast<int64_t>(i)] = 1;
      }
      if (r < rows)
        for (size_t i = 0; i < t.answer.size(); ++i) lb[r * L + static_cast<int64_t>(i)] = t.answer[i];
    }
    torch::NoGradGuard ng;
    Tensor q = c_.features.rows(batch, epoch);  // the cache's rows, or the frozen image side's output
    fixed_.q.narrow(0, 0, rows).copy_(q);
    if (rows < B) fixed_.q.narrow(0, rows, B - rows).copy_(q[0].expand({B - rows, q.size(1), q.size(2)}));
    fixed_.ids.copy_(ids);
    fixed_.mask.copy_(mask);
    fixed_.slot.copy_(b.model->image_slots(ids));
    fixed_.labels.copy_(lab);
  }

  struct Tokens {
    std::vector<int64_t> prompt, answer;  // with eos; the prompt with its image tokens in front
  };
  std::unordered_map<const VqaPair*, Tokens> tokens_;
  StepContext c_;
  bool graphs_;
  LmBatch fixed_;                       // the buffers the graphs read
  Tensor scale_, loss_sum_, loss_out_;  // and the scalars they read and write
  CudaGraph micro_, update_;
  bool micro_captured_ = false, update_captured_ = false;
};

}  // namespace

std::unique_ptr<OptimizerStep> make_eager_step(const StepContext& c) { return std::make_unique<EagerStep>(c); }

std::unique_ptr<OptimizerStep> make_captured_step(const StepContext& c, const std::vector<VqaPair>& pairs, int64_t rows,
                                                  bool graphs) {
  return std::make_unique<CapturedStep>(c, pairs, rows, graphs);
}

}  // namespace tailor
