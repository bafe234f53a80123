// BLIP-2 (T5 language model) configuration: plain structs mirroring HF's config.json, parsed once with
// HF's defaults, validated, derived fields computed in one place.
#pragma once
#include <cstdint>
#include <string>

namespace tailor {

struct VisionConfig {  // Blip2VisionConfig
  int64_t hidden_size = 1408;
  int64_t intermediate_size = 6144;
  int64_t num_hidden_layers = 39;
  int64_t num_attention_heads = 16;
  int64_t image_size = 224;
  int64_t patch_size = 14;
  std::string hidden_act = "gelu";
  double layer_norm_eps = 1e-6;
  bool qkv_bias = true;
  int64_t num_positions() const { return (image_size / patch_size) * (image_size / patch_size) + 1; }
};

struct QFormerConfig {  // Blip2QFormerConfig
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  std::string hidden_act = "gelu";
  double layer_norm_eps = 1e-12;
  int64_t cross_attention_frequency = 2;
  int64_t encoder_hidden_size = 1408;
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
};

struct T5Config {
  int64_t vocab_size = 32128;
  int64_t d_model = 512;
  int64_t d_kv = 64;
  int64_t d_ff = 2048;
  int64_t num_layers = 6;
  int64_t num_decoder_layers = 6;
  int64_t num_heads = 8;
  int64_t relative_attention_num_buckets = 32;
  int64_t relative_attention_max_distance = 128;
  double dropout_rate = 0.1;
  double layer_norm_epsilon = 1e-6;
  std::string feed_forward_proj = "relu";
  std::string dense_act_fn = "relu";  // "gelu" (exact), "gelu_new" (tanh), "relu", "silu"
  bool is_gated_act = false;
  // HF 4.x semantics: false means an untied lm_head and no d_model^-0.5 rescale before it.
  bool tie_word_embeddings = true;
  // Multiply the decoder output by d_model^-0.5 before lm_head (original T5). transformers 5.x writes
  // it explicitly (and always writes tie_word_embeddings=true); 4.x configs imply it by the tie flag.
  bool scale_decoder_outputs = true;
  int64_t pad_token_id = 0;
  int64_t eos_token_id = 1;
  int64_t decoder_start_token_id = 0;
};

struct Blip2Config {
  VisionConfig vision;
  QFormerConfig qformer;
  T5Config text;
  int64_t num_query_tokens = 32;
  int64_t image_token_index = -1;  // -1: older checkpoints, query embeddings go before the prompt
  // A model tailor saved quantized (model/quantize.h): "" (dense), "int8" or "nf4", and the NF4 group
  // size. config.json's "quantization_config" {"quant_method": "tailor", "weight_format", "group_size"};
  // any other quant_method (bitsandbytes, GPTQ, AWQ) is refused: those weights are not HF's dense ones.
  std::string weight_format;
  int64_t quant_group_size = 64;
};

// Reads config.json (a path to the file or to its directory). Errors name the file and field.
Blip2Config load_blip2_config(const std::string& path);
Blip2Config parse_blip2_config(const std::string& json_text, const std::string& where);
// About how many parameters the model has (to within a few percent: norms and biases counted
// roughly), so a config that needs more memory than the machine has is refused before allocating.
double estimated_parameters(const Blip2Config& cfg);

// config.json text that both tailor and HF transformers (4.x and 5.x) read back to the same model.
std::string blip2_config_json(const Blip2Config& cfg);

}  // namespace tailor
