#include "model/presets.h"

#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/attributes.h"
#include "model/model_dir.h"
#include "model/tokenizer.h"
#include "util/error.h"
#include "util/fs.h"

namespace tailor {

std::vector<std::string> preset_names() { return {"tiny", "small", "blip2-flan-t5-xl"}; }

int preset_tokenizer_pieces(const std::string& name) { return name == "tiny" ? 600 : 2000; }

Blip2Config preset_config(const std::string& name, int64_t tok_vocab) {
  Blip2Config c;
  c.text.feed_forward_proj = "gelu";  // as BLIP-2's Flan-T5: gated, exact GELU, untied lm_head
  c.text.dense_act_fn = "gelu";
  c.text.is_gated_act = true;
  c.text.tie_word_embeddings = false;
  c.text.scale_decoder_outputs = false;
  c.image_token_index = tok_vocab;  // the first id after the tokenizer's
  if (name == "tiny") {
    c.vision = VisionConfig{};
    c.vision.hidden_size = 128; c.vision.intermediate_size = 256; c.vision.num_hidden_layers = 3;
    c.vision.num_attention_heads = 4; c.vision.image_size = 64; c.vision.patch_size = 8;
    c.qformer.hidden_size = 128; c.qformer.num_hidden_layers = 2; c.qformer.num_attention_heads = 4;
    c.qformer.intermediate_size = 256; c.qformer.cross_attention_frequency = 1; c.qformer.encoder_hidden_size = 128;
    c.qformer.hidden_dropout_prob = 0.0; c.qformer.attention_probs_dropout_prob = 0.0;
    c.num_query_tokens = 8;
    c.text.d_model = 128; c.text.d_kv = 32; c.text.num_heads = 4; c.text.d_ff = 256;
    c.text.num_layers = 2; c.text.num_decoder_layers = 2; c.text.dropout_rate = 0.0;
  } else if (name == "small") {
    c.vision.hidden_size = 384; c.vision.intermediate_size = 1536; c.vision.num_hidden_layers = 6;
    c.vision.num_attention_heads = 6;
    c.qformer.hidden_size = 384; c.qformer.num_hidden_layers = 4; c.qformer.num_attention_heads = 6;
    c.qformer.intermediate_size = 1536; c.qformer.encoder_hidden_size = 384;
    c.num_query_tokens = 32;
    c.text.d_model = 512; c.text.d_kv = 64; c.text.num_heads = 8; c.text.d_ff = 1024;
    c.text.num_layers = 4; c.text.num_decoder_layers = 4;
  } else if (name == "blip2-flan-t5-xl") {
    // Salesforce/blip2-flan-t5-xl: EVA ViT-g/14, 12-layer Q-Former, Flan-T5-XL.
    c.vision = VisionConfig{};
    c.qformer = QFormerConfig{};
    c.num_query_tokens = 32;
    c.text.vocab_size = 32128; c.text.d_model = 2048; c.text.d_kv = 64; c.text.num_heads = 32;
    c.text.d_ff = 5120; c.text.num_layers = 24; c.text.num_decoder_layers = 24;
    c.image_token_index = 32100;
    return c;
  } else {
    std::string known;
    for (auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("unknown preset \"" + name + "\" (known: " + known + ")");
  }
  c.text.vocab_size = (tok_vocab + 1 + 7) / 8 * 8;  // + the image token, rounded up like T5's 32128
  return c;
}

std::vector<std::string> tokenizer_corpus() {
  std::vector<std::string> s;
  for (const auto& a : default_attributes()) {
    s.push_back(a.question);
    s.push_back(wrap_prompt(a.question));
  }
  const char* values[] = {
      "Fabric: Cotton", "Fabric: Polyester", "Fabric: Linen", "Fabric: Viscose Rayon", "Fabric: Cotton Blend",
      "Fabric: Denim", "Fabric: Silk", "Fabric: Wool", "Fabric: Nylon", "Fabric: Knitted", "Fabric: Lycra",
      "Fit: Regular Fit", "Fit: Slim Fit", "Fit: Tailored Fit", "Fit: Loose Fit", "Fit: Relaxed Fit",
      "Collar: Spread Collar", "Collar: Button-Down Collar", "Collar: Mandarin Collar", "Collar: Cutaway Collar",
      "Collar: Polo Collar", "Collar: Club Collar", "Collar: Wingtip Collar", "Collar: Built-up Collar",
      "Pattern: Solid", "Pattern: Striped", "Pattern: Checked", "Pattern: Printed", "Pattern: Graphic",
      "Pattern: Self Design", "Pattern: Colourblocked", "Pattern: Typography", "Pattern: Washed", "Pattern: Embroidered",
      "Neck: Round Neck", "Neck: V-Neck", "Neck: Polo Collar", "Neck: Henley Neck", "Neck: Mandarin Collar",
      "Neck: Hood", "Neck: Scoop Neck", "Neck: High Neck", "Neck: Boat Neck",
      "Sleeve Length: Short Sleeves", "Sleeve Length: Long Sleeves", "Sleeve Length: Sleeveless",
      "Sleeve Length: Three-Quarter Sleeves", "Sleeve Length: Roll-up Sleeves",
      "Sleeve Styling: Regular Sleeves", "Sleeve Styling: Roll-Up Sleeves", "Sleeve Styling: Cap Sleeves",
      "Sleeve Styling: Raglan Sleeves", "Sleeve Styling: Batwing Sleeves", "Sleeve Styling: Puff Sleeves",
      "baseColour: Black", "baseColour: White", "baseColour: Blue", "baseColour: Navy Blue", "baseColour: Red",
      "baseColour: Green", "baseColour: Yellow", "baseColour: Grey", "baseColour: Grey Melange", "baseColour: Pink",
      "baseColour: Purple", "baseColour: Maroon", "baseColour: Orange", "baseColour: Brown", "baseColour: Beige",
      "baseColour: Olive", "baseColour: Teal", "baseColour: Cream", "baseColour: Off White", "baseColour: Charcoal",
      "baseColour: Magenta", "baseColour: Turquoise Blue", "baseColour: Lavender", "baseColour: Peach",
      "baseColour: Mustard", "baseColour: Khaki", "baseColour: Rust", "baseColour: Sea Green", "baseColour: Multi",
  };
  for (const char* v : values) s.push_back(v);
  const char* prose[] = {
      "This shirt is made of soft cotton and has a regular fit with long sleeves.",
      "A classic striped T-shirt with a round neck, short sleeves and a relaxed silhouette.",
      "The fabric moves easily with you and keeps you cool all day long.",
      "Pair this checked shirt with denim for a smart casual look at the weekend.",
      "Product type: Shirts. Product type: Tshirts. Men Women Boys Girls Unisex casual formal sports.",
      "What is the colour, the pattern, the fabric and the fit of this product?",
      "The quick brown fox jumps over the lazy dog. 0 1 2 3 4 5 6 7 8 9 10 100 2024",
  };
  for (const char* p : prose) s.push_back(p);
  return s;
}

// HF's BLIP-2 initialisation: normal(0, 0.02) for Linear/Conv/Embedding weights, zero biases,
// LayerNorm ones/zeros, query tokens and position embeddings normal(0, 0.02).
static void init_weights(torch::nn::Module& m) {
  torch::NoGradGuard ng;
  for (auto& p : m.named_parameters(true)) {
    const std::string& n = p.key();
    torch::Tensor& t = p.value();
    bool is_norm = n.find("layer_norm") != std::string::npos || n.find("layernorm") != std::string::npos ||
                   n.find("LayerNorm") != std::string::npos;
    bool is_bias = n.size() >= 5 && n.compare(n.size() - 5, 5, ".bias") == 0;
    if (is_norm) {
      if (is_bias) t.zero_();
      else t.fill_(1.0);
    } else if (is_bias) {
      t.zero_();
    } else {
      t.normal_(0.0, 0.02);
    }
  }
}

static bool ends_with(const std::string& s, const char* tail) {
  size_t n = std::strlen(tail);
  return s.size() >= n && s.compare(s.size() - n, n, tail) == 0;
}

// Fan-in initialisation for training from scratch. With normal(0.02) everywhere every attention
// starts nearly uniform (logits ~1e-3): the Q-Former's queries average all patches, so colour
// survives and layout does not, and q/k gradients (a product of two tiny matrices) stay tiny.
// Here Linear/Conv weights get std 1/sqrt(fan_in) (activations keep unit scale, attention
// logits start of order 1); T5 keeps its own init (no 1/sqrt(d) in its attention):
// q (d_model*d_kv)^-0.5, k/v/wi d_model^-0.5, o (heads*d_kv)^-0.5, wo d_ff^-0.5, embeddings 1.
// The untied lm_head gets d_model^-0.5 so the first logits are of unit order. Learned query
// tokens and the vision position/class embeddings get std 1, the patch embedding's output scale.
static void init_fan_in(torch::nn::Module& m, const Blip2Config& c) {
  torch::NoGradGuard ng;
  const double dm = static_cast<double>(c.text.d_model), dkv = static_cast<double>(c.text.d_kv);
  const double heads = static_cast<double>(c.text.num_heads), dff = static_cast<double>(c.text.d_ff);
  for (auto& p : m.named_parameters(true)) {
    const std::string& n = p.key();
    torch::Tensor& t = p.value();
    bool is_norm = n.find("layer_norm") != std::string::npos || n.find("layernorm") != std::string::npos ||
                   n.find("LayerNorm") != std::string::npos;
    bool is_bias = ends_with(n, ".bias");
    bool is_t5 = n.rfind("language_model.", 0) == 0;
    if (is_norm) {
      if (is_bias) t.zero_();
      else t.fill_(1.0);
    } else if (is_bias) {
      t.zero_();
    } else if (n == "query_tokens" || n.find("position_embedding") != std::string::npos ||
               n.find("class_embedding") != std::string::npos) {
      t.normal_(0.0, 1.0);
    } else if (is_t5) {
      double std = 1.0;  // shared / embed_tokens
      if (ends_with(n, ".q.weight")) std = 1.0 / std::sqrt(dm * dkv);
      else if (ends_with(n, ".k.weight") || ends_with(n, ".v.weight")) std = 1.0 / std::sqrt(dm);
      else if (ends_with(n, ".o.weight")) std = 1.0 / std::sqrt(heads * dkv);
      else if (n.find(".wi") != std::string::npos) std = 1.0 / std::sqrt(dm);
      else if (ends_with(n, ".wo.weight")) std = 1.0 / std::sqrt(dff);
      else if (n.find("relative_attention_bias") != std::string::npos) std = 1.0 / std::sqrt(dm);
      else if (n.find("lm_head") != std::string::npos) std = 1.0 / std::sqrt(dm);
      t.normal_(0.0, std);
    } else if (t.dim() >= 2) {
      int64_t fan_in = t.numel() / t.size(0);  // Linear [out, in], Conv [out, in, kh, kw]
      t.normal_(0.0, 1.0 / std::sqrt(static_cast<double>(fan_in)));
    } else {
      t.normal_(0.0, 0.02);
    }
  }
}

int64_t init_model_dir(const InitOptions& o) {
  if (o.out_dir.empty()) throw Error("init needs --out DIR");
  Blip2Config probe = preset_config(o.preset, 1);  // validates the name first
  if (o.image_size < 0 || o.patch_size < 0) throw Error("--image-size and --patch-size must be positive");
  const int64_t image = o.image_size > 0 ? o.image_size : probe.vision.image_size;
  const int64_t patch = o.patch_size > 0 ? o.patch_size : probe.vision.patch_size;
  if (image % patch != 0)
    throw Error("--image-size " + std::to_string(image) + " is not a whole number of " + std::to_string(patch) +
                "-pixel patches (--patch-size)");
  make_dirs(o.out_dir);
  std::string spm = join_path(o.out_dir, "spiece.model");
  train_t5_sentencepiece(tokenizer_corpus(), preset_tokenizer_pieces(o.preset), spm);
  T5Tokenizer tok = T5Tokenizer::load(spm);

  Blip2Bundle b;
  b.dir = o.out_dir;
  b.cfg = preset_config(o.preset, tok.vocab_size());
  if (o.image_size > 0) b.cfg.vision.image_size = o.image_size;
  if (o.patch_size > 0) b.cfg.vision.patch_size = o.patch_size;
  torch::manual_seed(o.seed);
  b.model = Blip2ForConditionalGeneration(b.cfg, T5Untied{false, false, /*lm_head=*/!b.cfg.text.tie_word_embeddings});
  std::string scheme = o.init == "auto" ? "hf" : o.init;
  if (scheme != "hf" && scheme != "fan-in") throw Error("--init must be auto, hf or fan-in (got \"" + o.init + "\")");
  if (scheme == "fan-in") init_fan_in(*b.model, b.cfg);
  else init_weights(*b.model);
  if (scheme == "hf" && o.preset == "tiny") {
    // Trained from scratch in minutes (tailor demo): position embeddings of std 0.02 are ~14x smaller
    // than the patch embeddings, and Adam moves them ~lr per step, so where a patch sits barely
    // reaches the model within the demo's budget. Std 0.3 helped in the sweep (tools/demo_sweep).
    torch::NoGradGuard ng;
    b.model->vision_model->embeddings->position_embedding.normal_(0.0, 0.3);
  }
  b.spiece_path = spm;
  b.image_cfg = ImageProcessorConfig{};
  b.image_cfg.height = b.image_cfg.width = static_cast<int>(b.cfg.vision.image_size);
  b.task.attributes = o.task_file.empty() ? default_attributes() : load_attribute_specs(o.task_file);
  torch::ScalarType dt = o.dtype == "bf16" ? torch::kBFloat16 : torch::kFloat;
  save_model_dir(o.out_dir, b, dt);
  int64_t n = 0;
  for (auto& p : b.model->parameters()) n += p.numel();
  return n;
}

}  // namespace tailor
