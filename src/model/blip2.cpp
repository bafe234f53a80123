#include "model/blip2.h"

#include "util/error.h"

namespace tailor {

using torch::Tensor;

Blip2ForConditionalGenerationImpl::Blip2ForConditionalGenerationImpl(const Blip2Config& c, T5Untied untied)
    : cfg(c) {
  vision_model = register_module("vision_model", Blip2VisionModel(c.vision));
  query_tokens = register_parameter("query_tokens", torch::zeros({1, c.num_query_tokens, c.qformer.hidden_size}));
  qformer = register_module("qformer", Blip2QFormerModel(c.qformer));
  language_projection = register_module("language_projection", Linear(c.qformer.hidden_size, c.text.d_model, true));
  language_model = register_module("language_model", T5ForConditionalGeneration(c.text, untied));
}

Tensor Blip2ForConditionalGenerationImpl::qformer_features(const Tensor& image_embeds) {
  Tensor q = query_tokens.expand({image_embeds.size(0), -1, -1});
  return qformer->forward(q, image_embeds);
}

Tensor Blip2ForConditionalGenerationImpl::image_features(const Tensor& pixel_values) {
  Tensor image_embeds = vision_model->forward(pixel_values);
  Tensor q = qformer_features(image_embeds);
  // The Q-Former may run in float32 while the rest is half precision: cast back as HF does.
  q = q.to(image_embeds.scalar_type());
  return language_projection->forward(q.to(language_projection->weight.scalar_type()));
}

std::vector<int64_t> Blip2ForConditionalGenerationImpl::with_image_tokens(const std::vector<int64_t>& ids) const {
  if (cfg.image_token_index < 0) return ids;
  std::vector<int64_t> out(cfg.num_query_tokens, cfg.image_token_index);
  out.insert(out.end(), ids.begin(), ids.end());
  return out;
}

std::pair<Tensor, Tensor> Blip2ForConditionalGenerationImpl::encoder_inputs(const Tensor& feats, const Tensor& input_ids,
                                                                          const Tensor& attention_mask) {
  Tensor embeds = language_model->shared->forward(input_ids);
  Tensor f = feats.to(embeds.scalar_type());
  int64_t B = input_ids.size(0), Q = feats.size(1);
  if (cfg.image_token_index >= 0) {
    Tensor is_image = input_ids == cfg.image_token_index;  // [B,T]
    int64_t n = is_image.sum().item<int64_t>();
    if (n != B * Q)
      throw Error("the prompt holds " + std::to_string(n) + " <image> tokens (id " +
                  std::to_string(cfg.image_token_index) + ") for " + std::to_string(B) + " images of " +
                  std::to_string(Q) + " query tokens each");
    embeds = embeds.masked_scatter(is_image.unsqueeze(-1), f);
    return {embeds, attention_mask};
  }
  // Older checkpoints: query embeddings go before the prompt, always attended.
  Tensor mask = torch::cat({torch::ones({B, Q}, attention_mask.options()), attention_mask}, 1);
  return {torch::cat({f, embeds}, 1), mask};
}

Tensor Blip2ForConditionalGenerationImpl::image_slots(const Tensor& input_ids_cpu) const {
  Tensor ids = input_ids_cpu.to(torch::kLong).contiguous();
  int64_t B = ids.size(0), T = ids.size(1), Q = cfg.num_query_tokens;
  Tensor slot = torch::full({B, T}, -1, torch::kLong);
  if (cfg.image_token_index < 0) return slot;
  const int64_t* p = ids.data_ptr<int64_t>();
  int64_t* s = slot.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    int64_t n = 0;
    for (int64_t t = 0; t < T; ++t)
      if (p[b * T + t] == cfg.image_token_index) s[b * T + t] = n++;
    if (n != Q)
      throw Error("prompt " + std::to_string(b) + " holds " + std::to_string(n) + " <image> tokens (id " +
                  std::to_string(cfg.image_token_index) + ") for " + std::to_string(Q) + " query tokens");
  }
  return slot;
}

std::pair<Tensor, Tensor> Blip2ForConditionalGenerationImpl::encoder_inputs_by_slot(const Tensor& feats,
                                                                                  const Tensor& input_ids,
                                                                                  const Tensor& attention_mask,
                                                                                  const Tensor& image_slot) {
  if (cfg.image_token_index < 0) return encoder_inputs(feats, input_ids, attention_mask);
  Tensor embeds = language_model->shared->forward(input_ids);
  Tensor f = feats.to(embeds.scalar_type());
  int64_t D = embeds.size(2);
  // Row b, position t takes feats[b, slot[b,t]] where slot >= 0 (the same as masked_scatter, which
  // fills the <image> positions in order with the row's query features).
  Tensor index = image_slot.clamp_min(0).unsqueeze(-1).expand({-1, -1, D});
  Tensor placed = f.gather(1, index);
  return {torch::where((image_slot >= 0).unsqueeze(-1), placed, embeds), attention_mask};
}

std::pair<Tensor, Tensor> Blip2ForConditionalGenerationImpl::encode(const Tensor& feats, const Tensor& input_ids,
                                                                  const Tensor& attention_mask) {
  auto [embeds, mask] = encoder_inputs(feats, input_ids, attention_mask);
  return {language_model->encoder->encode(embeds, mask), mask};
}

Tensor Blip2ForConditionalGenerationImpl::forward_from_qformer(const Tensor& qformer_out, const Tensor& input_ids,
                                                               const Tensor& attention_mask, const Tensor& image_slot,
                                                               const Tensor& labels) {
  Tensor feats = language_projection->forward(qformer_out.to(language_projection->weight.scalar_type()));
  auto [embeds, mask] = encoder_inputs_by_slot(feats, input_ids, attention_mask, image_slot);
  return language_model->forward_labels(language_model->encoder->encode(embeds, mask), mask, labels);
}

Tensor Blip2ForConditionalGenerationImpl::forward(const Tensor& pixel_values, const Tensor& input_ids,
                                                  const Tensor& attention_mask, const Tensor& labels) {
  auto [hidden, mask] = encode(image_features(pixel_values), input_ids, attention_mask);
  return language_model->forward_labels(hidden, mask, labels);
}

}  // namespace tailor
