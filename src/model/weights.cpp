#include "model/weights.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "util/error.h"

namespace tailor {

using torch::Tensor;

static torch::ScalarType to_scalar(DType t) {
  switch (t) {
    case DType::F64: return torch::kDouble;
    case DType::F32: return torch::kFloat;
    case DType::F16: return torch::kHalf;
    case DType::BF16: return torch::kBFloat16;
    case DType::I64: return torch::kLong;
    case DType::I32: return torch::kInt;
    case DType::I16: return torch::kShort;
    case DType::I8: return torch::kChar;
    case DType::U8: return torch::kByte;
    case DType::BOOL: return torch::kBool;
  }
  return torch::kFloat;
}

static DType from_scalar(torch::ScalarType t) {
  switch (t) {
    case torch::kDouble: return DType::F64;
    case torch::kFloat: return DType::F32;
    case torch::kHalf: return DType::F16;
    case torch::kBFloat16: return DType::BF16;
    case torch::kLong: return DType::I64;
    case torch::kInt: return DType::I32;
    case torch::kChar: return DType::I8;
    case torch::kByte: return DType::U8;
    default: throw Error("cannot store tensors of this dtype in safetensors");
  }
}

Tensor tensor_from_view(const TensorView& v) {
  // The mapping is read-only and may be unaligned for the dtype: copy through an owned buffer.
  Tensor t = torch::empty(v.shape, torch::TensorOptions().dtype(to_scalar(v.dtype)));
  if (v.nbytes) std::memcpy(t.data_ptr(), v.data, v.nbytes);
  return t;
}

static std::string shape_str(const std::vector<int64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + "]";
}

static bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

static bool same_values(const TensorView& a, const TensorView& b) {
  if (a.shape != b.shape) return false;
  if (a.dtype == b.dtype) return a.nbytes == b.nbytes && std::memcmp(a.data, b.data, a.nbytes) == 0;
  return torch::equal(tensor_from_view(a).to(torch::kDouble), tensor_from_view(b).to(torch::kDouble));
}

T5Ties resolve_t5_ties(const Checkpoint& ckpt, const std::string& prefix) {
  // transformers' loop over T5's _tied_weights_keys {target: "shared.weight"} in declaration order.
  T5Ties t;
  std::string shared = prefix + "shared.weight";
  const std::string copies[3] = {prefix + "lm_head.weight", prefix + "encoder.embed_tokens.weight",
                                 prefix + "decoder.embed_tokens.weight"};
  bool* untied[3] = {&t.untied.lm_head, &t.untied.encoder_embed_tokens, &t.untied.decoder_embed_tokens};
  if (ckpt.has(shared)) t.shared_key = shared;
  for (int i = 0; i < 3; ++i) {
    if (!ckpt.has(copies[i])) continue;  // tied to shared (or to the stored copy that becomes shared)
    if (t.shared_key.empty()) {
      t.shared_key = copies[i];  // shared is missing: it takes this copy's tensor
      continue;
    }
    *untied[i] = !same_values(ckpt.get(t.shared_key), ckpt.get(copies[i]));
  }
  return t;
}

void load_weights(torch::nn::Module& model, const Checkpoint& ckpt) {
  torch::NoGradGuard ng;
  std::set<std::string> used;
  std::vector<std::string> missing, misshaped, untied_in_checkpoint;
  std::map<std::string, Tensor> params;
  for (auto& item : model.named_parameters(true)) params[item.key()] = item.value();
  auto copy_into = [&](Tensor& p, const Tensor& src, const std::string& name) {
    if (src.sizes() != p.sizes()) {
      misshaped.push_back(name + ": checkpoint " + shape_str(src.sizes().vec()) + ", model " + shape_str(p.sizes().vec()));
      return;
    }
    p.copy_(src.to(p.device(), p.scalar_type()));
  };
  // Exception 1: T5's tied copies of `shared` (resolve_t5_ties). The ones the checkpoint keeps as
  // tensors of their own load below by name; the tied ones are consumed here.
  const std::string lm = "language_model.";
  T5Ties ties = resolve_t5_ties(ckpt, lm);
  const std::pair<std::string, bool> copies[3] = {{lm + "lm_head.weight", ties.untied.lm_head},
                                                  {lm + "encoder.embed_tokens.weight", ties.untied.encoder_embed_tokens},
                                                  {lm + "decoder.embed_tokens.weight", ties.untied.decoder_embed_tokens}};
  for (const auto& [key, untied] : copies) {
    if (!ckpt.has(key)) continue;
    if (!untied) used.insert(key);
    else if (!params.count(key)) untied_in_checkpoint.push_back(key);
  }
  for (auto& [name, p] : params) {
    if (name.find("lora_") != std::string::npos) continue;
    if (name == lm + "shared.weight" && !ties.shared_key.empty()) {
      copy_into(p, tensor_from_view(ckpt.get(ties.shared_key)), name);
      used.insert(ties.shared_key);
      continue;
    }
    if (ckpt.has(name)) {
      copy_into(p, tensor_from_view(ckpt.get(name)), name);
      used.insert(name);
      continue;
    }
    // Exception 2: transformers 4.x checkpoints keep the ViT attention bias as q_bias and v_bias.
    if (ends_with(name, "self_attn.qkv.bias")) {
      std::string base = name.substr(0, name.size() - std::strlen("qkv.bias"));
      if (ckpt.has(base + "q_bias") && ckpt.has(base + "v_bias")) {
        Tensor q = tensor_from_view(ckpt.get(base + "q_bias")), v = tensor_from_view(ckpt.get(base + "v_bias"));
        copy_into(p, torch::cat({q, torch::zeros_like(q), v}), name);
        used.insert(base + "q_bias");
        used.insert(base + "v_bias");
        continue;
      }
    }
    missing.push_back(name);
  }
  std::vector<std::string> unexpected;
  for (const auto& k : ckpt.names()) {
    if (used.count(k)) continue;
    if (std::find(untied_in_checkpoint.begin(), untied_in_checkpoint.end(), k) != untied_in_checkpoint.end()) continue;
    // Exception 3: HF ignores this unused weight of old T5 checkpoints too.
    if (ends_with(k, "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight")) continue;
    unexpected.push_back(k);
  }
  if (!missing.empty() || !unexpected.empty() || !misshaped.empty() || !untied_in_checkpoint.empty()) {
    std::string msg = "checkpoint " + ckpt.where() + " does not match the model:";
    auto list = [&](const char* what, const std::vector<std::string>& v) {
      if (v.empty()) return;
      msg += std::string("\n  ") + what + " (" + std::to_string(v.size()) + "):";
      for (size_t i = 0; i < v.size() && i < 20; ++i) msg += "\n    " + v[i];
      if (v.size() > 20) msg += "\n    ... and " + std::to_string(v.size() - 20) + " more";
    };
    list("missing tensors", missing);
    list("unexpected tensors", unexpected);
    list("tensors with the wrong shape", misshaped);
    list("copies of language_model.shared.weight stored with other values, which this model ties to it", untied_in_checkpoint);
    throw Error(msg);
  }
}

torch::ScalarType checkpoint_float_dtype(const Checkpoint& ckpt) {
  torch::ScalarType best = torch::kFloat;
  int64_t best_numel = -1;
  for (const auto& name : ckpt.names()) {
    const TensorView v = ckpt.get(name);
    torch::ScalarType t = to_scalar(v.dtype);
    if (!torch::isFloatingType(t)) continue;
    int64_t n = 1;
    for (int64_t d : v.shape) n *= d;
    if (n > best_numel) best = t, best_numel = n;
  }
  return best;
}

void save_weights(const std::string& dir, torch::nn::Module& model, torch::ScalarType dtype, bool skip_lora) {
  std::vector<Tensor> keep;  // owns the contiguous CPU copies while writing
  std::vector<TensorToWrite> out;
  for (auto& item : model.named_parameters(true)) {
    if (skip_lora && item.key().find("lora_") != std::string::npos) continue;
    Tensor t = item.value().detach();
    // T5's wo stays float32 in HF's half-precision models; keep every tensor's own float32 otherwise.
    // Quantized weights keep their codes and float32 scales (model/quantize.h).
    torch::ScalarType st = t.is_floating_point() && !ends_with(item.key(), ".weight_scale") ? dtype : t.scalar_type();
    t = t.to(torch::kCPU, st).contiguous();
    keep.push_back(t);
    TensorToWrite w;
    w.name = item.key();
    w.dtype = from_scalar(st);
    w.shape = t.sizes().vec();
    w.data = t.data_ptr();
    w.nbytes = t.numel() * t.element_size();
    out.push_back(w);
  }
  write_safetensors_dir(dir, out);
}

}  // namespace tailor
