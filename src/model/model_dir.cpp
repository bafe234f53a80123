#include "model/model_dir.h"

#include <ATen/Context.h>

#include <unistd.h>

#include <filesystem>
#include <set>

#include "model/weights.h"
#include "util/error.h"
#include "util/fs.h"

namespace tailor {

torch::ScalarType parse_dtype_name(const std::string& n, const torch::Device& dev) {
  if (n == "auto") return dev.is_cuda() ? torch::kBFloat16 : torch::kFloat;
  if (n == "f32" || n == "float32" || n == "fp32") return torch::kFloat;
  if (n == "bf16" || n == "bfloat16") return torch::kBFloat16;
  if (n == "f16" || n == "float16" || n == "fp16") return torch::kHalf;
  throw Error("unknown dtype \"" + n + "\" (use auto, f32, bf16 or f16)");
}

namespace {

bool is_quantizable_layer(const std::string& name) {
  return name.rfind("vision_model.", 0) == 0 || name.rfind("language_model.encoder.", 0) == 0 ||
         name.rfind("language_model.decoder.", 0) == 0;
}

std::vector<std::pair<std::string, LinearImpl*>> quantizable_linears(Blip2ForConditionalGeneration& model) {
  std::vector<std::pair<std::string, LinearImpl*>> out;
  for (auto& item : model->named_modules())
    if (auto* lin = dynamic_cast<LinearImpl*>(item.value().get()))
      if (is_quantizable_layer(item.key())) out.emplace_back(item.key(), lin);
  return out;
}

}  // namespace

void quantize_frozen_linears(Blip2ForConditionalGeneration& model, QuantFormat f, int64_t group, const torch::Device& dev) {
  for (auto& [name, lin] : quantizable_linears(model)) lin->quantize(f, group, torch::kFloat, dev, name);
  model->cfg.weight_format = quant_format_name(f);
  model->cfg.quant_group_size = group;
}

void cast_model(Blip2ForConditionalGeneration& model, torch::ScalarType dtype) {
  // model->to(dtype) would turn quantized codes into floats: cast tensor by tensor, skipping them.
  std::set<const void*> keep;
  for (auto& m : model->modules())
    if (auto* lin = dynamic_cast<LinearImpl*>(m.get()); lin && lin->is_quantized()) {
      keep.insert(lin->weight.unsafeGetTensorImpl());
      keep.insert(lin->weight_scale.unsafeGetTensorImpl());
      lin->compute_dtype = dtype;
    }
  {
    torch::NoGradGuard ng;
    for (auto& p : model->parameters())
      if (p.is_floating_point() && !keep.count(p.unsafeGetTensorImpl())) p.set_data(p.to(dtype));
    for (auto& b : model->buffers())
      if (b.is_floating_point()) b.set_data(b.to(dtype));
  }
  if (dtype == torch::kFloat) return;
  model->qformer->to(torch::kFloat);
  {
    torch::NoGradGuard ng;
    model->query_tokens.set_data(model->query_tokens.to(torch::kFloat));
  }
  // HF keeps T5's `wo` in float32 because its outputs overflow float16. bfloat16 has float32's
  // range, and a float32 `wo` made the xl T5 step 1.5x slower on the H100 (float32 GEMMs), so only
  // float16 models keep it.
  if (dtype == torch::kHalf)
    for (auto* stack : {&model->language_model->encoder, &model->language_model->decoder})
      for (size_t i = 0; i < (*stack)->block->size(); ++i)
        (*stack)->block->ptr<T5BlockImpl>(i)->ff_layer()->DenseReluDense->wo->to(torch::kFloat);
  // The float32 parts of a half-precision model (the Q-Former, LoRA adapters) may use TF32.
  at::globalContext().setAllowTF32CuBLAS(true);
}

Blip2Bundle load_model_dir(const std::string& dir, const torch::Device& dev, torch::ScalarType dtype,
                           const std::string& quantize) {
  if (!std::filesystem::is_directory(dir)) throw Error("model directory " + dir + " does not exist");
  Blip2Bundle b;
  b.dir = dir;
  b.cfg = load_blip2_config(dir);
  const std::string saved = b.cfg.weight_format.empty() ? "none" : b.cfg.weight_format;
  const std::string wanted = quantize == "auto" ? saved : quantize;
  QuantFormat format = parse_quant_format(wanted, "--quantize");
  if (saved != "none" && wanted != saved)
    throw Error(dir + " was saved quantized (" + saved + "): it loads only as --quantize " + saved +
                " (or auto); for " + wanted + ", start from the original checkpoint");
  // float16 would keep T5's wo in float32 (cast_model), which quantized layers don't do.
  if (format != QuantFormat::kNone && dtype != torch::kBFloat16 && dtype != torch::kFloat)
    throw Error("--quantize " + wanted + " computes in bf16 or f32: choose --dtype bf16 or f32");
  // Modules are built in float32 on the host first: refuse a config the memory can't hold.
  double need = estimated_parameters(b.cfg) * 4, have = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGE_SIZE));
  if (have > 0 && need > have)
    throw Error(dir + "/config.json: the model it describes needs about " + std::to_string(int64_t(need / (1 << 20))) +
                " MiB as float32 while building, more than this machine's " + std::to_string(int64_t(have / (1 << 20))) +
                " MiB of memory");
  Checkpoint ckpt = Checkpoint::open(dir);
  {
    LinearInitSkipped skip;  // load_weights overwrites every weight (or fails naming the missing ones)
    b.model = Blip2ForConditionalGeneration(b.cfg, resolve_t5_ties(ckpt).untied);
  }
  if (saved != "none")
    for (auto& [name, lin] : quantizable_linears(b.model)) lin->make_quantized_storage(format, b.cfg.quant_group_size, torch::kFloat);
  load_weights(*b.model, ckpt);
  // From the checkpoint's own values (float32 here), on the device whose memory the codes are for.
  if (saved == "none" && format != QuantFormat::kNone) quantize_frozen_linears(b.model, format, 64, dev);
  cast_model(b.model, dtype);
  b.model->to(dev);
  b.model->eval();
  if (format == QuantFormat::kNf4) nf4_pair_table(dev, dtype);
  b.cfg = b.model->cfg;
  b.spiece_path = join_path(dir, "spiece.model");
  b.tokenizer = std::make_shared<T5Tokenizer>(T5Tokenizer::load(b.spiece_path));
  if (b.tokenizer->vocab_size() > b.cfg.text.vocab_size)
    throw Error(b.spiece_path + ": the tokenizer has " + std::to_string(b.tokenizer->vocab_size()) +
                " tokens but the model's vocabulary is " + std::to_string(b.cfg.text.vocab_size));
  b.image_cfg = load_image_processor_config(dir);
  b.task = load_task_info(dir);
  return b;
}

void save_model_dir(const std::string& dir, Blip2Bundle& b, torch::ScalarType dtype) {
  make_dirs(dir);
  write_file_atomic(join_path(dir, "config.json"), blip2_config_json(b.cfg));
  save_weights(dir, *b.model, dtype);
  std::string dst = join_path(dir, "spiece.model");
  if (std::filesystem::absolute(b.spiece_path) != std::filesystem::absolute(dst))
    write_file_atomic(dst, read_file(b.spiece_path));
  save_image_processor_config(dir, b.image_cfg);
  save_task_info(dir, b.task);
}

}  // namespace tailor
