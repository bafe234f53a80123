#include "model/config.h"

#include <nlohmann/json.hpp>

#include <climits>
#include <cmath>
#include <type_traits>

#include "util/error.h"
#include "util/fs.h"

namespace tailor {

using json = nlohmann::json;

namespace {

// Reads key into out when present; a present key of the wrong type is an error naming it. Integer
// fields take integers only (3.9 is not 3; 1e300 is no int64), number fields finite numbers.
template <typename T>
void get(const json& j, const char* key, T* out, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  bool ok = true;
  if constexpr (std::is_same_v<T, bool>) ok = it->is_boolean();
  else if constexpr (std::is_integral_v<T>)
    ok = it->is_number_integer() && !(it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(INT64_MAX));
  else if constexpr (std::is_floating_point_v<T>) ok = it->is_number() && std::isfinite(it->get<double>());
  else ok = it->is_string();
  if (!ok) throw Error(where + ": field \"" + key + "\" has the wrong type or range (" + it->dump() + ")");
  *out = it->get<T>();
}

// Bounds that keep a config within what a real BLIP-2 can be, so a typo is refused with the field's
// name rather than becoming an allocation of terabytes or a model that answers garbage.
void need_in(int64_t v, int64_t lo, int64_t hi, const char* key, const std::string& where) {
  if (v < lo || v > hi)
    throw Error(where + ": field \"" + std::string(key) + "\" is " + std::to_string(v) + ", outside [" + std::to_string(lo) +
                ", " + std::to_string(hi) + "]");
}
void need_in(double v, double lo, double hi, bool lo_open, const char* key, const std::string& where) {
  if (!(lo_open ? v > lo : v >= lo) || !(v < hi))
    throw Error(where + ": field \"" + std::string(key) + "\" is " + std::to_string(v) + ", outside " + (lo_open ? "(" : "[") +
                std::to_string(lo) + ", " + std::to_string(hi) + ")");
}
constexpr int64_t kMaxWidth = 1 << 16, kMaxFfn = 1 << 18, kMaxLayers = 256, kMaxVocab = 1 << 22;

// The activations model/layers.cpp computes (HF's ACT2FN names).
void need_activation(const std::string& act, const char* key, const std::string& where) {
  for (const char* known : {"gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu"})
    if (act == known) return;
  throw Error(where + ": unsupported activation " + key + " \"" + act + "\" (tailor computes gelu, gelu_new, gelu_pytorch_tanh, relu, silu)");
}

// transformers 5.x writes image_size and patch_size as an int or as [height, width].
void get_square(const json& j, const char* key, int64_t* out, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null() || !it->is_array()) return get(j, key, out, where);
  if (it->size() != 2 || !(*it)[0].is_number_integer() || (*it)[0] != (*it)[1])
    throw Error(where + ": field \"" + key + "\" is " + it->dump() + "; tailor supports square sizes only (one number, or [n, n])");
  *out = (*it)[0].get<int64_t>();
}

VisionConfig parse_vision(const json& j, const std::string& w) {
  VisionConfig c;
  get(j, "hidden_size", &c.hidden_size, w);
  get(j, "intermediate_size", &c.intermediate_size, w);
  get(j, "num_hidden_layers", &c.num_hidden_layers, w);
  get(j, "num_attention_heads", &c.num_attention_heads, w);
  get_square(j, "image_size", &c.image_size, w);
  get_square(j, "patch_size", &c.patch_size, w);
  get(j, "hidden_act", &c.hidden_act, w);
  get(j, "layer_norm_eps", &c.layer_norm_eps, w);
  get(j, "qkv_bias", &c.qkv_bias, w);
  need_activation(c.hidden_act, "hidden_act", w);
  need_in(c.hidden_size, 1, kMaxWidth, "hidden_size", w);
  need_in(c.intermediate_size, 1, kMaxFfn, "intermediate_size", w);
  need_in(c.num_hidden_layers, 1, kMaxLayers, "num_hidden_layers", w);
  need_in(c.num_attention_heads, 1, c.hidden_size, "num_attention_heads", w);
  need_in(c.image_size, 1, 8192, "image_size", w);
  need_in(c.patch_size, 1, c.image_size, "patch_size", w);
  need_in(c.layer_norm_eps, 0.0, 1.0, true, "layer_norm_eps", w);
  if (c.hidden_size % c.num_attention_heads != 0)
    throw Error(w + ": hidden_size must be a multiple of num_attention_heads");
  if (c.image_size % c.patch_size != 0) throw Error(w + ": image_size must be a multiple of patch_size");
  return c;
}

QFormerConfig parse_qformer(const json& j, const std::string& w) {
  QFormerConfig c;
  get(j, "hidden_size", &c.hidden_size, w);
  get(j, "num_hidden_layers", &c.num_hidden_layers, w);
  get(j, "num_attention_heads", &c.num_attention_heads, w);
  get(j, "intermediate_size", &c.intermediate_size, w);
  get(j, "hidden_act", &c.hidden_act, w);
  get(j, "layer_norm_eps", &c.layer_norm_eps, w);
  get(j, "cross_attention_frequency", &c.cross_attention_frequency, w);
  get(j, "encoder_hidden_size", &c.encoder_hidden_size, w);
  get(j, "hidden_dropout_prob", &c.hidden_dropout_prob, w);
  get(j, "attention_probs_dropout_prob", &c.attention_probs_dropout_prob, w);
  bool text_input = false;
  get(j, "use_qformer_text_input", &text_input, w);
  if (text_input) throw Error(w + ": use_qformer_text_input=true (InstructBLIP-style) is not supported");
  need_activation(c.hidden_act, "hidden_act", w);
  need_in(c.hidden_size, 1, kMaxWidth, "hidden_size", w);
  need_in(c.intermediate_size, 1, kMaxFfn, "intermediate_size", w);
  need_in(c.num_hidden_layers, 1, kMaxLayers, "num_hidden_layers", w);
  need_in(c.num_attention_heads, 1, c.hidden_size, "num_attention_heads", w);
  need_in(c.cross_attention_frequency, 1, kMaxLayers, "cross_attention_frequency", w);
  need_in(c.layer_norm_eps, 0.0, 1.0, true, "layer_norm_eps", w);
  need_in(c.hidden_dropout_prob, 0.0, 1.0, false, "hidden_dropout_prob", w);
  need_in(c.attention_probs_dropout_prob, 0.0, 1.0, false, "attention_probs_dropout_prob", w);
  if (c.hidden_size % c.num_attention_heads != 0)
    throw Error(w + ": hidden_size must be a multiple of num_attention_heads");
  return c;
}

T5Config parse_t5(const json& j, const std::string& w) {
  T5Config c;
  // transformers builds OPT (Blip2Config: text_config.get("model_type", "opt")) when the field is absent.
  std::string model_type = "opt";
  get(j, "model_type", &model_type, w);
  if (model_type != "t5")
    throw Error(w + ": model_type \"" + model_type + "\"" + (j.contains("model_type") ? "" : " (absent: transformers builds OPT)") +
                " is not supported (tailor runs BLIP-2 with a T5 language model)");
  get(j, "vocab_size", &c.vocab_size, w);
  get(j, "d_model", &c.d_model, w);
  get(j, "d_kv", &c.d_kv, w);
  get(j, "d_ff", &c.d_ff, w);
  get(j, "num_layers", &c.num_layers, w);
  c.num_decoder_layers = c.num_layers;
  get(j, "num_decoder_layers", &c.num_decoder_layers, w);
  get(j, "num_heads", &c.num_heads, w);
  get(j, "relative_attention_num_buckets", &c.relative_attention_num_buckets, w);
  get(j, "relative_attention_max_distance", &c.relative_attention_max_distance, w);
  get(j, "dropout_rate", &c.dropout_rate, w);
  get(j, "layer_norm_epsilon", &c.layer_norm_epsilon, w);
  get(j, "feed_forward_proj", &c.feed_forward_proj, w);
  // As T5Config's attribute_map: an alias in the file is set after the fields, so it wins; but
  // num_decoder_layers defaulted from num_layers before it (transformers 4.x and 5.x alike).
  get(j, "hidden_size", &c.d_model, w);
  get(j, "num_attention_heads", &c.num_heads, w);
  get(j, "num_hidden_layers", &c.num_layers, w);
  get(j, "head_dim", &c.d_kv, w);
  // HF derives the activation from feed_forward_proj ("gated-gelu" historically means tanh GELU);
  // explicit dense_act_fn / is_gated_act in the file win, as in transformers 4.x (BLIP-2's T5:
  // feed_forward_proj "gelu", dense_act_fn "gelu", is_gated_act true = gated exact GELU).
  size_t dash = c.feed_forward_proj.find('-');
  if (c.feed_forward_proj.find('-', dash == std::string::npos ? dash : dash + 1) != std::string::npos ||
      (dash != std::string::npos && c.feed_forward_proj.substr(0, dash) != "gated"))
    throw Error(w + ": field \"feed_forward_proj\" is \"" + c.feed_forward_proj +
                "\"; transformers accepts \"gated-ACT\" or \"ACT\" only");
  c.is_gated_act = dash != std::string::npos && c.feed_forward_proj.substr(0, dash) == "gated";
  c.dense_act_fn = dash == std::string::npos ? c.feed_forward_proj : c.feed_forward_proj.substr(dash + 1);
  if (c.feed_forward_proj == "gated-gelu") c.dense_act_fn = "gelu_new";
  get(j, "dense_act_fn", &c.dense_act_fn, w);
  get(j, "is_gated_act", &c.is_gated_act, w);
  get(j, "tie_word_embeddings", &c.tie_word_embeddings, w);
  c.scale_decoder_outputs = c.tie_word_embeddings;
  get(j, "scale_decoder_outputs", &c.scale_decoder_outputs, w);
  get(j, "pad_token_id", &c.pad_token_id, w);
  get(j, "eos_token_id", &c.eos_token_id, w);
  c.decoder_start_token_id = c.pad_token_id;
  get(j, "decoder_start_token_id", &c.decoder_start_token_id, w);
  need_activation(c.dense_act_fn, "dense_act_fn", w);
  need_in(c.vocab_size, 1, kMaxVocab, "vocab_size", w);
  need_in(c.d_model, 1, kMaxWidth, "d_model", w);
  need_in(c.num_heads, 1, kMaxWidth, "num_heads", w);
  need_in(c.d_kv, 1, kMaxWidth, "d_kv", w);
  need_in(c.d_ff, 1, kMaxFfn, "d_ff", w);
  need_in(c.num_layers, 1, kMaxLayers, "num_layers", w);
  need_in(c.num_decoder_layers, 1, kMaxLayers, "num_decoder_layers", w);
  need_in(c.relative_attention_num_buckets, 1, 1 << 16, "relative_attention_num_buckets", w);
  need_in(c.relative_attention_max_distance, 1, 1 << 20, "relative_attention_max_distance", w);
  need_in(c.dropout_rate, 0.0, 1.0, false, "dropout_rate", w);
  need_in(c.layer_norm_epsilon, 0.0, 1.0, true, "layer_norm_epsilon", w);
  need_in(c.pad_token_id, 0, c.vocab_size - 1, "pad_token_id", w);
  need_in(c.eos_token_id, 0, c.vocab_size - 1, "eos_token_id", w);
  need_in(c.decoder_start_token_id, 0, c.vocab_size - 1, "decoder_start_token_id", w);
  return c;
}

}  // namespace

Blip2Config parse_blip2_config(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(where + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(where + ": expected a JSON object");
  std::string model_type;
  get(j, "model_type", &model_type, where);
  if (!model_type.empty() && model_type != "blip-2")
    throw Error(where + ": model_type \"" + model_type + "\" is not BLIP-2 (\"blip-2\")");
  bool decoder_only = false;
  get(j, "use_decoder_only_language_model", &decoder_only, where);
  if (decoder_only) throw Error(where + ": decoder-only language models (OPT) are not supported; use a T5 BLIP-2");
  Blip2Config c;
  for (const char* sub : {"vision_config", "qformer_config", "text_config"})
    if (j.contains(sub) && !j[sub].is_null() && !j[sub].is_object()) throw Error(where + ": field \"" + std::string(sub) + "\" must be an object");
  auto sub_config = [&](const char* key) { return j.contains(key) && j[key].is_object() ? j[key] : json::object(); };
  c.vision = parse_vision(sub_config("vision_config"), where + " vision_config");
  c.qformer = parse_qformer(sub_config("qformer_config"), where + " qformer_config");
  c.text = parse_t5(sub_config("text_config"), where + " text_config");
  get(j, "num_query_tokens", &c.num_query_tokens, where);
  int64_t idx = -1;
  if (j.contains("image_token_index") && !j["image_token_index"].is_null()) get(j, "image_token_index", &idx, where);
  else if (j.contains("image_token_id") && !j["image_token_id"].is_null()) get(j, "image_token_id", &idx, where);
  c.image_token_index = idx;
  need_in(c.num_query_tokens, 1, 4096, "num_query_tokens", where);
  // Blip2Config sets it from the vision tower whatever the file says (transformers 4.x and 5.x).
  c.qformer.encoder_hidden_size = c.vision.hidden_size;
  if (c.image_token_index >= c.text.vocab_size || c.image_token_index < -1)
    throw Error(where + ": image_token_index " + std::to_string(c.image_token_index) + " is outside the vocabulary");
  if (j.contains("quantization_config") && !j["quantization_config"].is_null()) {
    const json& qc = j["quantization_config"];
    const std::string qwhere = where + " quantization_config";
    if (!qc.is_object()) throw Error(qwhere + ": expected a JSON object");
    std::string method;
    get(qc, "quant_method", &method, qwhere);
    if (method != "tailor")
      throw Error(qwhere + ": quant_method \"" + method + "\" is not supported: tailor reads dense checkpoints (and quantizes them itself with --quantize int8|nf4) or models it saved quantized; give it the original checkpoint");
    get(qc, "weight_format", &c.weight_format, qwhere);
    if (c.weight_format != "int8" && c.weight_format != "nf4")
      throw Error(qwhere + ": field \"weight_format\" must be \"int8\" or \"nf4\"");
    get(qc, "group_size", &c.quant_group_size, qwhere);
    need_in(c.quant_group_size, 2, 1 << 20, "group_size", qwhere);
    if (c.quant_group_size % 2 != 0) throw Error(qwhere + ": field \"group_size\" must be even");
  }
  return c;
}

// HF's generate() takes its special tokens from generation_config.json when the directory has one,
// the forward pass from config.json; tailor has one set, so the two must agree.
static void check_generation_config(const std::string& file, const T5Config& t) {
  json g;
  try {
    g = json::parse(read_file(file));
  } catch (const json::exception& e) {
    throw Error(file + ": invalid JSON: " + e.what());
  }
  if (!g.is_object()) throw Error(file + ": expected a JSON object");
  const std::pair<const char*, int64_t> tokens[] = {
      {"decoder_start_token_id", t.decoder_start_token_id}, {"eos_token_id", t.eos_token_id}, {"pad_token_id", t.pad_token_id}};
  for (const auto& [key, model_value] : tokens) {
    auto it = g.find(key);
    if (it == g.end() || it->is_null()) continue;
    json v = *it;
    if (v.is_array() && v.size() == 1) v = v[0];
    if (!v.is_number_integer() || v.get<int64_t>() != model_value)
      throw Error(file + ": field \"" + key + "\" is " + it->dump() + " but config.json's text_config has " +
                  std::to_string(model_value) + "; tailor generates with config.json's (one token id each), so it refuses a model that transformers would run with two");
  }
}

double estimated_parameters(const Blip2Config& c) {
  const VisionConfig& v = c.vision;
  const QFormerConfig& q = c.qformer;
  const T5Config& t = c.text;
  double h = v.hidden_size, hq = q.hidden_size, d = t.d_model, inner = double(t.num_heads) * t.d_kv;
  double vision = 3.0 * v.patch_size * v.patch_size * h + double(v.num_positions()) * h +
                  v.num_hidden_layers * (4 * h * h + 2 * h * v.intermediate_size + 8 * h);
  double cross_layers = std::ceil(double(q.num_hidden_layers) / q.cross_attention_frequency);
  double qformer = q.num_hidden_layers * (4 * hq * hq + 4 * hq * q.intermediate_size + 8 * hq) +
                   cross_layers * (2 * hq * hq + 2 * hq * q.encoder_hidden_size) + double(c.num_query_tokens) * hq;
  double ffn = (t.is_gated_act ? 3.0 : 2.0) * d * t.d_ff;
  double text = 2.0 * t.vocab_size * d + t.num_layers * (4 * d * inner + ffn) + t.num_decoder_layers * (8 * d * inner + ffn);
  return vision + qformer + hq * d + text;
}

Blip2Config load_blip2_config(const std::string& path) {
  std::string file = path;
  if (file_exists(join_path(path, "config.json"))) file = join_path(path, "config.json");
  Blip2Config c = parse_blip2_config(read_file(file), file);
  std::string gen = join_path(path, "generation_config.json");
  if (file != path && file_exists(gen)) check_generation_config(gen, c.text);
  return c;
}

std::string blip2_config_json(const Blip2Config& c) {
  json v = {{"model_type", "blip_2_vision_model"},
            {"hidden_size", c.vision.hidden_size},
            {"intermediate_size", c.vision.intermediate_size},
            {"num_hidden_layers", c.vision.num_hidden_layers},
            {"num_attention_heads", c.vision.num_attention_heads},
            {"image_size", c.vision.image_size},
            {"patch_size", c.vision.patch_size},
            {"hidden_act", c.vision.hidden_act},
            {"layer_norm_eps", c.vision.layer_norm_eps},
            {"qkv_bias", c.vision.qkv_bias}};
  json q = {{"model_type", "blip_2_qformer"},
            {"hidden_size", c.qformer.hidden_size},
            {"num_hidden_layers", c.qformer.num_hidden_layers},
            {"num_attention_heads", c.qformer.num_attention_heads},
            {"intermediate_size", c.qformer.intermediate_size},
            {"hidden_act", c.qformer.hidden_act},
            {"layer_norm_eps", c.qformer.layer_norm_eps},
            {"cross_attention_frequency", c.qformer.cross_attention_frequency},
            {"encoder_hidden_size", c.qformer.encoder_hidden_size},
            {"hidden_dropout_prob", c.qformer.hidden_dropout_prob},
            {"attention_probs_dropout_prob", c.qformer.attention_probs_dropout_prob}};
  json t = {{"model_type", "t5"},
            {"vocab_size", c.text.vocab_size},
            {"d_model", c.text.d_model},
            {"d_kv", c.text.d_kv},
            {"d_ff", c.text.d_ff},
            {"num_layers", c.text.num_layers},
            {"num_decoder_layers", c.text.num_decoder_layers},
            {"num_heads", c.text.num_heads},
            {"relative_attention_num_buckets", c.text.relative_attention_num_buckets},
            {"relative_attention_max_distance", c.text.relative_attention_max_distance},
            {"dropout_rate", c.text.dropout_rate},
            {"layer_norm_epsilon", c.text.layer_norm_epsilon},
            // "gated-gelu" + an explicit dense_act_fn reads back the same in transformers 4.x and 5.x
            // (5.x re-derives is_gated_act from feed_forward_proj; "gelu" alone would mean ungated).
            {"feed_forward_proj", (c.text.is_gated_act ? std::string("gated-") : std::string()) +
                                      (c.text.dense_act_fn == "gelu_new" ? std::string("gelu") : c.text.dense_act_fn)},
            {"dense_act_fn", c.text.dense_act_fn},
            {"is_gated_act", c.text.is_gated_act},
            {"tie_word_embeddings", c.text.tie_word_embeddings},
            {"scale_decoder_outputs", c.text.scale_decoder_outputs},
            {"pad_token_id", c.text.pad_token_id},
            {"eos_token_id", c.text.eos_token_id},
            {"decoder_start_token_id", c.text.decoder_start_token_id}};
  json j = {{"architectures", {"Blip2ForConditionalGeneration"}},
            {"model_type", "blip-2"},
            {"num_query_tokens", c.num_query_tokens},
            {"vision_config", v},
            {"qformer_config", q},
            {"text_config", t},
            {"use_decoder_only_language_model", false},
            {"is_encoder_decoder", true}};
  if (c.image_token_index >= 0) j["image_token_index"] = c.image_token_index;
  if (!c.weight_format.empty())
    j["quantization_config"] = {{"quant_method", "tailor"}, {"weight_format", c.weight_format}, {"group_size", c.quant_group_size}};
  return j.dump(2) + "\n";
}

}  // namespace tailor
