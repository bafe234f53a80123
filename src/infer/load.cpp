// The Answerer behind `tailor ask`, serving and describing: a loaded model directory that answers
// batches of (photo, question), running the vision tower and Q-Former once per distinct photo.
#include "infer/load.h"

#include "infer/blip2_answerer.h"

#include <algorithm>
#include <map>
#include <mutex>

#include "infer/batch.h"
#include "infer/choice.h"
#include "infer/generate.h"
#include "infer/static_generate.h"
#include "model/model_dir.h"
#include "util/error.h"

namespace tailor {

namespace {

class Blip2Answerer : public Answerer {
 public:
  Blip2Answerer(Blip2Bundle b, torch::Device dev, bool static_greedy) : b_(std::move(b)), dev_(dev) {
    if (static_greedy)
      fast_ = std::make_unique<StaticGreedyGenerator>(b_.model, dev.is_cuda() && cuda_graphs_available());
  }
  Blip2Answerer(const Blip2Answerer&) = delete;

  std::vector<Answer> answer(const std::vector<AnswerRequest>& reqs, const GenerationOptions& opts) override {
    if (reqs.empty()) return {};
    std::lock_guard<std::mutex> lock(mu_);  // one forward pass at a time on this model
    torch::NoGradGuard ng;
    bool was_training = b_.model->is_training();
    b_.model->eval();
    struct Restore {
      Blip2ForConditionalGeneration& m;
      bool t;
      ~Restore() { if (t) m->train(); }
    } restore{b_.model, was_training};
    std::vector<size_t> free_rows, choice_rows;
    for (size_t i = 0; i < reqs.size(); ++i) {
      if (!reqs[i].image) throw Error("a request has no image");
      (reqs[i].candidates.empty() ? free_rows : choice_rows).push_back(i);
    }
    std::vector<Answer> out(reqs.size());
    if (!free_rows.empty()) generate_free(reqs, free_rows, opts, out);
    if (!choice_rows.empty()) score_choices(reqs, choice_rows, out);
    return out;
  }

  const TaskInfo& task() const override { return b_.task; }
  std::string name() const override { return b_.dir; }

 private:
  // The photos of `rows` as pixels on the device (each distinct photo once) and, per row, its photo.
  torch::Tensor photos_of(const std::vector<AnswerRequest>& reqs, const std::vector<size_t>& rows,
                          std::vector<int64_t>& row_photo) {
    std::map<const ImageRGB*, int64_t> slot;
    std::vector<const ImageRGB*> unique;
    for (size_t i : rows) {
      auto it = slot.find(reqs[i].image.get());
      if (it == slot.end()) {
        it = slot.emplace(reqs[i].image.get(), static_cast<int64_t>(unique.size())).first;
        unique.push_back(reqs[i].image.get());
      }
      row_photo.push_back(it->second);
    }
    // Page-locked on the way to a GPU: the copy then overlaps the host's prompt work.
    return pixel_batch(unique, b_.image_cfg, dev_.is_cuda()).to(dev_, /*non_blocking=*/true);
  }

  // Encoder output for `rows`: the image side once per photo, the encoder once per request.
  std::pair<torch::Tensor, torch::Tensor> encode_rows(const std::vector<AnswerRequest>& reqs,
                                                      const std::vector<size_t>& rows) {
    std::vector<int64_t> row_photo;
    torch::Tensor pixels = photos_of(reqs, rows, row_photo);
    std::vector<std::string> prompts;
    for (size_t i : rows) prompts.push_back(reqs[i].prompt);
    TokenBatch tb = prompt_batch(*b_.tokenizer, prompts, b_.cfg);
    torch::Tensor feats = b_.model->image_features(pixels).index_select(0, torch::tensor(row_photo, torch::kLong).to(dev_));
    return b_.model->encode(feats, tb.ids.to(dev_), tb.mask.to(dev_));
  }

  void generate_free(const std::vector<AnswerRequest>& reqs, const std::vector<size_t>& rows,
                     const GenerationOptions& opts, std::vector<Answer>& out) {
    torch::Tensor ids;
    if (fast_ && StaticGreedyGenerator::supports(opts)) {
      std::vector<int64_t> row_photo;
      torch::Tensor pixels = photos_of(reqs, rows, row_photo);
      std::vector<std::string> prompts;
      for (size_t i : rows) prompts.push_back(reqs[i].prompt);
      TokenBatch tb = prompt_batch(*b_.tokenizer, prompts, b_.cfg);
      ids = fast_->generate(pixels, row_photo, tb.ids, tb.mask, opts);
    } else {
      auto enc = encode_rows(reqs, rows);
      ids = generate_tokens(b_.model->language_model, enc.first, enc.second, opts).cpu();
    }
    for (size_t r = 0; r < rows.size(); ++r)
      out[rows[r]].text =
          b_.tokenizer->decode(strip_generated(ids[static_cast<int64_t>(r)], b_.cfg.text.eos_token_id, b_.cfg.text.pad_token_id));
  }

  // Every candidate of every request in one teacher-forced decoder pass (infer/choice.h).
  void score_choices(const std::vector<AnswerRequest>& reqs, const std::vector<size_t>& rows, std::vector<Answer>& out) {
    auto enc = encode_rows(reqs, rows);
    std::vector<int64_t> candidate_row;
    std::vector<std::string> texts;
    for (size_t r = 0; r < rows.size(); ++r)
      for (const std::string& c : reqs[rows[r]].candidates) {
        candidate_row.push_back(static_cast<int64_t>(r));
        texts.push_back(c);
      }
    torch::Tensor ll = candidate_log_likelihoods(b_.model->language_model, enc.first, enc.second,
                                                 torch::tensor(candidate_row, torch::kLong), label_batch(*b_.tokenizer, texts))
                           .to(torch::kDouble)
                           .cpu();
    const double* p = ll.data_ptr<double>();
    for (size_t r = 0, k = 0; r < rows.size(); ++r) {
      const AnswerRequest& req = reqs[rows[r]];
      Answer& a = out[rows[r]];
      a.log_likelihoods.assign(p + k, p + k + req.candidates.size());
      k += req.candidates.size();
      std::vector<double> prob = choice_probabilities(a.log_likelihoods, req.temperature);
      size_t best = static_cast<size_t>(std::max_element(prob.begin(), prob.end()) - prob.begin());
      a.text = req.candidates[best];
      a.confidence = prob[best];
    }
  }

  Blip2Bundle b_;
  torch::Device dev_;
  std::unique_ptr<StaticGreedyGenerator> fast_;
  std::mutex mu_;
};

}  // namespace

std::unique_ptr<Answerer> make_blip2_answerer(const Blip2Bundle& bundle, const torch::Device& dev, bool static_greedy) {
  return std::make_unique<Blip2Answerer>(bundle, dev, static_greedy);
}

std::unique_ptr<Answerer> load_answerer(const std::string& model_dir, const LoadOptions& opts) {
  torch::Device dev(opts.device);
  if (dev.is_cuda() && !torch::cuda::is_available()) throw Error("--device cuda: no CUDA device is available");
  torch::ScalarType dt = parse_dtype_name(opts.dtype, dev);
  // On a GPU greedy answers go through CUDA graphs; on the CPU the eager path is as fast.
  return std::make_unique<Blip2Answerer>(load_model_dir(model_dir, dev, dt, opts.quantize), dev, dev.is_cuda() && cuda_graphs_available());
}

}  // namespace tailor
