// BLIP-2's Q-Former, as HF's Blip2QFormerModel used by Blip2ForConditionalGeneration: learned query
// tokens through `layernorm`, then BERT-style post-LN layers: self-attention every layer,
// cross-attention to the image on layers i % cross_attention_frequency == 0, and the query
// feed-forward (intermediate_query / output_query).
#pragma once
#include <torch/torch.h>

#include "model/config.h"
#include "model/layers.h"

namespace tailor {

struct Blip2QFormerMultiHeadAttentionImpl : torch::nn::Module {
  Blip2QFormerMultiHeadAttentionImpl(const QFormerConfig& c, bool is_cross_attention);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& kv_source);
  Linear query{nullptr}, key{nullptr}, value{nullptr};
  int64_t num_heads, head_dim;
  double dropout;
};
TORCH_MODULE(Blip2QFormerMultiHeadAttention);

// dense -> dropout -> LayerNorm(h + input): BertSelfOutput / BertOutput.
struct Blip2QFormerOutputImpl : torch::nn::Module {
  Blip2QFormerOutputImpl(int64_t in, const QFormerConfig& c);
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& input);
  Linear dense{nullptr};
  tailor::LayerNorm LayerNorm{nullptr};
  double dropout;
};
TORCH_MODULE(Blip2QFormerOutput);

struct Blip2QFormerAttentionImpl : torch::nn::Module {
  Blip2QFormerAttentionImpl(const QFormerConfig& c, bool is_cross_attention);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& kv_source);
  Blip2QFormerMultiHeadAttention attention{nullptr};
  Blip2QFormerOutput output{nullptr};
};
TORCH_MODULE(Blip2QFormerAttention);

struct Blip2QFormerIntermediateImpl : torch::nn::Module {
  explicit Blip2QFormerIntermediateImpl(const QFormerConfig& c);
  torch::Tensor forward(const torch::Tensor& x);
  Linear dense{nullptr};
  std::string act;
};
TORCH_MODULE(Blip2QFormerIntermediate);

struct Blip2QFormerLayerImpl : torch::nn::Module {
  Blip2QFormerLayerImpl(const QFormerConfig& c, int64_t layer_idx);
  torch::Tensor forward(const torch::Tensor& queries, const torch::Tensor& image_embeds);
  Blip2QFormerAttention attention{nullptr}, crossattention{nullptr};
  Blip2QFormerIntermediate intermediate_query{nullptr};
  Blip2QFormerOutput output_query{nullptr};
};
TORCH_MODULE(Blip2QFormerLayer);

struct Blip2QFormerEncoderImpl : torch::nn::Module {
  explicit Blip2QFormerEncoderImpl(const QFormerConfig& c);
  torch::nn::ModuleList layer;
};
TORCH_MODULE(Blip2QFormerEncoder);

struct Blip2QFormerModelImpl : torch::nn::Module {
  explicit Blip2QFormerModelImpl(const QFormerConfig& c);
  // query_embeds [B,Q,H], image_embeds [B,S,Dv] -> [B,Q,H]
  torch::Tensor forward(const torch::Tensor& query_embeds, const torch::Tensor& image_embeds);
  LayerNorm layernorm{nullptr};
  Blip2QFormerEncoder encoder{nullptr};
  double dropout;
};
TORCH_MODULE(Blip2QFormerModel);

}  // namespace tailor
