#include "train/checkpoint.h"

#include <filesystem>
#include <sstream>

#include "core/rng.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "util/error.h"
#include "util/fs.h"

namespace tailor {

namespace fs = std::filesystem;
using json = nlohmann::json;
using torch::Tensor;

json train_options_json(const TrainOptions& o) {
  return {{"model_dir", o.model_dir}, {"data_dir", o.data_dir}, {"out_dir", o.out_dir}, {"full", o.full},
          {"freeze", o.freeze}, {"lora_r", o.lora.r}, {"lora_alpha", o.lora.alpha}, {"lora_dropout", o.lora.dropout},
          {"lora_targets", o.lora.targets}, {"attributes", o.attributes}, {"optimizer", o.optimizer}, {"lr", o.lr},
          {"weight_decay", o.weight_decay}, {"warmup_ratio", o.warmup_ratio}, {"max_grad_norm", o.max_grad_norm},
          {"image_lr_scale", o.image_lr_scale}, {"adam_beta2", o.adam_beta2},
          {"pretrain", {{"epochs", o.pretrain.epochs}, {"lr", o.pretrain.lr}, {"weight_decay", o.pretrain.weight_decay},
                        {"batch_size", o.pretrain.batch_size}, {"augment", o.pretrain.augment}, {"reframe", o.pretrain.reframe},
                        {"data", o.pretrain_data}}},
          {"batch_size", o.batch_size}, {"grad_accum", o.grad_accum}, {"epochs", o.epochs}, {"max_steps", o.max_steps},
          {"seed", o.seed}, {"augment", o.augment}, {"cache", o.cache}, {"checkpoint_every", o.checkpoint_every},
          {"resume", o.resume}, {"eval_each_epoch", o.eval_each_epoch}, {"device", o.device}, {"dtype", o.dtype},
          {"quantize", o.quantize}, {"gradient_checkpointing", o.gradient_checkpointing}, {"progress", o.progress}, {"cuda_graph", o.cuda_graph}};
}

json run_fingerprint(const TrainOptions& o, const std::string& train_jsonl_text) {
  json fp = train_options_json(o);
  // Left out, each for a reason:
  // - where things are (the directories may move between a run and its resume; the pairs
  //   themselves are in the fingerprint as a hash);
  // - how the same computation runs (cache, device, dtype, cuda_graph, gradient_checkpointing: a run
  //   may resume on another machine);
  // - what does not touch the weights (when to checkpoint, whether this is a resume, evaluation,
  //   the progress bar).
  for (const char* key : {"model_dir", "data_dir", "out_dir", "cache", "device", "dtype", "cuda_graph", "gradient_checkpointing",
                          "checkpoint_every", "resume", "eval_each_epoch", "progress"})
    fp.erase(key);
  // The pre-training's extra pairs count by their text (train_jsonl_text holds it), not their place;
  // options that runs before them did not have are left out, so those runs still resume.
  fp["pretrain"].erase("data");
  if (!o.pretrain.reframe) fp["pretrain"].erase("reframe");
  // Quantized frozen weights change every activation; a dense run (auto or none: training refuses a
  // directory saved quantized) keeps the fingerprint runs had before --quantize, so they resume.
  if (o.quantize == "auto" || o.quantize == "none") fp.erase("quantize");
  fp["train_jsonl_fnv1a64"] = std::to_string(fnv1a64(train_jsonl_text));
  return fp;
}

namespace {

// The random generators whose state a resumed run must continue from: the CPU one (dropout on the
// CPU) and, when training there, the device's.
std::vector<at::Generator> generators(const torch::Device& dev) {
  std::vector<at::Generator> g = {at::globalContext().defaultGenerator(torch::kCPU)};
  if (!dev.is_cpu()) g.push_back(at::globalContext().defaultGenerator(dev));
  return g;
}

template <typename T>
std::string serialized(const T& value) {
  std::ostringstream s;
  torch::save(value, s);
  return s.str();
}

}  // namespace

void write_f32_safetensors(const std::string& path, const NamedTensors& tensors,
                           const std::map<std::string, std::string>& metadata) {
  std::vector<Tensor> keep;  // the CPU copies the views below point into
  std::vector<TensorToWrite> w;
  for (const auto& [name, p] : tensors) {
    Tensor t = p.detach().to(torch::kCPU, torch::kFloat).contiguous();
    keep.push_back(t);
    w.push_back({name, DType::F32, t.sizes().vec(), t.data_ptr(), static_cast<size_t>(t.numel()) * 4});
  }
  write_safetensors(path, w, metadata);
}

// checkpoint/: trainable.safetensors, optimizer.safetensors, rng_N.pt, state.json, each written with fsync.
// The directory is built as checkpoint.tmp and swapped in by renames, so a kill at any moment leaves
// either the previous complete checkpoint or the new one (as checkpoint/ or, for an instant,
// checkpoint.old/, which load_checkpoint falls back to).
void save_checkpoint(const std::string& out_dir, const RunState& st, const json& fingerprint,
                     const NamedTensors& trainable, FlatAdam& opt,
                     const torch::Device& dev) {
  std::string dir = join_path(out_dir, "checkpoint"), tmp = dir + ".tmp", old = dir + ".old";
  remove_tree(tmp);
  make_dirs(tmp);
  write_f32_safetensors(join_path(tmp, "trainable.safetensors"), trainable);
  write_f32_safetensors(join_path(tmp, "optimizer.safetensors"), opt.state());
  std::vector<at::Generator> gens = generators(dev);
  for (size_t i = 0; i < gens.size(); ++i)
    write_file_atomic(join_path(tmp, "rng_" + std::to_string(i) + ".pt"), serialized(gens[i].get_state()));
  json s = {{"step", st.step}, {"epoch", st.epoch}, {"pos", st.pos}, {"generators", gens.size()}, {"options", fingerprint}};
  write_file_atomic(join_path(tmp, "state.json"), s.dump(2));
  // Commit point: the renames. A stale checkpoint.old (a kill while it was being removed) goes first:
  // checkpoint/ is complete whenever it exists, so .old is not needed then.
  if (fs::exists(dir)) {
    remove_tree(old);
    fs::rename(dir, old);
  }
  fs::rename(tmp, dir);
  remove_tree(old);
}

bool load_checkpoint(const std::string& out_dir, RunState& st, const json& fingerprint,
                     const NamedTensors& trainable, FlatAdam& opt,
                     const torch::Device& dev) {
  std::string dir = join_path(out_dir, "checkpoint");
  if (!fs::exists(dir) && fs::exists(join_path(dir + ".old", "state.json"))) dir += ".old";
  if (!fs::exists(join_path(dir, "state.json"))) return false;
  json s;
  try {
    s = json::parse(read_file(join_path(dir, "state.json")));
  } catch (const json::exception& e) {
    throw Error(join_path(dir, "state.json") + ": invalid JSON: " + e.what());
  }
  if (s["options"] != fingerprint) {
    std::string differ;
    for (auto it = fingerprint.begin(); it != fingerprint.end(); ++it)
      if (!s["options"].contains(it.key()) || s["options"][it.key()] != it.value())
        differ += (differ.empty() ? "" : ", ") + it.key();
    throw Error("--resume: the checkpoint in " + dir + " was made with different " + differ +
                " (options or training pairs differ; start a new --out or use the same ones)");
  }
  Checkpoint ck = Checkpoint::open(join_path(dir, "trainable.safetensors"));
  torch::NoGradGuard ng;
  for (const auto& [name, p] : trainable) {
    if (!ck.has(name)) throw Error(dir + ": checkpoint lacks " + name);
    Tensor t = tensor_from_view(ck.get(name));
    if (t.sizes() != p.sizes()) throw Error(dir + ": " + name + " has the wrong shape");
    const_cast<Tensor&>(p).copy_(t.to(p.device(), p.scalar_type()));
  }
  {
    std::string path = join_path(dir, "optimizer.safetensors");
    if (!fs::exists(path)) throw Error("--resume: " + path + " is missing (a checkpoint of an older tailor?)");
    Checkpoint oc = Checkpoint::open(path);
    std::vector<std::pair<std::string, Tensor>> named;
    for (const std::string& name : oc.names()) named.emplace_back(name, tensor_from_view(oc.get(name)));
    opt.load_state(named, path);
  }
  std::vector<at::Generator> gens = generators(dev);
  if (s.value("generators", size_t(0)) != gens.size())
    throw Error(dir + ": the checkpoint holds random states for another device");
  for (size_t i = 0; i < gens.size(); ++i) {
    std::istringstream in(read_file(join_path(dir, "rng_" + std::to_string(i) + ".pt")));
    Tensor state;
    torch::load(state, in);
    gens[i].set_state(state);
  }
  st.step = s["step"];
  st.epoch = s["epoch"];
  st.pos = s["pos"];
  return true;
}

void trim_log(const std::string& path, int64_t step) {
  if (!file_exists(path)) return;
  std::string text = read_file(path), kept;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) break;  // a torn last line is dropped
    std::string line = text.substr(start, end - start);
    start = end + 1;
    try {
      json j = json::parse(line);
      if (j.value("step", int64_t(0)) <= step) kept += line + "\n";
    } catch (const json::exception&) {
    }
  }
  write_file_atomic(path, kept);
}

}  // namespace tailor
