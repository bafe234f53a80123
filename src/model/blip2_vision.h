// BLIP-2's vision tower (EVA ViT-g for the xl checkpoints), as HF's Blip2VisionModel: patch + class
// embeddings with learned positions, pre-LN encoder layers (one fused qkv Linear whose bias is
// cat(q_bias, 0, v_bias)), post_layernorm over all tokens.
#pragma once
#include <torch/torch.h>

#include "model/config.h"
#include "model/layers.h"

namespace tailor {

struct Blip2VisionEmbeddingsImpl : torch::nn::Module {
  explicit Blip2VisionEmbeddingsImpl(const VisionConfig& c);
  torch::Tensor forward(const torch::Tensor& pixel_values);  // [B,3,H,W] -> [B, 1+P, D]
  torch::Tensor class_embedding, position_embedding;
  torch::nn::Conv2d patch_embedding{nullptr};
};
TORCH_MODULE(Blip2VisionEmbeddings);

struct Blip2AttentionImpl : torch::nn::Module {
  explicit Blip2AttentionImpl(const VisionConfig& c);
  torch::Tensor forward(const torch::Tensor& x);
  Linear qkv{nullptr}, projection{nullptr};
  int64_t num_heads, head_dim;
};
TORCH_MODULE(Blip2Attention);

struct Blip2MLPImpl : torch::nn::Module {
  explicit Blip2MLPImpl(const VisionConfig& c);
  torch::Tensor forward(const torch::Tensor& x);
  Linear fc1{nullptr}, fc2{nullptr};
  std::string act;
};
TORCH_MODULE(Blip2MLP);

struct Blip2EncoderLayerImpl : torch::nn::Module {
  explicit Blip2EncoderLayerImpl(const VisionConfig& c);
  torch::Tensor forward(const torch::Tensor& x);
  Blip2Attention self_attn{nullptr};
  LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
  Blip2MLP mlp{nullptr};
};
TORCH_MODULE(Blip2EncoderLayer);

struct Blip2EncoderImpl : torch::nn::Module {
  explicit Blip2EncoderImpl(const VisionConfig& c);
  torch::nn::ModuleList layers;
};
TORCH_MODULE(Blip2Encoder);

struct Blip2VisionModelImpl : torch::nn::Module {
  explicit Blip2VisionModelImpl(const VisionConfig& c);
  torch::Tensor forward(const torch::Tensor& pixel_values);  // last_hidden_state after post_layernorm
  Blip2VisionEmbeddings embeddings{nullptr};
  Blip2Encoder encoder{nullptr};
  LayerNorm post_layernorm{nullptr};
};
TORCH_MODULE(Blip2VisionModel);

}  // namespace tailor
