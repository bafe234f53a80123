// T5 encoder-decoder, as HF's modeling_t5.py (T5ForConditionalGeneration), with HF's module names:
// shared, encoder.block.N.layer.{0: SelfAttention, 1: DenseReluDense}, decoder.block.N.layer.{0:
// SelfAttention, 1: EncDecAttention, 2: DenseReluDense}, final_layer_norm, lm_head.
// RMSNorm, relative position bias from block 0 shared by the stack, no 1/sqrt(d) scaling.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "model/config.h"
#include "model/layers.h"

namespace tailor {

// RMSNorm without mean subtraction or bias; variance in float32, as HF.
struct T5LayerNormImpl : torch::nn::Module {
  T5LayerNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(T5LayerNorm);

struct T5AttentionImpl : torch::nn::Module {
  T5AttentionImpl(const T5Config& c, bool has_relative_attention_bias, bool bidirectional);
  // [B, T, D] -> [B, H, T, d_kv]
  torch::Tensor split_heads(const torch::Tensor& x) const;
  // Position bias [1, H, q_len, k_len] for queries at q_offset .. q_offset+q_len.
  torch::Tensor compute_bias(int64_t q_len, int64_t k_len, int64_t q_offset, const torch::Device& dev);
  // q from x, given k/v [B,H,S,d]; bias includes the mask. Returns o(attention) [B,T,D].
  torch::Tensor attend(const torch::Tensor& x, const torch::Tensor& k, const torch::Tensor& v,
                       const torch::Tensor& bias);

  Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};
  torch::nn::Embedding relative_attention_bias{nullptr};
  int64_t n_heads, d_kv, num_buckets, max_distance;
  bool bidirectional;
  double dropout;
};
TORCH_MODULE(T5Attention);

struct T5LayerSelfAttentionImpl : torch::nn::Module {
  T5LayerSelfAttentionImpl(const T5Config& c, bool has_bias, bool bidirectional);
  T5Attention SelfAttention{nullptr};
  T5LayerNorm layer_norm{nullptr};
  double dropout;
};
TORCH_MODULE(T5LayerSelfAttention);

struct T5LayerCrossAttentionImpl : torch::nn::Module {
  explicit T5LayerCrossAttentionImpl(const T5Config& c);
  T5Attention EncDecAttention{nullptr};
  T5LayerNorm layer_norm{nullptr};
  double dropout;
};
TORCH_MODULE(T5LayerCrossAttention);

// Gated (wi_0, wi_1, wo) or plain (wi, wo) feed-forward. `wo` may be kept in float32 when the rest
// is half precision, as HF does: the input is cast to wo's dtype.
struct T5DenseReluDenseImpl : torch::nn::Module {
  explicit T5DenseReluDenseImpl(const T5Config& c);
  torch::Tensor forward(const torch::Tensor& x);
  Linear wi{nullptr}, wi_0{nullptr}, wi_1{nullptr}, wo{nullptr};
  std::string act;
  double dropout;
};
TORCH_MODULE(T5DenseReluDense);

struct T5LayerFFImpl : torch::nn::Module {
  explicit T5LayerFFImpl(const T5Config& c);
  torch::Tensor forward(const torch::Tensor& x);
  T5DenseReluDense DenseReluDense{nullptr};
  T5LayerNorm layer_norm{nullptr};
  double dropout;
};
TORCH_MODULE(T5LayerFF);

struct T5BlockImpl : torch::nn::Module {
  T5BlockImpl(const T5Config& c, bool is_decoder, bool has_relative_attention_bias);
  T5LayerSelfAttention self_attention_layer() { return layer->ptr<T5LayerSelfAttentionImpl>(0); }
  T5LayerCrossAttention cross_attention_layer() { return layer->ptr<T5LayerCrossAttentionImpl>(1); }
  T5LayerFF ff_layer() { return layer->ptr<T5LayerFFImpl>(is_decoder ? 2 : 1); }
  torch::nn::ModuleList layer;
  bool is_decoder;
};
TORCH_MODULE(T5Block);

// The decoder's per-sequence state during generation: growing self-attention K/V per layer and the
// cross-attention K/V of the encoder output, computed once.
struct T5DecoderCache {
  std::vector<torch::Tensor> self_k, self_v;    // [B, H, t, d]
  std::vector<torch::Tensor> cross_k, cross_v;  // [B, H, S, d]
  torch::Tensor cross_bias;                     // [B, 1, 1, S] padding mask (0 / -inf-ish)
  int64_t length = 0;                           // tokens already decoded
  void reorder(const torch::Tensor& index);     // beam search: pick rows
};

// The decoder's state with fixed shapes (HF's StaticCache + cache_position): self-attention K/V for
// max_len tokens, each new token's written at `position`, a device scalar, so a step reads no host
// value and changes no shape and can be captured once as a CUDA graph and replayed. Keys past
// `position` are masked out by `self_bias`.
struct T5StaticCache {
  std::vector<torch::Tensor> self_k, self_v;    // [B, H, max_len, d]
  std::vector<torch::Tensor> cross_k, cross_v;  // [B, H, S, d]
  torch::Tensor cross_bias;                     // [B, 1, 1, S] padding mask
  torch::Tensor self_bias;                      // [max_len, H, max_len]: row t = position bias of query t, dtype-min past t
  torch::Tensor position;                       // [1] int64, on the device
  int64_t max_len = 0;
};

struct T5StackImpl : torch::nn::Module {
  // own_embed_tokens: the stack's `embed_tokens` is a tensor of its own (see T5Untied); otherwise it is
  // `shared` and the stack has no such parameter.
  T5StackImpl(const T5Config& c, bool is_decoder, bool own_embed_tokens = false);
  // Encoder: embeds [B,T,D], mask [B,T] (1 = token) -> hidden [B,T,D].
  torch::Tensor encode(const torch::Tensor& embeds, const torch::Tensor& mask);
  // Decoder over a whole target (training / scoring): causal self-attention.
  torch::Tensor decode(const torch::Tensor& embeds, const torch::Tensor& enc_hidden, const torch::Tensor& enc_mask);
  // Decoder for new tokens only, using and extending the cache.
  torch::Tensor decode_step(const torch::Tensor& embeds, T5DecoderCache& cache);
  void init_cache(T5DecoderCache& cache, const torch::Tensor& enc_hidden, const torch::Tensor& enc_mask);
  // Static cache: allocate once for B rows, S encoder positions and max_len tokens (options: the
  // model's dtype and device); fill from an encoder output (cross K/V, position 0) before each
  // sequence; one step appends embeds [B,1,D] at the cache's position (the caller advances it).
  void alloc_static_cache(T5StaticCache& cache, int64_t B, int64_t S, int64_t max_len, const torch::TensorOptions& o);
  void fill_static_cache(T5StaticCache& cache, const torch::Tensor& enc_hidden, const torch::Tensor& enc_mask);
  torch::Tensor decode_step_static(const torch::Tensor& embeds, T5StaticCache& cache);

  torch::nn::Embedding embed_tokens{nullptr};  // only when untied from `shared`
  torch::nn::ModuleList block;
  T5LayerNorm final_layer_norm{nullptr};
  T5Config cfg;
  bool is_decoder;
  // encode/decode in training mode with gradients on: each block checkpointed (model/layers.h), its
  // activations recomputed in backward instead of kept (tailor train --gradient-checkpointing).
  bool gradient_checkpointing = false;

 private:
  bool use_checkpointing() const;
  // The last forward's checkpointed blocks: their backward runs them again.
  std::vector<std::unique_ptr<CheckpointedFn>> checkpointed_blocks_;
};
TORCH_MODULE(T5Stack);

// Which of T5's copies of `shared` are tensors of their own. transformers 5.x ties lm_head and both
// stacks' embed_tokens to `shared` when loading, except a copy the checkpoint stores with values that
// differ from `shared`'s: that one stays separate and is used as stored (model/weights.h decides).
struct T5Untied {
  bool encoder_embed_tokens = false;  // never used by BLIP-2 (prompts are embedded with `shared`), kept to write back
  bool decoder_embed_tokens = false;  // embeds the decoder's input tokens
  bool lm_head = false;
};

struct T5ForConditionalGenerationImpl : torch::nn::Module {
  // A copy that is not untied is `shared` itself (no parameter of its own).
  T5ForConditionalGenerationImpl(const T5Config& c, T5Untied untied);
  T5Untied untied() const;
  // The decoder's token embeddings: decoder.embed_tokens when untied, else `shared`.
  torch::Tensor decoder_embed(const torch::Tensor& ids);
  torch::Tensor lm_logits(const torch::Tensor& decoder_hidden);
  // Teacher-forced logits for labels [B,L] (-100 = ignore): decoder input = labels shifted right.
  torch::Tensor forward_labels(const torch::Tensor& enc_hidden, const torch::Tensor& enc_mask,
                               const torch::Tensor& labels);
  torch::Tensor shift_right(const torch::Tensor& labels) const;

  torch::nn::Embedding shared{nullptr};
  T5Stack encoder{nullptr}, decoder{nullptr};
  Linear lm_head{nullptr};
  T5Config cfg;
};
TORCH_MODULE(T5ForConditionalGeneration);

// Mean cross-entropy over label positions != -100 (computed in float32).
torch::Tensor lm_loss(const torch::Tensor& logits, const torch::Tensor& labels);

}  // namespace tailor
