// Text generation for the T5 decoder, separate from the model: greedy and beam search over one
// encoder pass, with a key/value cache for decoder self-attention and cross-attention K/V computed
// once. Both follow HF transformers 5.x's algorithms step for step (same scores, same stopping rules,
// same fill values), so token ids can be compared with HF's directly.
#pragma once
#include <torch/torch.h>

#include "infer/answerer.h"
#include "model/t5.h"

namespace tailor {

// enc_hidden [B,S,D], enc_mask [B,S]. Returns [B, L] token ids as HF's generate() without the
// decoder start token: greedy pads finished rows with pad_token_id; beam search returns the best beam
// and fills with HF's fill value (pad, or eos when pad is 0).
torch::Tensor generate_tokens(T5ForConditionalGeneration& lm, const torch::Tensor& enc_hidden,
                              const torch::Tensor& enc_mask, const GenerationOptions& opts);

// Ids of one row up to (not including) the first eos / pad-after-content.
std::vector<int64_t> strip_generated(const torch::Tensor& row, int64_t eos_id, int64_t pad_id);

}  // namespace tailor
