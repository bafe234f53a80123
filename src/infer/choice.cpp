#include "infer/choice.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace tailor {

using torch::Tensor;

Tensor candidate_log_likelihoods(T5ForConditionalGeneration& lm, const Tensor& enc_hidden, const Tensor& enc_mask,
                                 const Tensor& candidate_request, const Tensor& labels) {
  if (labels.dim() != 2 || candidate_request.dim() != 1 || candidate_request.size(0) != labels.size(0))
    throw Error("candidate_log_likelihoods: labels [N,L] and candidate_request [N] must agree");
  // Cross-attention keys/values once per request, then one row per candidate (a gather, no GEMM).
  T5DecoderCache cache;
  lm->decoder->init_cache(cache, enc_hidden, enc_mask);
  cache.reorder(candidate_request.to(enc_hidden.device()));
  Tensor lab = labels.to(enc_hidden.device());
  // The whole answer in one causal pass from an empty self-attention cache, as teacher forcing.
  Tensor hidden = lm->decoder->decode_step(lm->decoder_embed(lm->shift_right(lab)), cache);  // [N,L,D]
  // Logits only at the answer tokens (not the padding), and log p(token) = logit - logsumexp: no
  // [N,L,V] log_softmax is written.
  Tensor at = (lab != -100).flatten().nonzero().squeeze(1);
  int64_t L = lab.size(1);
  Tensor logits = lm->lm_logits(hidden.reshape({-1, hidden.size(2)}).index_select(0, at)).to(torch::kFloat);  // [M,V]
  Tensor token = lab.flatten().index_select(0, at);
  Tensor token_logp = logits.gather(1, token.unsqueeze(1)).squeeze(1) - torch::logsumexp(logits, 1);
  return torch::zeros({lab.size(0)}, token_logp.options()).index_add_(0, at.div(L, "floor"), token_logp);
}

std::vector<double> choice_probabilities(const std::vector<double>& ll, double temperature) {
  std::vector<double> p(ll.size());
  if (ll.empty()) return p;
  double t = temperature > 0 ? temperature : 1.0;
  double top = *std::max_element(ll.begin(), ll.end()) / t, sum = 0;
  for (size_t i = 0; i < ll.size(); ++i) sum += (p[i] = std::exp(ll[i] / t - top));
  for (double& x : p) x /= sum;
  return p;
}

}  // namespace tailor
