#include "model/blip2_vision.h"

#include <cmath>

namespace tailor {

using torch::Tensor;

Blip2VisionEmbeddingsImpl::Blip2VisionEmbeddingsImpl(const VisionConfig& c) {
  class_embedding = register_parameter("class_embedding", torch::randn({1, 1, c.hidden_size}));
  patch_embedding = register_module(
      "patch_embedding",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(3, c.hidden_size, c.patch_size).stride(c.patch_size)));
  position_embedding = register_parameter("position_embedding", torch::randn({1, c.num_positions(), c.hidden_size}));
}

Tensor Blip2VisionEmbeddingsImpl::forward(const Tensor& pixel_values) {
  auto dt = patch_embedding->weight.scalar_type();
  int64_t B = pixel_values.size(0);
  Tensor patches = patch_embedding->forward(pixel_values.to(dt)).flatten(2).transpose(1, 2);  // [B,P,D]
  Tensor cls = class_embedding.expand({B, 1, -1}).to(dt);
  Tensor e = torch::cat({cls, patches}, 1);
  return e + position_embedding.narrow(1, 0, e.size(1)).to(dt);
}

Blip2AttentionImpl::Blip2AttentionImpl(const VisionConfig& c)
    : num_heads(c.num_attention_heads), head_dim(c.hidden_size / c.num_attention_heads) {
  qkv = register_module("qkv", Linear(c.hidden_size, 3 * c.hidden_size, c.qkv_bias));
  projection = register_module("projection", Linear(c.hidden_size, c.hidden_size, true));
  if (c.qkv_bias) {
    torch::NoGradGuard ng;
    qkv->bias.zero_();
  }
}

Tensor Blip2AttentionImpl::forward(const Tensor& x) {
  int64_t B = x.size(0), T = x.size(1), D = x.size(2);
  Tensor mixed = qkv->forward(x).reshape({B, T, 3, num_heads, head_dim}).permute({2, 0, 3, 1, 4});
  Tensor out = attention(mixed[0], mixed[1], mixed[2], Tensor(), std::pow(static_cast<double>(head_dim), -0.5), 0.0,
                         false);
  return projection->forward(out.transpose(1, 2).reshape({B, T, D}));
}

Blip2MLPImpl::Blip2MLPImpl(const VisionConfig& c) : act(c.hidden_act) {
  fc1 = register_module("fc1", Linear(c.hidden_size, c.intermediate_size, true));
  fc2 = register_module("fc2", Linear(c.intermediate_size, c.hidden_size, true));
}

Tensor Blip2MLPImpl::forward(const Tensor& x) { return fc2->forward(activation(fc1->forward(x), act)); }

Blip2EncoderLayerImpl::Blip2EncoderLayerImpl(const VisionConfig& c) {
  self_attn = register_module("self_attn", Blip2Attention(c));
  layer_norm1 = register_module("layer_norm1", LayerNorm(c.hidden_size, c.layer_norm_eps));
  mlp = register_module("mlp", Blip2MLP(c));
  layer_norm2 = register_module("layer_norm2", LayerNorm(c.hidden_size, c.layer_norm_eps));
}

Tensor Blip2EncoderLayerImpl::forward(const Tensor& x) {
  Tensor h = x + self_attn->forward(layer_norm1->forward(x));
  return h + mlp->forward(layer_norm2->forward(h));
}

Blip2EncoderImpl::Blip2EncoderImpl(const VisionConfig& c) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(Blip2EncoderLayer(c));
}

Blip2VisionModelImpl::Blip2VisionModelImpl(const VisionConfig& c) {
  embeddings = register_module("embeddings", Blip2VisionEmbeddings(c));
  encoder = register_module("encoder", Blip2Encoder(c));
  post_layernorm = register_module("post_layernorm", LayerNorm(c.hidden_size, c.layer_norm_eps));
}

Tensor Blip2VisionModelImpl::forward(const Tensor& pixel_values) {
  Tensor h = embeddings->forward(pixel_values);
  for (size_t i = 0; i < encoder->layers->size(); ++i) h = encoder->layers->ptr<Blip2EncoderLayerImpl>(i)->forward(h);
  return post_layernorm->forward(h);
}

}  // namespace tailor
