// `tailor init`: randomly initialised model directories in HF's layout, since no weights can be
// downloaded here. Presets: "tiny" (trains on 2 CPU cores in minutes), "small" (in between) and
// "blip2-flan-t5-xl" (the real checkpoint's shape, 3.88B parameters).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace tailor {

std::vector<std::string> preset_names();
// The config of a preset for a tokenizer of `tokenizer_vocab` ids (pieces + extra ids): the image
// token goes right after them. Throws Error for an unknown name.
Blip2Config preset_config(const std::string& name, int64_t tokenizer_vocab);
int preset_tokenizer_pieces(const std::string& name);

// Sentences the presets' SentencePiece model is trained on: the question templates, catalog
// attribute values and general product-description English.
std::vector<std::string> tokenizer_corpus();

struct InitOptions {
  std::string preset = "tiny";
  std::string out_dir;
  uint64_t seed = 0;
  std::string dtype = "f32";  // weights as written: f32 or bf16
  // Weight initialisation: "hf" = HF BLIP-2's normal(0.02) everywhere; "fan-in" = scales that keep
  // activations and attention logits of unit order (for training from scratch; see init_fan_in);
  // "auto" = hf (fan-in did not change the demo's outcome: tools/demo_sweep/README.md, CPU section).
  std::string init = "auto";
  std::string task_file;  // the task (core/attributes.h load_attribute_specs); "" = default_attributes()
  // The vision tower's input side and patch side in pixels (0: the preset's); the image must be a
  // whole number of patches. More pixels show finer prints and stripes, at more compute.
  int image_size = 0, patch_size = 0;
};
// Writes the directory; returns the parameter count.
int64_t init_model_dir(const InitOptions& opts);

}  // namespace tailor
