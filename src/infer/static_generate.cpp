#include "infer/static_generate.h"

#include <limits>

#include "util/error.h"

namespace tailor {

using torch::Tensor;

int64_t bucket_pow2(int64_t n) {
  int64_t b = 1;
  while (b < n) b *= 2;
  return b;
}

// The image side for U photos: pixels in, language-model features out.
struct StaticGreedyGenerator::ImageStage {
  Tensor pixels;  // [U,3,H,W] float32, written before each replay
  Tensor feats;   // [U,Q,D], written by the graph
  CudaGraph graph;
};

// The language side for R rows of T prompt tokens and up to N new tokens.
struct StaticGreedyGenerator::TextStage {
  Tensor feats_rows;               // [R,Q,D] each row's photo features
  Tensor ids, mask, slot;          // [R,T] int64
  Tensor eos_penalty;              // [N] float32: -inf while fewer than min_new_tokens are generated
  T5StaticCache cache;
  Tensor tok, unfinished, out;     // [R,1], [R], [R,N] int64
  CudaGraph encode, step;
};

StaticGreedyGenerator::StaticGreedyGenerator(Blip2ForConditionalGeneration model, bool use_graphs)
    : m_(std::move(model)), use_graphs_(use_graphs) {
  const Tensor& w = m_->language_model->shared->weight;
  opts_ = torch::TensorOptions().dtype(w.scalar_type()).device(w.device());
  if (use_graphs_ && !w.is_cuda()) throw Error("CUDA graphs need the model on a CUDA device");
}

StaticGreedyGenerator::~StaticGreedyGenerator() = default;

StaticGreedyGenerator::ImageStage& StaticGreedyGenerator::image_stage(int64_t U) {
  auto it = images_.find(U);
  if (it != images_.end()) return *it->second;
  auto st = std::make_unique<ImageStage>();
  const auto& v = m_->cfg.vision;
  st->pixels = torch::zeros({U, 3, v.image_size, v.image_size}, opts_.dtype(torch::kFloat));
  ImageStage* s = st.get();
  s->graph.capture([this, s] { s->feats = m_->image_features(s->pixels); }, use_graphs_);
  graphs_ += use_graphs_;
  return *images_.emplace(U, std::move(st)).first->second;
}

StaticGreedyGenerator::TextStage& StaticGreedyGenerator::text_stage(int64_t R, int64_t T, int64_t N) {
  auto key = std::make_tuple(R, T, N);
  auto it = texts_.find(key);
  if (it != texts_.end()) return *it->second;
  // Clients choose prompt lengths and max_new_tokens: keep the number of stages (and of graph memory
  // pools) bounded by starting over when it grows large.
  if (texts_.size() >= kMaxTextStages) texts_.clear();
  auto st = std::make_unique<TextStage>();
  TextStage* s = st.get();
  const Blip2Config& c = m_->cfg;
  const T5Config& tc = c.text;
  auto lo = opts_.dtype(torch::kLong);
  s->feats_rows = torch::zeros({R, c.num_query_tokens, tc.d_model}, opts_);
  s->ids = torch::full({R, T}, tc.pad_token_id, lo);
  s->mask = torch::ones({R, T}, lo);
  s->slot = torch::full({R, T}, -1, lo);
  s->eos_penalty = torch::zeros({N}, opts_.dtype(torch::kFloat));
  int64_t S = c.image_token_index >= 0 ? T : c.num_query_tokens + T;  // older checkpoints put the queries in front
  auto& lm = m_->language_model;
  lm->decoder->alloc_static_cache(s->cache, R, S, N, opts_);
  s->tok = torch::zeros({R, 1}, lo);
  s->unfinished = torch::ones({R}, lo);
  s->out = torch::zeros({R, N}, lo);
  s->encode.capture(
      [this, s] {
        auto& lm = m_->language_model;
        auto [embeds, mask] = m_->encoder_inputs_by_slot(s->feats_rows, s->ids, s->mask, s->slot);
        Tensor hidden = lm->encoder->encode(embeds, mask);
        lm->decoder->fill_static_cache(s->cache, hidden, mask);
        s->tok.fill_(lm->cfg.decoder_start_token_id);
        s->unfinished.fill_(1);
        s->out.fill_(lm->cfg.pad_token_id);
      },
      use_graphs_);
  // One warm-up step only: each call advances the position, and N may be 1.
  s->step.capture(
      [this, s] {
        auto& lm = m_->language_model;
        const T5Config& tc = lm->cfg;
        Tensor h = lm->decoder->decode_step_static(lm->decoder_embed(s->tok), s->cache);
        Tensor scores = lm->lm_logits(h).select(1, 0).to(torch::kFloat);  // [R,V]
        scores.select(1, tc.eos_token_id).add_(s->eos_penalty.index_select(0, s->cache.position));
        Tensor next = scores.argmax(-1);
        next = next * s->unfinished + tc.pad_token_id * (1 - s->unfinished);
        s->out.index_copy_(1, s->cache.position, next.unsqueeze(1));
        s->unfinished.mul_((next != tc.eos_token_id).to(torch::kLong));
        s->tok.copy_(next.unsqueeze(1));
        s->cache.position.add_(1);
      },
      use_graphs_, /*warmups=*/1);
  graphs_ += 2 * use_graphs_;
  return *texts_.emplace(key, std::move(st)).first->second;
}

Tensor StaticGreedyGenerator::generate(const Tensor& pixels, const std::vector<int64_t>& row_image, const Tensor& ids,
                                       const Tensor& mask, const GenerationOptions& o) {
  if (!supports(o)) throw Error("the static generator does greedy decoding only");
  if (o.max_new_tokens < 1) throw Error("max_new_tokens must be at least 1");
  const int64_t U = pixels.size(0), R = ids.size(0), T = ids.size(1), N = o.max_new_tokens;
  if (static_cast<int64_t>(row_image.size()) != R) throw Error("static generator: one photo index per row needed");
  torch::NoGradGuard ng;
  const T5Config& tc = m_->cfg.text;

  ImageStage& img = image_stage(bucket_pow2(U));
  img.pixels.narrow(0, 0, U).copy_(pixels, /*non_blocking=*/true);
  img.graph.replay();

  // Rows padded to a power of two (copies of row 0), prompts to a multiple of 8 (masked pad tokens).
  const int64_t Rb = bucket_pow2(R), Tb = (T + 7) / 8 * 8;
  Tensor ids_p = torch::full({Rb, Tb}, tc.pad_token_id, torch::kLong);
  Tensor mask_p = torch::zeros({Rb, Tb}, torch::kLong);
  ids_p.narrow(0, 0, R).narrow(1, 0, T).copy_(ids);
  mask_p.narrow(0, 0, R).narrow(1, 0, T).copy_(mask);
  std::vector<int64_t> rows(row_image);
  for (int64_t r = R; r < Rb; ++r) {
    ids_p[r].copy_(ids_p[0]);
    mask_p[r].copy_(mask_p[0]);
    rows.push_back(row_image[0]);
  }
  for (int64_t u : rows)
    if (u < 0 || u >= U) throw Error("static generator: photo index " + std::to_string(u) + " out of range");
  Tensor slot_p = m_->image_slots(ids_p);

  TextStage& txt = text_stage(Rb, Tb, N);
  auto dev = opts_.device();
  txt.feats_rows.copy_(img.feats.index_select(0, torch::tensor(rows, torch::kLong).to(dev)));
  txt.ids.copy_(ids_p);
  txt.mask.copy_(mask_p);
  txt.slot.copy_(slot_p);
  Tensor pen = torch::zeros({N}, torch::kFloat);
  pen.narrow(0, 0, std::min<int64_t>(std::max(o.min_new_tokens, 0), N)).fill_(-std::numeric_limits<float>::infinity());
  txt.eos_penalty.copy_(pen);
  txt.encode.replay();
  int64_t steps = 0;
  while (steps < N) {
    txt.step.replay();
    ++steps;
    if (txt.unfinished.narrow(0, 0, R).max().item<int64_t>() == 0) break;  // the one host sync per step
  }
  return txt.out.narrow(0, 0, R).narrow(1, 0, steps).cpu();
}

}  // namespace tailor
