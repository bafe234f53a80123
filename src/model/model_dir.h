// A model directory in HF's layout (config.json, model.safetensors or shards, spiece.model,
// preprocessor_config.json) plus tailor_task.json: loading it onto a device, and writing one.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

#include "core/attributes.h"
#include "model/blip2.h"
#include "model/config.h"
#include "model/image_processor.h"
#include "model/quantize.h"
#include "model/tokenizer.h"

namespace tailor {

struct Blip2Bundle {
  std::string dir;
  Blip2Config cfg;
  Blip2ForConditionalGeneration model{nullptr};
  std::shared_ptr<T5Tokenizer> tokenizer;
  std::string spiece_path;
  ImageProcessorConfig image_cfg;
  TaskInfo task;
};

torch::ScalarType parse_dtype_name(const std::string& name, const torch::Device& dev);  // auto/f32/bf16/f16

// Builds the model from config.json and loads its weights strictly (see model/weights.h).
// In half precision the Q-Former and T5's `wo` stay float32, as HF keeps them.
// `quantize` (--quantize): "auto" loads the directory as it is (dense, or as tailor saved it
// quantized); "none", "int8" or "nf4" ask for that form: a dense checkpoint is quantized as it loads
// (quantize_frozen_linears), a quantized one loads only in its own form.
Blip2Bundle load_model_dir(const std::string& dir, const torch::Device& dev, torch::ScalarType dtype,
                           const std::string& quantize = "auto");

// The Linear layers --quantize converts, from their float32 weights, quantized on `dev`: the vision
// tower's and T5's blocks. The Q-Former, query tokens and language projection stay dense as HF's
// BLIP-2 keeps them in float32 under bitsandbytes, and so do lm_head and the embeddings (HF leaves the
// output layer unquantized). Sets cfg's weight_format.
void quantize_frozen_linears(Blip2ForConditionalGeneration& model, QuantFormat f, int64_t group, const torch::Device& dev);

// Casts a model to `dtype` with HF's float32 exceptions. Quantized weights keep their codes and
// float32 scales; their matmuls compute in `dtype` (bf16 or f32: load_model_dir refuses f16).
void cast_model(Blip2ForConditionalGeneration& model, torch::ScalarType dtype);

// Writes config.json, weights (in dtype), spiece.model, preprocessor_config.json, tailor_task.json.
void save_model_dir(const std::string& dir, Blip2Bundle& b, torch::ScalarType dtype);

}  // namespace tailor
