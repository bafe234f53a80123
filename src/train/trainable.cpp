#include "train/trainable.h"

#include <cstdio>

#include "train/lora.h"
#include "util/error.h"

namespace tailor {

using torch::Tensor;

static bool module_trainable(torch::nn::Module& m) {
  for (auto& p : m.parameters())
    if (p.requires_grad()) return true;
  return false;
}

static void freeze(Blip2ForConditionalGeneration& m, ModelPart part) {
  torch::nn::Module* module = nullptr;
  switch (part) {
    case ModelPart::kVision: module = m->vision_model.get(); break;
    case ModelPart::kQFormer:
      module = m->qformer.get();
      m->query_tokens.set_requires_grad(false);
      break;
    case ModelPart::kProjection: module = m->language_projection.get(); break;
    case ModelPart::kLanguage: module = m->language_model.get(); break;
  }
  for (auto& p : module->parameters()) p.set_requires_grad(false);
}

Trainable set_up_trainable(Blip2ForConditionalGeneration& m, const TrainOptions& o,
                           const std::vector<ModelPart>& frozen, bool log) {
  for (auto& p : m->parameters()) p.set_requires_grad(o.full);
  if (o.full) {
    for (ModelPart part : frozen) freeze(m, part);
  } else {
    // From the Blip2 root, as PEFT on Blip2ForConditionalGeneration: the same suffix match over the
    // same module names, and adapter keys with the full path ("language_model.encoder...").
    LoraSummary ls = attach_lora(*m, o.lora);
    std::string targets;
    for (const auto& x : o.lora.targets) targets += (targets.empty() ? "" : ",") + x;
    if (log)
      std::printf("LoRA r=%lld alpha=%g dropout=%g on %zu modules (%s): %lld trainable parameters\n",
                  (long long)o.lora.r, o.lora.alpha, o.lora.dropout, ls.modules.size(), targets.c_str(),
                  (long long)ls.trainable_parameters);
  }
  Trainable t;
  // The model's parameters, a quantized weight counted as the weights it stands for, not its codes
  // and scales.
  for (auto& mod : m->modules())
    if (auto* lin = dynamic_cast<LinearImpl*>(mod.get()); lin && lin->is_quantized())
      t.all_parameters += lin->in_features * lin->out_features - lin->weight.numel() - lin->weight_scale.numel();
  for (auto& item : m->named_parameters(true)) {
    t.all_parameters += item.value().numel();
    if (!item.value().requires_grad()) continue;
    t.named.emplace_back(item.key(), item.value());
    t.params.push_back(item.value());
    t.parameters += item.value().numel();
  }
  if (t.params.empty()) throw Error("nothing to train: every part is frozen");
  t.image_side_frozen = !module_trainable(*m->vision_model) && !module_trainable(*m->qformer) &&
                        !m->query_tokens.requires_grad();
  return t;
}

std::unique_ptr<FlatAdam> make_optimizer(Trainable& t, const TrainOptions& o, OptimizerKind kind) {
  std::vector<std::vector<Tensor>> groups;
  if (o.image_lr_scale == 1.0) {
    groups.push_back(t.params);
  } else {
    std::vector<Tensor> lang, image;
    for (const auto& [name, p] : t.named) (name.rfind("language_model.", 0) == 0 ? lang : image).push_back(p);
    if (lang.empty() || image.empty()) throw Error("--image-lr-scale needs both the language model and the image side trained");
    groups.push_back(lang);
    groups.push_back(image);
  }
  t.optimizer_groups = groups.size();
  FlatAdamOptions ao;
  ao.lr = o.lr;
  ao.beta2 = o.adam_beta2;
  ao.decoupled = kind == OptimizerKind::kAdamW;
  ao.weight_decay = kind == OptimizerKind::kAdamW ? o.weight_decay : 0.0;  // Adam: no decay, as before
  return std::make_unique<FlatAdam>(groups, ao);
}

void set_lr(FlatAdam& opt, const Trainable& t, double lr, double image_scale) {
  for (size_t i = 0; i < t.optimizer_groups; ++i) opt.set_lr(i, i == 0 ? lr : lr * image_scale);
}

void set_modes(Blip2ForConditionalGeneration& m, bool image_side_frozen) {
  m->train();
  if (image_side_frozen) {
    m->vision_model->eval();
    m->qformer->eval();
  }
}

std::vector<std::pair<std::string, Tensor>> image_side_parameters(Blip2ForConditionalGeneration& m) {
  std::vector<std::pair<std::string, Tensor>> image_side;
  for (auto& item : m->named_parameters(true)) {
    const std::string& k = item.key();
    if (k.rfind("vision_model.", 0) == 0 || k.rfind("qformer.", 0) == 0 || k == "query_tokens")
      image_side.emplace_back(k, item.value());
  }
  return image_side;
}

}  // namespace tailor
