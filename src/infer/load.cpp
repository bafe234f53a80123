// The Answerer behind `tailor ask`, serving and describing: a loaded model directory that answers
// batches of (photo, question), running the vision tower and Q-Former once per distinct photo.
#include "infer/load.h"

#include "infer/blip2_answerer.h"

#include <map>
#include <mutex>

#include "infer/batch.h"
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

  std::vector<std::string> answer(const std::vector<AnswerRequest>& reqs, const GenerationOptions& opts) override {
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
    std::map<const ImageRGB*, int64_t> slot;
    std::vector<const ImageRGB*> unique;
    std::vector<int64_t> row_of;
    for (const auto& r : reqs) {
      if (!r.image) throw Error("a request has no image");
      auto it = slot.find(r.image.get());
      if (it == slot.end()) {
        it = slot.emplace(r.image.get(), static_cast<int64_t>(unique.size())).first;
        unique.push_back(r.image.get());
      }
      row_of.push_back(it->second);
    }
    // Page-locked on the way to a GPU: the copy then overlaps the host's prompt work.
    torch::Tensor pixels = pixel_batch(unique, b_.image_cfg, dev_.is_cuda()).to(dev_, /*non_blocking=*/true);
    std::vector<std::string> prompts;
    for (const auto& r : reqs) prompts.push_back(r.prompt);
    TokenBatch tb = prompt_batch(*b_.tokenizer, prompts, b_.cfg);
    torch::Tensor out;
    if (fast_ && StaticGreedyGenerator::supports(opts)) {
      out = fast_->generate(pixels, row_of, tb.ids, tb.mask, opts);
    } else {
      torch::Tensor feats = b_.model->image_features(pixels);
      torch::Tensor index = torch::tensor(row_of, torch::kLong).to(dev_);
      feats = feats.index_select(0, index);
      auto enc = b_.model->encode(feats, tb.ids.to(dev_), tb.mask.to(dev_));
      out = generate_tokens(b_.model->language_model, enc.first, enc.second, opts).cpu();
    }
    std::vector<std::string> texts;
    for (int64_t i = 0; i < out.size(0); ++i)
      texts.push_back(b_.tokenizer->decode(strip_generated(out[i], b_.cfg.text.eos_token_id, b_.cfg.text.pad_token_id)));
    return texts;
  }

  const TaskInfo& task() const override { return b_.task; }
  std::string name() const override { return b_.dir; }

 private:
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
  return std::make_unique<Blip2Answerer>(load_model_dir(model_dir, dev, dt), dev, dev.is_cuda() && cuda_graphs_available());
}

}  // namespace tailor
