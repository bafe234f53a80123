// Blip2ForConditionalGeneration with a T5 language model, as HF's modeling_blip_2.py: image ->
// vision_model -> qformer (query_tokens) -> language_projection -> 32 embeddings that replace the
// <image> tokens of the prompt (newer checkpoints, image_token_index set) or go before the prompt
// (older ones) -> T5 encoder/decoder -> logits.
#pragma once
#include <torch/torch.h>

#include <string>

#include "model/blip2_qformer.h"
#include "model/blip2_vision.h"
#include "model/config.h"
#include "model/t5.h"

namespace tailor {

struct Blip2ForConditionalGenerationImpl : torch::nn::Module {
  Blip2ForConditionalGenerationImpl(const Blip2Config& c, T5Untied untied);

  // pixel_values [B,3,H,W] -> language-model inputs for the image [B, Q, d_model].
  torch::Tensor image_features(const torch::Tensor& pixel_values);
  torch::Tensor qformer_features(const torch::Tensor& image_embeds);  // [B,S,Dv] -> [B,Q,Hq]
  // The T5 encoder's input: image features placed into / before the prompt's token embeddings.
  // input_ids/attention_mask [B,T]. Returns embeds and mask for the encoder.
  std::pair<torch::Tensor, torch::Tensor> encoder_inputs(const torch::Tensor& image_feats,
                                                         const torch::Tensor& input_ids,
                                                         const torch::Tensor& attention_mask);
  // The same without host synchronisation (capturable as a CUDA graph): image_slot [B,T] holds, for
  // each <image> token, which query feature goes there, and -1 elsewhere (image_slots() makes it on
  // the host, where the count is checked). Older checkpoints (no image_token_index) need no slots.
  std::pair<torch::Tensor, torch::Tensor> encoder_inputs_by_slot(const torch::Tensor& image_feats,
                                                                 const torch::Tensor& input_ids,
                                                                 const torch::Tensor& attention_mask,
                                                                 const torch::Tensor& image_slot);
  torch::Tensor image_slots(const torch::Tensor& input_ids_cpu) const;
  // Full encoder pass from image features: hidden [B,S,D] and mask [B,S].
  std::pair<torch::Tensor, torch::Tensor> encode(const torch::Tensor& image_feats, const torch::Tensor& input_ids,
                                                 const torch::Tensor& attention_mask);
  // Teacher-forced logits from the Q-Former's output [B,Q,Hq] (what the frozen-feature cache holds)
  // instead of pixels, with the capturable <image> placement (encoder_inputs_by_slot).
  torch::Tensor forward_from_qformer(const torch::Tensor& qformer_out, const torch::Tensor& input_ids,
                                     const torch::Tensor& attention_mask, const torch::Tensor& image_slot,
                                     const torch::Tensor& labels);
  // Teacher-forced logits [B,L,V] for labels [B,L] (-100 ignored).
  torch::Tensor forward(const torch::Tensor& pixel_values, const torch::Tensor& input_ids,
                        const torch::Tensor& attention_mask, const torch::Tensor& labels);

  // Prompt ids as the model expects them: with image_token_index set, num_query_tokens image tokens
  // are put in front (HF 5.x's processor does this); otherwise unchanged.
  std::vector<int64_t> with_image_tokens(const std::vector<int64_t>& prompt_ids) const;

  Blip2VisionModel vision_model{nullptr};
  torch::Tensor query_tokens;
  Blip2QFormerModel qformer{nullptr};
  Linear language_projection{nullptr};
  T5ForConditionalGeneration language_model{nullptr};
  Blip2Config cfg;
};
TORCH_MODULE(Blip2ForConditionalGeneration);

}  // namespace tailor
