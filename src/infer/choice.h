// Choice answering: the likelihood of each allowed answer, instead of free generation. Every candidate
// answer text of every request is scored by teacher forcing in one batched decoder pass, with the
// image side, the encoder and the cross-attention keys/values computed once per request.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "model/t5.h"

namespace tailor {

// Sum over the answer's tokens (eos included, as the training labels) of log p(token | photo, prompt,
// previous tokens), for candidate rows of labels [N,L] (-100 padded, label_batch) whose request is
// candidate_request [N] (int64, rows of enc_hidden [B,S,D] / enc_mask [B,S]). Returns [N] float32 on
// the labels' device. Padding and the other candidates don't change a candidate's score.
torch::Tensor candidate_log_likelihoods(T5ForConditionalGeneration& lm, const torch::Tensor& enc_hidden,
                                        const torch::Tensor& enc_mask, const torch::Tensor& candidate_request,
                                        const torch::Tensor& labels);

// softmax(log_likelihoods / temperature) over one request's candidates, in float64.
std::vector<double> choice_probabilities(const std::vector<double>& log_likelihoods, double temperature = 1.0);

}  // namespace tailor
