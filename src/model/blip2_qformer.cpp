#include "model/blip2_qformer.h"

#include <cmath>

namespace tailor {

using torch::Tensor;
namespace F = torch::nn::functional;

Blip2QFormerMultiHeadAttentionImpl::Blip2QFormerMultiHeadAttentionImpl(const QFormerConfig& c, bool cross)
    : num_heads(c.num_attention_heads),
      head_dim(c.hidden_size / c.num_attention_heads),
      dropout(c.attention_probs_dropout_prob) {
  int64_t kv_in = cross ? c.encoder_hidden_size : c.hidden_size;
  query = register_module("query", Linear(c.hidden_size, c.hidden_size, true));
  key = register_module("key", Linear(kv_in, c.hidden_size, true));
  value = register_module("value", Linear(kv_in, c.hidden_size, true));
}

Tensor Blip2QFormerMultiHeadAttentionImpl::forward(const Tensor& x, const Tensor& src) {
  int64_t B = x.size(0), T = x.size(1), S = src.size(1);
  Tensor q = query->forward(x).view({B, T, num_heads, head_dim}).transpose(1, 2);
  Tensor k = key->forward(src).view({B, S, num_heads, head_dim}).transpose(1, 2);
  Tensor v = value->forward(src).view({B, S, num_heads, head_dim}).transpose(1, 2);
  // The image and query masks are all ones in BLIP-2 generation: no bias.
  Tensor out = attention(q, k, v, Tensor(), std::pow(static_cast<double>(head_dim), -0.5), dropout, is_training());
  return out.transpose(1, 2).reshape({B, T, num_heads * head_dim});
}

Blip2QFormerOutputImpl::Blip2QFormerOutputImpl(int64_t in, const QFormerConfig& c) : dropout(c.hidden_dropout_prob) {
  dense = register_module("dense", Linear(in, c.hidden_size, true));
  LayerNorm = register_module("LayerNorm", tailor::LayerNorm(c.hidden_size, c.layer_norm_eps));
}

Tensor Blip2QFormerOutputImpl::forward(const Tensor& h, const Tensor& input) {
  Tensor d = F::dropout(dense->forward(h), F::DropoutFuncOptions().p(dropout).training(is_training()));
  return LayerNorm->forward(d + input);
}

Blip2QFormerAttentionImpl::Blip2QFormerAttentionImpl(const QFormerConfig& c, bool cross) {
  attention = register_module("attention", Blip2QFormerMultiHeadAttention(c, cross));
  output = register_module("output", Blip2QFormerOutput(c.hidden_size, c));
}

Tensor Blip2QFormerAttentionImpl::forward(const Tensor& x, const Tensor& src) {
  return output->forward(attention->forward(x, src), x);
}

Blip2QFormerIntermediateImpl::Blip2QFormerIntermediateImpl(const QFormerConfig& c) : act(c.hidden_act) {
  dense = register_module("dense", Linear(c.hidden_size, c.intermediate_size, true));
}

Tensor Blip2QFormerIntermediateImpl::forward(const Tensor& x) { return activation(dense->forward(x), act); }

Blip2QFormerLayerImpl::Blip2QFormerLayerImpl(const QFormerConfig& c, int64_t i) {
  attention = register_module("attention", Blip2QFormerAttention(c, false));
  if (i % c.cross_attention_frequency == 0)
    crossattention = register_module("crossattention", Blip2QFormerAttention(c, true));
  intermediate_query = register_module("intermediate_query", Blip2QFormerIntermediate(c));
  output_query = register_module("output_query", Blip2QFormerOutput(c.intermediate_size, c));
}

Tensor Blip2QFormerLayerImpl::forward(const Tensor& queries, const Tensor& image_embeds) {
  Tensor h = attention->forward(queries, queries);
  if (!crossattention.is_empty()) h = crossattention->forward(h, image_embeds);
  return output_query->forward(intermediate_query->forward(h), h);
}

Blip2QFormerEncoderImpl::Blip2QFormerEncoderImpl(const QFormerConfig& c) {
  layer = register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layer->push_back(Blip2QFormerLayer(c, i));
}

Blip2QFormerModelImpl::Blip2QFormerModelImpl(const QFormerConfig& c) : dropout(c.hidden_dropout_prob) {
  layernorm = register_module("layernorm", LayerNorm(c.hidden_size, c.layer_norm_eps));
  encoder = register_module("encoder", Blip2QFormerEncoder(c));
}

Tensor Blip2QFormerModelImpl::forward(const Tensor& query_embeds, const Tensor& image_embeds) {
  Tensor h = layernorm->forward(query_embeds.to(layernorm->weight.scalar_type()));
  h = F::dropout(h, F::DropoutFuncOptions().p(dropout).training(is_training()));
  Tensor img = image_embeds.to(h.scalar_type());
  for (size_t i = 0; i < encoder->layer->size(); ++i) h = encoder->layer->ptr<Blip2QFormerLayerImpl>(i)->forward(h, img);
  return h;
}

}  // namespace tailor
