// Small BLIP-2 configurations and helpers shared by the training tests (header-only).
#pragma once
#include <torch/torch.h>

#include "model/blip2.h"
#include "model/config.h"

namespace tailor::test {

// A small BLIP-2 whose T5 attention has inner = heads*d_kv != d_model, so a swapped in/out would show.
inline Blip2Config small_config() {
  Blip2Config c;
  c.vision.hidden_size = 32;
  c.vision.intermediate_size = 64;
  c.vision.num_hidden_layers = 2;
  c.vision.num_attention_heads = 2;
  c.vision.image_size = 32;
  c.vision.patch_size = 16;
  c.qformer.hidden_size = 32;
  c.qformer.num_hidden_layers = 2;
  c.qformer.num_attention_heads = 2;
  c.qformer.intermediate_size = 64;
  c.qformer.encoder_hidden_size = 32;
  c.qformer.cross_attention_frequency = 1;
  c.num_query_tokens = 4;
  c.text.vocab_size = 64;
  c.text.d_model = 48;
  c.text.d_kv = 8;
  c.text.num_heads = 3;  // inner 24
  c.text.d_ff = 40;
  c.text.num_layers = 3;
  c.text.num_decoder_layers = 2;
  c.text.is_gated_act = true;
  c.text.feed_forward_proj = "gated-gelu";
  c.text.dense_act_fn = "gelu";
  c.text.dropout_rate = 0.0;
  return c;
}

// Relative error |a - b| / |b| in float64.
inline double rel_err(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a.to(torch::kDouble) - b.to(torch::kDouble)).norm() / b.to(torch::kDouble).norm()).item<double>();
}

}  // namespace tailor::test
