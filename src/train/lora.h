// LoRA as PEFT does it: adapters on the Linear modules whose names end with a target (PEFT's suffix
// match: "q" selects ...SelfAttention.q and ...EncDecAttention.q, not "query"), saved in PEFT's format.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

namespace tailor {

struct LoraOptions {
  int64_t r = 8;
  double alpha = 32;
  double dropout = 0.05;
  std::vector<std::string> targets = {"q", "v"};
};

struct LoraSummary {
  std::vector<std::string> modules;  // names of the adapted Linear modules
  int64_t trainable_parameters = 0;
};

// Freezes nothing by itself; attaches adapters and returns what it adapted. Throws Error when no
// module matches a target.
LoraSummary attach_lora(torch::nn::Module& model, const LoraOptions& o);
bool lora_target_matches(const std::string& module_name, const std::vector<std::string>& targets);
// Folds every adapter into its base weight (W += alpha/r * B A) and removes the adapters.
void merge_lora(torch::nn::Module& model);
// adapter_config.json + adapter_model.safetensors with PEFT's key names
// ("base_model.model.<module>.lora_A.weight"), loadable by PeftModel.from_pretrained.
void save_peft_adapter(const std::string& dir, torch::nn::Module& model, const LoraOptions& o,
                       const std::string& base_model_name);
// Loads an adapter written by save_peft_adapter (or PEFT) into a model that has adapters attached.
void load_peft_adapter(const std::string& dir, torch::nn::Module& model);

}  // namespace tailor
