#include "train/lora.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "model/layers.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "util/error.h"
#include "util/fs.h"

namespace tailor {

bool lora_target_matches(const std::string& name, const std::vector<std::string>& targets) {
  for (const auto& t : targets) {
    if (name == t) return true;
    if (name.size() > t.size() && name.compare(name.size() - t.size(), t.size(), t) == 0 &&
        name[name.size() - t.size() - 1] == '.')
      return true;
  }
  return false;
}

LoraSummary attach_lora(torch::nn::Module& model, const LoraOptions& o) {
  if (o.r <= 0) throw Error("--lora-r must be positive");
  LoraSummary s;
  for (auto& item : model.named_modules()) {
    auto* lin = dynamic_cast<LinearImpl*>(item.value().get());
    if (!lin || !lora_target_matches(item.key(), o.targets)) continue;
    lin->attach_lora(o.r, o.alpha, o.dropout);
    s.modules.push_back(item.key());
    s.trainable_parameters += lin->lora_A->weight.numel() + lin->lora_B->weight.numel();
  }
  if (s.modules.empty()) {
    std::string t;
    for (auto& x : o.targets) t += (t.empty() ? "" : ",") + x;
    throw Error("--lora-targets " + t + " matches no Linear module of the model");
  }
  return s;
}

static std::string shape_text(torch::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

void merge_lora(torch::nn::Module& model) {
  for (auto& item : model.named_modules())
    if (auto* lin = dynamic_cast<LinearImpl*>(item.value().get())) lin->merge_lora();
}

void save_peft_adapter(const std::string& dir, torch::nn::Module& model, const LoraOptions& o,
                       const std::string& base_model_name) {
  make_dirs(dir);
  std::vector<torch::Tensor> keep;
  std::vector<TensorToWrite> out;
  for (auto& item : model.named_parameters(true)) {
    if (item.key().find("lora_") == std::string::npos) continue;
    torch::Tensor t = item.value().detach().to(torch::kCPU, torch::kFloat).contiguous();
    keep.push_back(t);
    TensorToWrite w;
    w.name = "base_model.model." + item.key();
    w.dtype = DType::F32;
    w.shape = t.sizes().vec();
    w.data = t.data_ptr();
    w.nbytes = t.numel() * sizeof(float);
    out.push_back(w);
  }
  write_safetensors(join_path(dir, "adapter_model.safetensors"), out);
  // PEFT 0.21's LoraConfig fields (peft/tuners/lora/config.py); lora_alpha is an int there.
  nlohmann::json alpha = o.alpha == std::floor(o.alpha) ? nlohmann::json(static_cast<int64_t>(o.alpha))
                                                        : nlohmann::json(o.alpha);
  nlohmann::json cfg = {{"peft_type", "LORA"},
                        {"task_type", nullptr},
                        {"base_model_name_or_path", base_model_name},
                        {"revision", nullptr},
                        {"inference_mode", true},
                        {"r", o.r},
                        {"lora_alpha", alpha},
                        {"lora_dropout", o.dropout},
                        {"target_modules", o.targets},
                        {"exclude_modules", nullptr},
                        {"bias", "none"},
                        {"fan_in_fan_out", false},
                        {"use_rslora", false},
                        {"use_dora", false},
                        {"lora_bias", false},
                        {"modules_to_save", nullptr},
                        {"init_lora_weights", true},
                        {"layers_to_transform", nullptr},
                        {"layers_pattern", nullptr},
                        {"rank_pattern", nlohmann::json::object()},
                        {"alpha_pattern", nlohmann::json::object()}};
  write_file_atomic(join_path(dir, "adapter_config.json"), cfg.dump(2) + "\n");
}

void load_peft_adapter(const std::string& dir, torch::nn::Module& model) {
  Checkpoint ck = Checkpoint::open(join_path(dir, "adapter_model.safetensors"));
  torch::NoGradGuard ng;
  std::set<std::string> used;
  for (auto& item : model.named_parameters(true)) {
    if (item.key().find("lora_") == std::string::npos) continue;
    std::string key = "base_model.model." + item.key();
    if (!ck.has(key)) throw Error(dir + ": adapter has no tensor " + key);
    torch::Tensor t = tensor_from_view(ck.get(key));
    if (t.sizes() != item.value().sizes())
      throw Error(dir + ": tensor " + key + " has the wrong shape " + shape_text(t.sizes()) + " (the model's adapter: " +
                  shape_text(item.value().sizes()) + "; different --lora-r?)");
    item.value().copy_(t.to(item.value().device(), item.value().scalar_type()));
    used.insert(key);
  }
  if (used.empty()) throw Error(dir + ": the model has no LoRA adapters to load into");
  // Every tensor of the file must land somewhere: an adapter for modules the model did not adapt
  // (different --lora-targets) would otherwise be dropped without a word.
  for (const auto& name : ck.names())
    if (!used.count(name))
      throw Error(dir + ": adapter tensor " + name + " has no LoRA module in the model (different --lora-targets?)");
}

}  // namespace tailor
