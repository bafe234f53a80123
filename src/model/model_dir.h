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
Blip2Bundle load_model_dir(const std::string& dir, const torch::Device& dev, torch::ScalarType dtype);

// Casts a model to `dtype` with HF's float32 exceptions.
void cast_model(Blip2ForConditionalGeneration& model, torch::ScalarType dtype);

// Writes config.json, weights (in dtype), spiece.model, preprocessor_config.json, tailor_task.json.
void save_model_dir(const std::string& dir, Blip2Bundle& b, torch::ScalarType dtype);

}  // namespace tailor
