#include "infer/generate.h"

#include <ATen/CPUGeneratorImpl.h>

#include "util/error.h"

namespace tailor {

using torch::Tensor;

// Logits [B,V] for the newest token of each row, given the cache.
static Tensor step_logits(T5ForConditionalGeneration& lm, const Tensor& tokens, T5DecoderCache& cache) {
  Tensor h = lm->decoder->decode_step(lm->decoder_embed(tokens), cache);
  return lm->lm_logits(h).select(1, h.size(1) - 1).to(torch::kFloat);
}

static void apply_min_new_tokens(Tensor& scores, int64_t generated, const GenerationOptions& o, int64_t eos) {
  if (generated < o.min_new_tokens) scores.select(1, eos).fill_(-std::numeric_limits<float>::infinity());
}

static Tensor sample_next(const Tensor& logits, const GenerationOptions& o, torch::Generator& gen) {
  Tensor l = logits / std::max(o.temperature, 1e-5f);
  if (o.top_p < 1.0f) {
    auto sorted = l.sort(-1, /*descending=*/false);
    Tensor probs = torch::softmax(std::get<0>(sorted), -1).cumsum(-1);
    Tensor remove_sorted = probs <= (1.0 - o.top_p);
    remove_sorted.select(1, remove_sorted.size(1) - 1).fill_(false);  // keep at least one
    Tensor remove = remove_sorted.scatter(1, std::get<1>(sorted), remove_sorted);
    l = l.masked_fill(remove, -std::numeric_limits<float>::infinity());
  }
  return torch::multinomial(torch::softmax(l, -1), 1, false, gen).squeeze(1);
}

static Tensor greedy(T5ForConditionalGeneration& lm, const Tensor& enc_hidden, const Tensor& enc_mask,
                     const GenerationOptions& o) {
  const T5Config& c = lm->cfg;
  int64_t B = enc_hidden.size(0);
  T5DecoderCache cache;
  lm->decoder->init_cache(cache, enc_hidden, enc_mask);
  auto lo = torch::TensorOptions().dtype(torch::kLong).device(enc_hidden.device());
  Tensor tokens = torch::full({B, 1}, c.decoder_start_token_id, lo);
  Tensor unfinished = torch::ones({B}, lo);
  std::vector<Tensor> out;
  torch::Generator gen;
  if (o.do_sample) {
    gen = at::detail::createCPUGenerator(o.seed);
  }
  for (int64_t t = 0; t < o.max_new_tokens; ++t) {
    Tensor scores = step_logits(lm, tokens, cache);
    apply_min_new_tokens(scores, t, o, c.eos_token_id);
    Tensor next = o.do_sample ? sample_next(scores.cpu(), o, gen).to(scores.device()) : scores.argmax(-1);
    next = next * unfinished + c.pad_token_id * (1 - unfinished);
    out.push_back(next);
    unfinished = unfinished * (next != c.eos_token_id).to(torch::kLong);
    // One host sync per step: stop when every row has finished.
    if (unfinished.max().item<int64_t>() == 0) break;
    tokens = next.unsqueeze(1);
  }
  return torch::stack(out, 1);
}

// HF 5.x's vectorised beam search (generation/utils.py _beam_search), with its defaults:
// early_stopping=false, num_return_sequences=1, one eos token.
static Tensor beam_search(T5ForConditionalGeneration& lm, const Tensor& enc_hidden, const Tensor& enc_mask,
                          const GenerationOptions& o) {
  const T5Config& c = lm->cfg;
  const int64_t B = enc_hidden.size(0), K = o.num_beams, V = c.vocab_size;
  const int64_t prompt_len = 1, max_length = prompt_len + o.max_new_tokens;
  const int64_t keep = 2 * K;  // max(2, 1 + n_eos) * num_beams
  auto dev = enc_hidden.device();
  auto lo = torch::TensorOptions().dtype(torch::kLong).device(dev);
  auto fo = torch::TensorOptions().dtype(torch::kFloat).device(dev);
  const double lp = o.length_penalty;
  const int64_t fill = c.pad_token_id != 0 ? c.pad_token_id : c.eos_token_id;  // `pad or eos` in HF

  T5DecoderCache cache;
  lm->decoder->init_cache(cache, enc_hidden.repeat_interleave(K, 0), enc_mask.repeat_interleave(K, 0));
  Tensor running_seq = torch::full({B, K, max_length}, fill, lo);
  running_seq.narrow(2, 0, 1).fill_(c.decoder_start_token_id);
  Tensor sequences = running_seq.clone();
  Tensor running_scores = torch::zeros({B, K}, fo);
  running_scores.narrow(1, 1, K - 1).fill_(-1e9);
  Tensor beam_scores = torch::full({B, K}, -1e9, fo);
  Tensor finished = torch::zeros({B, K}, torch::TensorOptions().dtype(torch::kBool).device(dev));
  Tensor heuristic_unsat = torch::ones({B, 1}, torch::TensorOptions().dtype(torch::kBool).device(dev));
  // Generated length of each kept sequence (HF tracks beam indices; only their count is used).
  Tensor running_len = torch::zeros({B, K}, lo), seq_len = torch::zeros({B, K}, lo);
  Tensor top_mask = torch::cat({torch::ones({K}, torch::kBool), torch::zeros({keep - K}, torch::kBool)}).to(dev);

  auto gather = [](const Tensor& t, const Tensor& idx) {
    Tensor i = idx;
    while (i.dim() < t.dim()) i = i.unsqueeze(-1);
    std::vector<int64_t> shape = t.sizes().vec();
    shape[1] = idx.size(1);
    return t.gather(1, i.expand(shape));
  };

  int64_t cur_len = prompt_len;
  Tensor last_tokens = running_seq.narrow(2, 0, 1).reshape({B * K, 1});
  while (true) {
    Tensor logits = step_logits(lm, last_tokens, cache);  // [B*K, V]
    Tensor log_probs = torch::log_softmax(logits, -1);
    apply_min_new_tokens(log_probs, cur_len - prompt_len, o, c.eos_token_id);
    log_probs = log_probs.view({B, K, V}) + running_scores.unsqueeze(2);
    log_probs = log_probs.reshape({B, K * V});

    auto top = torch::topk(log_probs, keep);
    Tensor topk_lp = std::get<0>(top), topk_idx = std::get<1>(top);
    Tensor topk_beam = topk_idx.div(V, "floor");
    Tensor topk_ids = topk_idx.remainder(V);
    Tensor topk_seq = gather(running_seq, topk_beam);
    topk_seq.select(2, cur_len).copy_(topk_ids);
    Tensor topk_len = gather(running_len, topk_beam) + 1;
    Tensor batch_offset = torch::arange(B, lo).view({-1, 1}) * K;
    Tensor topk_flat_beam = topk_beam + batch_offset;  // which cache row each candidate extends

    Tensor hits = (topk_ids == c.eos_token_id) | torch::full_like(topk_ids, cur_len + 1 >= max_length, torch::kBool);

    // Running beams for the next step: best K candidates that did not stop.
    Tensor run_lp = topk_lp + hits.to(torch::kFloat) * -1e9;
    Tensor next_idx = std::get<1>(torch::topk(run_lp, K));
    running_seq = gather(topk_seq, next_idx);
    running_scores = gather(run_lp, next_idx);
    running_len = gather(topk_len, next_idx);
    Tensor cache_rows = gather(topk_flat_beam, next_idx).reshape({B * K});

    // Finished hypotheses.
    Tensor just_finished = hits & top_mask.unsqueeze(0);
    Tensor fin_lp = topk_lp / std::pow(static_cast<double>(cur_len + 1 - prompt_len), lp);
    fin_lp = fin_lp + (~heuristic_unsat).to(torch::kFloat) * -1e9;
    fin_lp = fin_lp + (~just_finished).to(torch::kFloat) * -1e9;
    Tensor m_seq = torch::cat({sequences, topk_seq}, 1);
    Tensor m_scores = torch::cat({beam_scores, fin_lp}, 1);
    Tensor m_fin = torch::cat({finished, just_finished}, 1);
    Tensor m_len = torch::cat({seq_len, topk_len}, 1);
    Tensor m_idx = std::get<1>(torch::topk(m_scores, K));
    sequences = gather(m_seq, m_idx);
    beam_scores = gather(m_scores, m_idx);
    finished = gather(m_fin, m_idx);
    seq_len = gather(m_len, m_idx);

    cache.reorder(cache_rows);
    cur_len += 1;
    // Early-stop heuristic (early_stopping=false): best running score at the current length vs the
    // worst finished one.
    Tensor best_running = running_scores.narrow(1, 0, 1) / std::pow(static_cast<double>(cur_len - prompt_len), lp);
    Tensor worst_fin = torch::where(finished, std::get<0>(beam_scores.min(1, true)), torch::full_like(beam_scores, -1e9));
    heuristic_unsat = heuristic_unsat & (best_running > worst_fin).any(-1, true);
    bool improvement_possible = heuristic_unsat.any().item<bool>();
    bool valid_continuations = !hits.all().item<bool>();
    if (!improvement_possible || !valid_continuations) break;
    last_tokens = running_seq.select(2, cur_len - 1).reshape({B * K, 1});
  }
  Tensor best = sequences.select(1, 0);                 // [B, max_length]
  int64_t gen_len = seq_len.select(1, 0).max().item<int64_t>();
  return best.narrow(1, prompt_len, gen_len);
}

Tensor generate_tokens(T5ForConditionalGeneration& lm, const Tensor& enc_hidden, const Tensor& enc_mask,
                       const GenerationOptions& o) {
  if (o.max_new_tokens < 1) throw Error("max_new_tokens must be at least 1");
  if (o.num_beams < 1) throw Error("num_beams must be at least 1");
  torch::NoGradGuard ng;
  if (o.num_beams == 1) return greedy(lm, enc_hidden, enc_mask, o);
  if (o.do_sample) throw Error("sampling with beam search is not supported; use num_beams=1");
  return beam_search(lm, enc_hidden, enc_mask, o);
}

std::vector<int64_t> strip_generated(const Tensor& row, int64_t eos_id, int64_t pad_id) {
  Tensor r = row.to(torch::kCPU).contiguous();
  std::vector<int64_t> out;
  const int64_t* p = r.data_ptr<int64_t>();
  for (int64_t i = 0; i < r.numel(); ++i) {
    if (p[i] == eos_id) break;
    out.push_back(p[i]);
  }
  while (!out.empty() && out.back() == pad_id) out.pop_back();
  return out;
}

}  // namespace tailor
