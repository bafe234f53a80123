#include "model/t5.h"

#include <cmath>
#include <limits>

#include <torch/version.h>

namespace tailor {

using torch::Tensor;
namespace F = torch::nn::functional;

static double min_value(torch::ScalarType t) {
  if (t == torch::kHalf) return -65504.0;
  if (t == torch::kBFloat16) return -3.3895313892515355e38;
  if (t == torch::kDouble) return std::numeric_limits<double>::lowest();
  return std::numeric_limits<float>::lowest();
}

// [B,T] 1/0 mask -> additive [B,1,1,T] bias: 0 for tokens, dtype-min for padding (HF's extended mask).
static Tensor padding_bias(const Tensor& mask, torch::ScalarType dtype) {
  Tensor m = mask.to(dtype).unsqueeze(1).unsqueeze(1);
  return (1.0 - m) * min_value(dtype);
}

T5LayerNormImpl::T5LayerNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}));
}

Tensor T5LayerNormImpl::forward(const Tensor& x) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 8)
  // On a GPU in half precision: ATen's fused RMSNorm, one kernel (and one in the backward pass) for
  // the six below. It rounds once where HF rounds twice (to the weight's dtype, then after the
  // multiplication by it), a difference within half precision's own rounding.
  bool half = x.scalar_type() == torch::kBFloat16 || x.scalar_type() == torch::kHalf;
  if (x.is_cuda() && half && weight.scalar_type() == x.scalar_type())
    return at::rms_norm(x, {weight.size(0)}, weight, eps);
#endif
  Tensor var = x.to(torch::kFloat).pow(2).mean(-1, true);
  Tensor h = x * torch::rsqrt(var + eps);
  if (weight.scalar_type() == torch::kHalf || weight.scalar_type() == torch::kBFloat16) h = h.to(weight.scalar_type());
  return weight * h;
}

T5AttentionImpl::T5AttentionImpl(const T5Config& c, bool has_bias, bool bidir)
    : n_heads(c.num_heads),
      d_kv(c.d_kv),
      num_buckets(c.relative_attention_num_buckets),
      max_distance(c.relative_attention_max_distance),
      bidirectional(bidir),
      dropout(c.dropout_rate) {
  int64_t inner = c.num_heads * c.d_kv;
  q = register_module("q", Linear(c.d_model, inner, false));
  k = register_module("k", Linear(c.d_model, inner, false));
  v = register_module("v", Linear(c.d_model, inner, false));
  o = register_module("o", Linear(inner, c.d_model, false));
  if (has_bias)
    relative_attention_bias = register_module("relative_attention_bias", torch::nn::Embedding(num_buckets, n_heads));
}

Tensor T5AttentionImpl::split_heads(const Tensor& x) const {
  return x.view({x.size(0), x.size(1), n_heads, d_kv}).transpose(1, 2);
}

// Bucket of (memory - query) position, as Mesh TensorFlow / HF: exact buckets for small distances,
// logarithmic ones up to max_distance.
static Tensor relative_position_bucket(Tensor rel, bool bidirectional, int64_t num_buckets, int64_t max_distance) {
  Tensor buckets = torch::zeros_like(rel);
  if (bidirectional) {
    num_buckets /= 2;
    buckets = buckets + (rel > 0).to(torch::kLong) * num_buckets;
    rel = rel.abs();
  } else {
    rel = -torch::min(rel, torch::zeros_like(rel));
  }
  int64_t max_exact = num_buckets / 2;
  Tensor is_small = rel < max_exact;
  Tensor large = max_exact + (torch::log(rel.to(torch::kFloat) / static_cast<double>(max_exact)) /
                              std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)) *
                              static_cast<double>(num_buckets - max_exact))
                                 .to(torch::kLong);
  large = torch::min(large, torch::full_like(large, num_buckets - 1));
  return buckets + torch::where(is_small, rel, large);
}

Tensor T5AttentionImpl::compute_bias(int64_t q_len, int64_t k_len, int64_t q_offset, const torch::Device& dev) {
  auto lo = torch::TensorOptions().dtype(torch::kLong).device(dev);
  Tensor ctx = torch::arange(q_len, lo).unsqueeze(1) + q_offset;
  Tensor mem = torch::arange(k_len, lo).unsqueeze(0);
  Tensor bucket = relative_position_bucket(mem - ctx, bidirectional, num_buckets, max_distance);
  Tensor values = relative_attention_bias->forward(bucket);  // [q, k, H]
  return values.permute({2, 0, 1}).unsqueeze(0);            // [1, H, q, k]
}

Tensor T5AttentionImpl::attend(const Tensor& x, const Tensor& kk, const Tensor& vv, const Tensor& bias) {
  Tensor qq = split_heads(q->forward(x));
  Tensor out = attention(qq, kk, vv, bias, 1.0, dropout, is_training());  // T5: no 1/sqrt(d) scaling
  out = out.transpose(1, 2).reshape({x.size(0), x.size(1), n_heads * d_kv});
  return o->forward(out);
}

T5LayerSelfAttentionImpl::T5LayerSelfAttentionImpl(const T5Config& c, bool has_bias, bool bidir)
    : dropout(c.dropout_rate) {
  SelfAttention = register_module("SelfAttention", T5Attention(c, has_bias, bidir));
  layer_norm = register_module("layer_norm", T5LayerNorm(c.d_model, c.layer_norm_epsilon));
}

T5LayerCrossAttentionImpl::T5LayerCrossAttentionImpl(const T5Config& c) : dropout(c.dropout_rate) {
  EncDecAttention = register_module("EncDecAttention", T5Attention(c, false, true));
  layer_norm = register_module("layer_norm", T5LayerNorm(c.d_model, c.layer_norm_epsilon));
}

T5DenseReluDenseImpl::T5DenseReluDenseImpl(const T5Config& c) : act(c.dense_act_fn), dropout(c.dropout_rate) {
  if (c.is_gated_act) {
    wi_0 = register_module("wi_0", Linear(c.d_model, c.d_ff, false));
    wi_1 = register_module("wi_1", Linear(c.d_model, c.d_ff, false));
  } else {
    wi = register_module("wi", Linear(c.d_model, c.d_ff, false));
  }
  wo = register_module("wo", Linear(c.d_ff, c.d_model, false));
}

Tensor T5DenseReluDenseImpl::forward(const Tensor& x) {
  Tensor h;
  if (!wi_0.is_empty()) h = activation(wi_0->forward(x), act) * wi_1->forward(x);
  else h = activation(wi->forward(x), act);
  h = tailor::dropout(h, dropout, is_training());
  if (h.scalar_type() != wo->dtype()) h = h.to(wo->dtype());
  return wo->forward(h);
}

T5LayerFFImpl::T5LayerFFImpl(const T5Config& c) : dropout(c.dropout_rate) {
  DenseReluDense = register_module("DenseReluDense", T5DenseReluDense(c));
  layer_norm = register_module("layer_norm", T5LayerNorm(c.d_model, c.layer_norm_epsilon));
}

Tensor T5LayerFFImpl::forward(const Tensor& x) {
  Tensor h = DenseReluDense->forward(layer_norm->forward(x));
  return x + tailor::dropout(h, dropout, is_training());
}

bool T5StackImpl::use_checkpointing() const {
  return gradient_checkpointing && is_training() && torch::GradMode::is_enabled();
}

T5BlockImpl::T5BlockImpl(const T5Config& c, bool decoder, bool has_bias) : is_decoder(decoder) {
  layer = register_module("layer", torch::nn::ModuleList());
  layer->push_back(T5LayerSelfAttention(c, has_bias, !decoder));
  if (decoder) layer->push_back(T5LayerCrossAttention(c));
  layer->push_back(T5LayerFF(c));
}

void T5DecoderCache::reorder(const Tensor& index) {
  for (auto* list : {&self_k, &self_v, &cross_k, &cross_v})
    for (auto& t : *list)
      if (t.defined()) t = t.index_select(0, index);  // self K/V are undefined before the first step
  cross_bias = cross_bias.index_select(0, index);
}

T5StackImpl::T5StackImpl(const T5Config& c, bool decoder, bool own_embed_tokens) : cfg(c), is_decoder(decoder) {
  if (own_embed_tokens) embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.d_model));
  block = register_module("block", torch::nn::ModuleList());
  int64_t n = decoder ? c.num_decoder_layers : c.num_layers;
  for (int64_t i = 0; i < n; ++i) block->push_back(T5Block(c, decoder, i == 0));
  final_layer_norm = register_module("final_layer_norm", T5LayerNorm(c.d_model, c.layer_norm_epsilon));
}

static Tensor drop(const Tensor& x, double p, bool training) { return tailor::dropout(x, p, training); }

// fp16 only: keep activations finite, as HF's T5Block does.
static Tensor clamp_half(const Tensor& h) {
  if (h.scalar_type() != torch::kHalf) return h;
  double m = 65504.0 - 1000.0;
  return torch::clamp(h, -m, m);
}

Tensor T5StackImpl::encode(const Tensor& embeds, const Tensor& mask) {
  TORCH_CHECK(!is_decoder, "encode() on the decoder stack");
  int64_t T = embeds.size(1);
  Tensor h = drop(embeds, cfg.dropout_rate, is_training());
  auto first = block->ptr<T5BlockImpl>(0)->self_attention_layer()->SelfAttention;
  Tensor bias = first->compute_bias(T, T, 0, h.device()).to(h.scalar_type()) + padding_bias(mask, h.scalar_type());
  const bool checkpoint = use_checkpointing();
  if (checkpoint) checkpointed_blocks_.clear();
  for (size_t i = 0; i < block->size(); ++i) {
    auto b = block->ptr<T5BlockImpl>(i);
    CheckpointedFn run = [this, b, bias](const std::vector<Tensor>& in) {
      auto sa = b->self_attention_layer();
      Tensor n = sa->layer_norm->forward(in[0]);
      Tensor a = sa->SelfAttention->attend(n, sa->SelfAttention->split_heads(sa->SelfAttention->k->forward(n)),
                                           sa->SelfAttention->split_heads(sa->SelfAttention->v->forward(n)), bias);
      Tensor h = clamp_half(in[0] + drop(a, sa->dropout, is_training()));
      return clamp_half(b->ff_layer()->forward(h));
    };
    if (!checkpoint) {
      h = run({h});
      continue;
    }
    checkpointed_blocks_.push_back(std::make_unique<CheckpointedFn>(std::move(run)));
    h = checkpointed(*checkpointed_blocks_.back(), {h});
  }
  h = final_layer_norm->forward(h);
  return drop(h, cfg.dropout_rate, is_training());
}

Tensor T5StackImpl::decode(const Tensor& embeds, const Tensor& enc_hidden, const Tensor& enc_mask) {
  TORCH_CHECK(is_decoder, "decode() on the encoder stack");
  int64_t T = embeds.size(1);
  auto dt = embeds.scalar_type();
  Tensor h = drop(embeds, cfg.dropout_rate, is_training());
  auto first = block->ptr<T5BlockImpl>(0)->self_attention_layer()->SelfAttention;
  Tensor causal = torch::triu(torch::full({T, T}, min_value(dt), embeds.options()), 1).view({1, 1, T, T});
  Tensor self_bias = first->compute_bias(T, T, 0, h.device()).to(dt) + causal;
  Tensor cross_bias = padding_bias(enc_mask, dt);
  const bool checkpoint = use_checkpointing();
  if (checkpoint) checkpointed_blocks_.clear();
  for (size_t i = 0; i < block->size(); ++i) {
    auto b = block->ptr<T5BlockImpl>(i);
    CheckpointedFn run = [this, b, self_bias, cross_bias](const std::vector<Tensor>& in) {
      const Tensor& enc = in[1];
      auto sa = b->self_attention_layer();
      Tensor n = sa->layer_norm->forward(in[0]);
      auto& A = sa->SelfAttention;
      Tensor h = clamp_half(in[0] + drop(A->attend(n, A->split_heads(A->k->forward(n)), A->split_heads(A->v->forward(n)), self_bias),
                                         sa->dropout, is_training()));
      auto ca = b->cross_attention_layer();
      auto& C = ca->EncDecAttention;
      Tensor n2 = ca->layer_norm->forward(h);
      h = clamp_half(h + drop(C->attend(n2, C->split_heads(C->k->forward(enc)), C->split_heads(C->v->forward(enc)), cross_bias),
                              ca->dropout, is_training()));
      return clamp_half(b->ff_layer()->forward(h));
    };
    if (!checkpoint) {
      h = run({h, enc_hidden});
      continue;
    }
    checkpointed_blocks_.push_back(std::make_unique<CheckpointedFn>(std::move(run)));
    h = checkpointed(*checkpointed_blocks_.back(), {h, enc_hidden});
  }
  h = final_layer_norm->forward(h);
  return drop(h, cfg.dropout_rate, is_training());
}

void T5StackImpl::init_cache(T5DecoderCache& cache, const Tensor& enc_hidden, const Tensor& enc_mask) {
  cache = T5DecoderCache();
  for (size_t i = 0; i < block->size(); ++i) {
    auto& C = block->ptr<T5BlockImpl>(i)->cross_attention_layer()->EncDecAttention;
    cache.cross_k.push_back(C->split_heads(C->k->forward(enc_hidden)));
    cache.cross_v.push_back(C->split_heads(C->v->forward(enc_hidden)));
    cache.self_k.emplace_back();
    cache.self_v.emplace_back();
  }
  cache.cross_bias = padding_bias(enc_mask, enc_hidden.scalar_type());
  cache.length = 0;
}

Tensor T5StackImpl::decode_step(const Tensor& embeds, T5DecoderCache& cache) {
  int64_t T = embeds.size(1), past = cache.length, total = past + T;
  auto dt = embeds.scalar_type();
  Tensor h = embeds;
  auto first = block->ptr<T5BlockImpl>(0)->self_attention_layer()->SelfAttention;
  Tensor self_bias = first->compute_bias(T, total, past, h.device()).to(dt);
  if (T > 1) {
    Tensor causal = torch::triu(torch::full({T, total}, min_value(dt), embeds.options()), past + 1).view({1, 1, T, total});
    self_bias = self_bias + causal;
  }
  for (size_t i = 0; i < block->size(); ++i) {
    auto b = block->ptr<T5BlockImpl>(i);
    auto sa = b->self_attention_layer();
    auto& A = sa->SelfAttention;
    Tensor n = sa->layer_norm->forward(h);
    Tensor k_new = A->split_heads(A->k->forward(n)), v_new = A->split_heads(A->v->forward(n));
    cache.self_k[i] = cache.self_k[i].defined() ? torch::cat({cache.self_k[i], k_new}, 2) : k_new;
    cache.self_v[i] = cache.self_v[i].defined() ? torch::cat({cache.self_v[i], v_new}, 2) : v_new;
    h = clamp_half(h + A->attend(n, cache.self_k[i], cache.self_v[i], self_bias));
    auto ca = b->cross_attention_layer();
    Tensor n2 = ca->layer_norm->forward(h);
    h = clamp_half(h + ca->EncDecAttention->attend(n2, cache.cross_k[i], cache.cross_v[i], cache.cross_bias));
    h = clamp_half(b->ff_layer()->forward(h));
  }
  cache.length = total;
  return final_layer_norm->forward(h);
}

void T5StackImpl::alloc_static_cache(T5StaticCache& cache, int64_t B, int64_t S, int64_t max_len,
                                     const torch::TensorOptions& o) {
  TORCH_CHECK(is_decoder, "alloc_static_cache() on the encoder stack");
  cache = T5StaticCache();
  int64_t H = cfg.num_heads, d = cfg.d_kv;
  for (size_t i = 0; i < block->size(); ++i) {
    // Zeros, not empty: masked keys get weight 0, and 0 * NaN from uninitialised memory would not be 0.
    cache.self_k.push_back(torch::zeros({B, H, max_len, d}, o));
    cache.self_v.push_back(torch::zeros({B, H, max_len, d}, o));
    cache.cross_k.push_back(torch::zeros({B, H, S, d}, o));
    cache.cross_v.push_back(torch::zeros({B, H, S, d}, o));
  }
  cache.cross_bias = torch::zeros({B, 1, 1, S}, o);
  // Row t: the relative position bias of a query at t over keys 0..max_len-1 (decode_step's
  // compute_bias(1, t+1, t) for keys <= t), keys after t masked.
  auto first = block->ptr<T5BlockImpl>(0)->self_attention_layer()->SelfAttention;
  torch::NoGradGuard ng;
  Tensor bias = first->compute_bias(max_len, max_len, 0, o.device()).squeeze(0).transpose(0, 1).to(o.dtype());
  Tensor later = torch::triu(torch::ones({max_len, max_len}, o.dtype(torch::kBool)), 1).unsqueeze(1);
  cache.self_bias = bias.masked_fill(later, min_value(o.dtype().toScalarType())).contiguous();  // [t, H, k]
  cache.position = torch::zeros({1}, o.dtype(torch::kLong));
  cache.max_len = max_len;
}

void T5StackImpl::fill_static_cache(T5StaticCache& cache, const Tensor& enc_hidden, const Tensor& enc_mask) {
  for (size_t i = 0; i < block->size(); ++i) {
    auto& C = block->ptr<T5BlockImpl>(i)->cross_attention_layer()->EncDecAttention;
    cache.cross_k[i].copy_(C->split_heads(C->k->forward(enc_hidden)));
    cache.cross_v[i].copy_(C->split_heads(C->v->forward(enc_hidden)));
  }
  cache.cross_bias.copy_(padding_bias(enc_mask, cache.cross_bias.scalar_type()));
  cache.position.zero_();
}

Tensor T5StackImpl::decode_step_static(const Tensor& embeds, T5StaticCache& cache) {
  TORCH_CHECK(embeds.size(1) == 1, "decode_step_static takes one token per row");
  Tensor h = embeds;
  int64_t H = cfg.num_heads, N = cache.max_len;
  Tensor self_bias = cache.self_bias.index_select(0, cache.position).view({1, H, 1, N});
  for (size_t i = 0; i < block->size(); ++i) {
    auto b = block->ptr<T5BlockImpl>(i);
    auto sa = b->self_attention_layer();
    auto& A = sa->SelfAttention;
    Tensor n = sa->layer_norm->forward(h);
    cache.self_k[i].index_copy_(2, cache.position, A->split_heads(A->k->forward(n)));
    cache.self_v[i].index_copy_(2, cache.position, A->split_heads(A->v->forward(n)));
    h = clamp_half(h + A->attend(n, cache.self_k[i], cache.self_v[i], self_bias));
    auto ca = b->cross_attention_layer();
    Tensor n2 = ca->layer_norm->forward(h);
    h = clamp_half(h + ca->EncDecAttention->attend(n2, cache.cross_k[i], cache.cross_v[i], cache.cross_bias));
    h = clamp_half(b->ff_layer()->forward(h));
  }
  return final_layer_norm->forward(h);
}

T5ForConditionalGenerationImpl::T5ForConditionalGenerationImpl(const T5Config& c, T5Untied u) : cfg(c) {
  shared = register_module("shared", torch::nn::Embedding(c.vocab_size, c.d_model));
  encoder = register_module("encoder", T5Stack(c, false, u.encoder_embed_tokens));
  decoder = register_module("decoder", T5Stack(c, true, u.decoder_embed_tokens));
  if (u.lm_head) lm_head = register_module("lm_head", Linear(c.d_model, c.vocab_size, false));
}

T5Untied T5ForConditionalGenerationImpl::untied() const {
  T5Untied u;
  u.encoder_embed_tokens = !encoder->embed_tokens.is_empty();
  u.decoder_embed_tokens = !decoder->embed_tokens.is_empty();
  u.lm_head = !lm_head.is_empty();
  return u;
}

Tensor T5ForConditionalGenerationImpl::decoder_embed(const Tensor& ids) {
  if (!decoder->embed_tokens.is_empty()) return decoder->embed_tokens->forward(ids);
  return shared->forward(ids);
}

Tensor T5ForConditionalGenerationImpl::lm_logits(const Tensor& hidden) {
  Tensor h = hidden;
  if (cfg.scale_decoder_outputs) h = h * std::pow(static_cast<double>(cfg.d_model), -0.5);
  if (!lm_head.is_empty()) return lm_head->forward(h);
  return F::linear(h, shared->weight);
}

Tensor T5ForConditionalGenerationImpl::shift_right(const Tensor& labels) const {
  Tensor out = torch::full_like(labels, cfg.decoder_start_token_id);
  out.narrow(1, 1, labels.size(1) - 1).copy_(labels.narrow(1, 0, labels.size(1) - 1));
  return out.masked_fill(out == -100, cfg.pad_token_id);
}

Tensor T5ForConditionalGenerationImpl::forward_labels(const Tensor& enc_hidden, const Tensor& enc_mask,
                                                      const Tensor& labels) {
  Tensor dec_in = shift_right(labels);
  Tensor h = decoder->decode(decoder_embed(dec_in), enc_hidden, enc_mask);
  return lm_logits(h);
}

Tensor lm_loss(const Tensor& logits, const Tensor& labels) {
  return F::cross_entropy(logits.to(torch::kFloat).reshape({-1, logits.size(-1)}), labels.reshape({-1}),
                          F::CrossEntropyFuncOptions().ignore_index(-100));
}

}  // namespace tailor
