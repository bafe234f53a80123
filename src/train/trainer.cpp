#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <nlohmann/json.hpp>

#include "catalog/dataset.h"
#include "catalog/images.h"
#include "catalog/rng.h"
#include "infer/batch.h"
#include "infer/blip2_answerer.h"
#include "infer/cuda_graph.h"
#include "model/model_dir.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "train/augment.h"
#include "train/distributed.h"
#include "train/optimizer.h"
#include "train/schedule.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/progress.h"

namespace tailor {

namespace fs = std::filesystem;
using json = nlohmann::json;
using torch::Tensor;

namespace {

// Where the run is: enough to continue exactly after a kill.
struct RunState {
  int64_t step = 0;   // optimizer steps done
  int64_t epoch = 0;  // current epoch
  int64_t pos = 0;    // pairs of this epoch's order already consumed
};

// What must not change across --resume: the options that shape the numbers (the schedule depends on
// max_steps) and the training pairs themselves (the epoch order is recomputed from them).
json fingerprint(const TrainOptions& o, const std::string& train_jsonl_text) {
  return {{"full", o.full}, {"lora_r", o.lora.r}, {"lora_alpha", o.lora.alpha}, {"lora_targets", o.lora.targets},
          {"lora_dropout", o.lora.dropout}, {"optimizer", o.optimizer}, {"lr", o.lr}, {"batch_size", o.batch_size},
          {"grad_accum", o.grad_accum}, {"epochs", o.epochs}, {"max_steps", o.max_steps}, {"seed", o.seed},
          {"augment", o.augment}, {"attributes", o.attributes}, {"freeze", o.freeze},
          {"weight_decay", o.weight_decay}, {"warmup_ratio", o.warmup_ratio}, {"max_grad_norm", o.max_grad_norm},
          {"image_lr_scale", o.image_lr_scale}, {"adam_beta2", o.adam_beta2},
          {"pretrain", {{"epochs", o.pretrain.epochs}, {"lr", o.pretrain.lr}, {"weight_decay", o.pretrain.weight_decay},
                        {"batch_size", o.pretrain.batch_size}, {"augment", o.pretrain.augment}}},
          {"train_jsonl_fnv1a64", std::to_string(fnv1a64(train_jsonl_text))}};
}

// This epoch's order of the pairs: photos in a seeded shuffle, each photo's questions together (in a
// seeded order), so a batch runs the image side once per photo for several questions. Reproducible
// from (seed, epoch) alone, so a resumed run needs no saved sampler state.
std::vector<int64_t> epoch_order(const std::vector<VqaPair>& pairs, uint64_t seed, int64_t epoch) {
  std::map<std::string, std::vector<int64_t>> by_photo;
  std::vector<std::string> photos;
  for (int64_t i = 0; i < static_cast<int64_t>(pairs.size()); ++i) {
    auto& v = by_photo[pairs[i].image];
    if (v.empty()) photos.push_back(pairs[i].image);
    v.push_back(i);
  }
  Rng rng(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch) + 1);
  auto shuffle = [&](auto& v) {
    for (int64_t i = static_cast<int64_t>(v.size()) - 1; i > 0; --i)
      std::swap(v[i], v[rng.next() % static_cast<uint64_t>(i + 1)]);
  };
  shuffle(photos);
  std::vector<int64_t> order;
  for (const auto& ph : photos) {
    auto& v = by_photo[ph];
    shuffle(v);
    order.insert(order.end(), v.begin(), v.end());
  }
  return order;
}

// Group 0 gets lr; a second group (the image side, see image_lr_scale) gets lr * image_scale.
void set_lr(FlatAdam& opt, size_t groups, double lr, double image_scale) {
  for (size_t i = 0; i < groups; ++i) opt.set_lr(i, i == 0 ? lr : lr * image_scale);
}

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

// checkpoint/: trainable.safetensors, optimizer.safetensors, rng_N.pt, state.json, each written with fsync.
// The directory is built as checkpoint.tmp and swapped in by renames, so a kill at any moment leaves
// either the previous complete checkpoint or the new one (as checkpoint/ or, for an instant,
// checkpoint.old/, which load_checkpoint falls back to).
// Named tensors as float32 in one safetensors file, written atomically (temp + rename).
void write_f32_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                           const std::map<std::string, std::string>& metadata = {{"format", "pt"}}) {
  std::vector<Tensor> keep;  // the CPU copies the views below point into
  std::vector<TensorToWrite> w;
  for (const auto& [name, p] : tensors) {
    Tensor t = p.detach().to(torch::kCPU, torch::kFloat).contiguous();
    keep.push_back(t);
    w.push_back({name, DType::F32, t.sizes().vec(), t.data_ptr(), static_cast<size_t>(t.numel()) * 4});
  }
  write_safetensors(path, w, metadata);
}

void save_checkpoint(const std::string& out_dir, const RunState& st, const json& fp,
                     const std::vector<std::pair<std::string, Tensor>>& trainable, FlatAdam& opt,
                     const torch::Device& dev) {
  std::string dir = join_path(out_dir, "checkpoint"), tmp = dir + ".tmp", old = dir + ".old";
  remove_tree(tmp);
  make_dirs(tmp);
  write_f32_safetensors(join_path(tmp, "trainable.safetensors"), trainable);
  write_f32_safetensors(join_path(tmp, "optimizer.safetensors"), opt.state());
  std::vector<at::Generator> gens = generators(dev);
  for (size_t i = 0; i < gens.size(); ++i)
    write_file_atomic(join_path(tmp, "rng_" + std::to_string(i) + ".pt"), serialized(gens[i].get_state()));
  json s = {{"step", st.step}, {"epoch", st.epoch}, {"pos", st.pos}, {"generators", gens.size()}, {"options", fp}};
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

bool load_checkpoint(const std::string& out_dir, RunState& st, const json& fp,
                     const std::vector<std::pair<std::string, Tensor>>& trainable, FlatAdam& opt,
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
  if (s["options"] != fp) {
    std::string differ;
    for (auto it = fp.begin(); it != fp.end(); ++it)
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

// Keeps the log lines of steps up to `step` (a resumed run rewrites what came after).
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

bool module_trainable(torch::nn::Module& m) {
  for (auto& p : m.parameters())
    if (p.requires_grad()) return true;
  return false;
}

// Training mode for what trains; evaluation mode (no dropout) for a frozen image side, so its output
// is a pure function of the photo and the feature cache is exact. Called again after every evaluation,
// which switches the whole model back to training mode.
void set_modes(Blip2ForConditionalGeneration& m, bool image_side_frozen) {
  m->train();
  if (image_side_frozen) {
    m->vision_model->eval();
    m->qformer->eval();
  }
}

// The training pairs of the chosen attributes, every photo decoded once. Errors name the file.
struct TrainData {
  std::string train_path, text;  // text: train.jsonl as read (its hash guards --resume)
  std::vector<VqaPair> pairs, val;
  std::map<std::string, std::shared_ptr<const ImageRGB>> images;  // path -> photo
};

TrainData load_train_data(const TrainOptions& o) {
  TrainData d;
  d.train_path = join_path(o.data_dir, "train.jsonl");
  std::string val_path = join_path(o.data_dir, "val.jsonl");
  if (!file_exists(d.train_path)) throw Error(d.train_path + " not found: run `tailor prepare` first");
  d.text = read_file(d.train_path);
  d.pairs = read_pairs(d.train_path);
  for (const auto& extra : o.extra_pairs) {  // e.g. reviewers' corrections; their text guards --resume too
    d.text += read_file(extra);
    merge_pairs(d.pairs, read_pairs(extra));
  }
  if (d.pairs.empty()) throw Error("no training pairs in " + d.train_path + " (the file is empty)");
  d.val = file_exists(val_path) ? read_pairs(val_path) : std::vector<VqaPair>{};
  if (!o.attributes.empty()) {
    std::map<std::string, int64_t> seen;
    for (const auto& p : d.pairs) seen[p.attribute]++;
    for (const auto& a : o.attributes)
      if (!seen.count(a)) {
        std::string known;
        for (const auto& kv : seen) known += (known.empty() ? "" : ", ") + kv.first;
        throw Error("--attributes: unknown attribute \"" + a + "\": " + d.train_path + " has " + known);
      }
    auto keep = [&](std::vector<VqaPair>& v) {
      std::vector<VqaPair> out;
      for (auto& p : v)
        if (std::find(o.attributes.begin(), o.attributes.end(), p.attribute) != o.attributes.end()) out.push_back(p);
      v.swap(out);
    };
    keep(d.pairs);
    keep(d.val);
  }
  for (const auto& p : d.pairs) {
    if (d.images.count(p.image)) continue;
    try {
      d.images[p.image] = std::make_shared<const ImageRGB>(load_image(p.image));
    } catch (const Error& e) {
      throw Error(d.train_path + ": product " + p.id + " (" + p.attribute + "): " + e.what() +
                  " (the catalog changed after `tailor prepare`? run it again)");
    }
  }
  return d;
}

}  // namespace

TrainResult train_model(const TrainOptions& o) {
  if (o.model_dir.empty() || o.data_dir.empty() || o.out_dir.empty()) throw Error("train needs --model, --data and --out");
  if (o.batch_size < 1 || o.grad_accum < 1 || o.epochs < 1) throw Error("batch size, grad accumulation and epochs must be >= 1");
  if (o.optimizer != "adamw" && o.optimizer != "adam") throw Error("--optimizer must be adamw or adam, not \"" + o.optimizer + "\"");
  if (o.cache != "on" && o.cache != "off" && o.cache != "auto") throw Error("--cache must be auto, on or off, not \"" + o.cache + "\"");
  if (!o.full && !o.freeze.empty()) throw Error("--freeze needs --full (LoRA trains only its adapters)");
  if (o.pretrain.epochs < 0) throw Error("--pretrain-epochs must be 0 or more");
  if (!o.full && o.pretrain.epochs > 0) throw Error("--pretrain-epochs needs --full (it trains the image side from scratch)");
  if (o.pretrain.epochs > 0 && o.pretrain.batch_size < 1) throw Error("--pretrain-batch-size must be >= 1");
  for (const auto& f : o.freeze)
    if (f != "vision" && f != "qformer" && f != "projection" && f != "language")
      throw Error("--freeze: unknown part \"" + f + "\" (vision, qformer, projection, language)");
  torch::Device dev(o.device);
  if (dev.is_cuda() && !torch::cuda::is_available()) throw Error("--device cuda: no CUDA device is available");
  TrainResult res;
  // [dist] Data-parallel: join the job (train/distributed.h). Each rank trains on its part of every
  // step's pairs; rank 0 alone writes logs, checkpoints and outputs. One process: dist stays null.
  std::unique_ptr<Distributed> dist;
  const bool main_rank = o.world.is_main();
  if (o.world.distributed()) {
    if (dev.is_cuda() && !dev.has_index()) dev = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(o.world.local_rank));
    dist = std::make_unique<Distributed>(o.world, dev);
  }

  // ---- data ---------------------------------------------------------------------------------
  TrainData data = load_train_data(o);
  const std::vector<VqaPair>& pairs = data.pairs;

  // ---- model: what trains ---------------------------------------------------------------------
  torch::ScalarType frozen_dtype = o.full ? torch::kFloat : parse_dtype_name(o.dtype, dev);
  Blip2Bundle b = load_model_dir(o.model_dir, dev, frozen_dtype);
  auto& m = b.model;
  // Seeded here, before the adapters draw their A matrices, so --seed alone fixes the whole run (and
  // every rank of a distributed run starts with the same adapters).
  torch::manual_seed(o.seed);
  for (auto& p : m->parameters()) p.set_requires_grad(o.full);
  if (o.full) {
    for (const auto& f : o.freeze) {
      torch::nn::Module* part = nullptr;
      if (f == "vision") part = m->vision_model.get();
      else if (f == "qformer") {
        part = m->qformer.get();
        m->query_tokens.set_requires_grad(false);
      } else if (f == "projection") part = m->language_projection.get();
      else part = m->language_model.get();
      for (auto& p : part->parameters()) p.set_requires_grad(false);
    }
  } else {
    // From the Blip2 root, as PEFT on Blip2ForConditionalGeneration: the same suffix match over the
    // same module names, and adapter keys with the full path ("language_model.encoder...").
    LoraSummary ls = attach_lora(*m, o.lora);
    if (main_rank)  // [dist]
      std::printf("LoRA r=%lld alpha=%g dropout=%g on %zu modules (%s): %lld trainable parameters\n",
                  (long long)o.lora.r, o.lora.alpha, o.lora.dropout, ls.modules.size(),
                  [&] { std::string t; for (auto& x : o.lora.targets) t += (t.empty() ? "" : ",") + x; return t; }().c_str(),
                  (long long)ls.trainable_parameters);
  }
  std::vector<std::pair<std::string, Tensor>> trainable;
  std::vector<Tensor> params;
  int64_t all_parameters = 0;
  for (auto& item : m->named_parameters(true)) {
    all_parameters += item.value().numel();
    if (!item.value().requires_grad()) continue;
    trainable.emplace_back(item.key(), item.value());
    params.push_back(item.value());
    res.trainable_parameters += item.value().numel();
  }
  if (params.empty()) throw Error("nothing to train: every part is frozen");

  // The frozen-feature cache is exact only when the image side is frozen and sees each photo unchanged.
  bool image_side_frozen = !module_trainable(*m->vision_model) && !module_trainable(*m->qformer) &&
                           !m->query_tokens.requires_grad();
  if (o.cache == "on" && (!image_side_frozen || o.augment))
    throw Error("--cache on needs a frozen vision tower and Q-Former and no --augment");
  bool use_cache = o.cache == "on" || (o.cache == "auto" && image_side_frozen && !o.augment);
  res.cache_used = use_cache;
  if (o.cuda_graph) {
    if (!use_cache)
      throw Error("--cuda-graph needs the frozen-feature cache (a frozen image side, no --augment, --cache auto or on)");
    if (dist) throw Error("--cuda-graph runs in one process (not with --nproc or WORLD_SIZE > 1)");
    if (o.grad_accum != 1) throw Error("--cuda-graph needs --grad-accum 1");
  }
  if (main_rank)  // [dist]
    std::printf("training %lld of %lld parameters (%s) on %zu pairs of %zu photos; feature cache %s\n",
                (long long)res.trainable_parameters, (long long)all_parameters, o.full ? "full" : "LoRA", pairs.size(),
                data.images.size(), use_cache ? "on" : "off");
  std::fflush(stdout);

  // One group, or (image_lr_scale != 1) the language model's parameters and the image side's apart.
  std::vector<std::vector<Tensor>> groups;
  if (o.image_lr_scale == 1.0) {
    groups.push_back(params);
  } else {
    std::vector<Tensor> lang, image;
    for (const auto& [name, p] : trainable) (name.rfind("language_model.", 0) == 0 ? lang : image).push_back(p);
    if (lang.empty() || image.empty()) throw Error("--image-lr-scale needs both the language model and the image side trained");
    groups.push_back(lang);
    groups.push_back(image);
  }
  FlatAdamOptions ao;
  ao.lr = o.lr;
  ao.beta2 = o.adam_beta2;
  ao.decoupled = o.optimizer == "adamw";
  ao.weight_decay = o.optimizer == "adamw" ? o.weight_decay : 0.0;  // --optimizer adam: no decay, as before
  FlatAdam opt(groups, ao);

  // ---- schedule and state -------------------------------------------------------------------
  const int64_t n = static_cast<int64_t>(pairs.size());
  const int64_t per_step = static_cast<int64_t>(o.batch_size) * o.grad_accum;
  const int64_t steps_per_epoch = (n + per_step - 1) / per_step;
  int64_t total_steps = steps_per_epoch * o.epochs;
  if (o.max_steps > 0) total_steps = std::min(total_steps, o.max_steps);
  make_dirs(o.out_dir);
  const json fp = fingerprint(o, data.text);
  // [dist] Same options and pairs on every rank, checked before anything is read or written.
  if (dist) dist->check_same("training options", fp.dump() + " pairs=" + std::to_string(pairs.size()));
  std::string log_path = join_path(o.out_dir, "train_log.jsonl");
  RunState st;
  const std::string pretrain_file = join_path(join_path(o.out_dir, "pretrain"), "image_side.safetensors");
  const bool have_pretrained = o.pretrain.epochs > 0 && o.resume && file_exists(pretrain_file);
  bool resumed = false;
  if (o.resume) {
    // Every rank loads the checkpoint (weights, optimizer state, position); rank 0 alone fixes the log.
    // With image-side pre-training, its finished result alone is enough to resume from (a kill
    // before the first checkpoint).
    resumed = load_checkpoint(o.out_dir, st, fp, trainable, opt, dev);
    if (!resumed && o.pretrain.epochs == 0)
      throw Error("--resume: no checkpoint in " + join_path(o.out_dir, "checkpoint"));
    if (resumed && o.pretrain.epochs > 0 && !have_pretrained)
      throw Error("--resume: " + pretrain_file + " is missing (the checkpoint was trained on top of it)");
    if (main_rank) {  // [dist]
      trim_log(log_path, st.step);
      if (resumed)
        std::printf("resumed at step %lld (epoch %lld, pair %lld)\n", (long long)st.step, (long long)st.epoch + 1, (long long)st.pos);
    }
  } else if (main_rank) {  // [dist]
    if (file_exists(log_path)) fs::remove(log_path);
    for (const char* d : {"checkpoint", "checkpoint.old", "checkpoint.tmp", "pretrain"}) remove_tree(join_path(o.out_dir, d));
  }
  // ---- image-side pre-training (from scratch; train/pretrain.h) -------------------------------
  if (have_pretrained) {
    // Its result, for every image-side weight the checkpoint did not restore (the frozen ones).
    auto file = SafetensorsFile::open(pretrain_file);
    auto opts = file->metadata().find("options");
    if (opts == file->metadata().end() || opts->second != fp.dump())
      throw Error("--resume: " + pretrain_file + " was made with other options or training pairs (start a new --out or use the same ones)");
    Checkpoint ck = Checkpoint::open(pretrain_file);
    torch::NoGradGuard ng;
    for (auto& item : m->named_parameters(true)) {
      if (!ck.has(item.key()) || (resumed && item.value().requires_grad())) continue;
      Tensor t = tensor_from_view(ck.get(item.key()));
      if (t.sizes() != item.value().sizes()) throw Error(pretrain_file + ": " + item.key() + " has the wrong shape");
      item.value().copy_(t.to(dev, item.value().scalar_type()));
    }
    if (main_rank) std::printf("image-side pre-training: loaded %s\n", pretrain_file.c_str());
  } else if (o.pretrain.epochs > 0) {
    // [dist] Every rank runs the same pre-training (no rank waits on another), rank 0's result is
    // broadcast below with the other weights, and rank 0 alone logs and saves it. A run killed during
    // it starts it again: its log lines so far go.
    if (main_rank && file_exists(log_path)) fs::remove(log_path);
    PretrainOptions po = o.pretrain;
    po.seed = o.seed;
    po.progress = o.progress && main_rank;
    pretrain_image_side(m, b.image_cfg, pairs, data.val, data.images, po, dev, [&](const PretrainEpoch& e) {
      if (!main_rank) return;
      json line = {{"stage", "pretrain"}, {"epoch", e.epoch}, {"loss", e.loss}};
      for (const auto& [a, acc] : e.val_accuracy) line["val_accuracy"][a] = acc;
      append_line_durable(log_path, line.dump());
      if (o.progress) {
        std::string accs;
        for (const auto& [a, acc] : e.val_accuracy) accs += "  " + a + " " + std::to_string(acc).substr(0, 5);
        std::fprintf(stderr, "\npretrain epoch %lld: loss %.4f, validation (heads):%s\n", (long long)e.epoch, e.loss, accs.c_str());
      }
    });
    if (main_rank) {
      std::vector<std::pair<std::string, Tensor>> image_side;
      for (auto& item : m->named_parameters(true)) {
        const std::string& k = item.key();
        if (k.rfind("vision_model.", 0) == 0 || k.rfind("qformer.", 0) == 0 || k == "query_tokens")
          image_side.emplace_back(k, item.value());
      }
      make_dirs(join_path(o.out_dir, "pretrain"));
      write_f32_safetensors(pretrain_file, image_side, {{"format", "pt"}, {"options", fp.dump()}});
    }
  }
  // The language model's training draws from a seed of its own, so a run resumed from the
  // pre-training result (no checkpoint yet) draws the same numbers as one that just finished it.
  if (o.pretrain.epochs > 0 && !resumed) torch::manual_seed(o.seed ^ 0x5DEECE66Dull);
  // [dist] The same starting weights on every rank (as DDP), and each rank its own dropout stream; the
  // gradient reducer hooks the trainable parameters.
  std::unique_ptr<GradReducer> reducer;
  if (dist) {
    // After image-side pre-training, its frozen weights too (each rank computed them; rank 0's count).
    for (auto& p : o.pretrain.epochs > 0 ? m->parameters() : params) dist->broadcast_from_rank0(p);
    if (!main_rank) torch::manual_seed(o.seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(o.world.rank) + st.step);
    reducer = std::make_unique<GradReducer>(*dist, params, o.world.bucket_bytes);
    if (main_rank)
      std::printf("data-parallel: %d ranks (%s), gradients all-reduced in %lld buckets\n", o.world.world_size,
                  dist->backend().c_str(), (long long)reducer->buckets());
  }
  set_modes(m, image_side_frozen);

  // ---- the image side and the loss of one batch ----------------------------------------------
  // Frozen-feature cache: every photo's Q-Former output, computed once before the first step, in a
  // fixed order (by path) and fixed chunks, so a resumed run gets bit-identical features (a photo's
  // features can differ in the last bits with the batch it is computed in). [dist] The chunks are
  // split across the ranks, each computes its part and all of them are gathered: the same chunks
  // whatever the world size.
  std::map<std::string, Tensor> cache;  // photo path -> Q-Former output [Q, H]
  if (use_cache) {
    const int64_t chunk = 16;
    std::vector<std::string> paths;
    for (const auto& kv : data.images) paths.push_back(kv.first);
    const int64_t photos = static_cast<int64_t>(paths.size());
    Span all_chunks{0, (photos + chunk - 1) / chunk};
    Span my_chunks = dist ? rank_part(all_chunks, o.world.rank, o.world.world_size) : all_chunks;
    Span mine{my_chunks.begin * chunk, std::min(photos, my_chunks.end * chunk)};
    std::unique_ptr<Progress> cbar;
    if (o.progress && main_rank) cbar = std::make_unique<Progress>("features", mine.size(), "photos");
    torch::NoGradGuard ng;
    std::vector<Tensor> parts;
    for (int64_t start = mine.begin; start < mine.end; start += chunk) {
      std::vector<const ImageRGB*> inputs;
      for (int64_t i = start; i < std::min(mine.end, start + chunk); ++i) inputs.push_back(data.images.at(paths[i]).get());
      parts.push_back(m->qformer_features(m->vision_model->forward(pixel_batch(inputs, b.image_cfg).to(dev))));
      if (cbar) cbar->add(static_cast<int64_t>(inputs.size()));
    }
    if (cbar) cbar->finish();
    Tensor features;
    if (dist) {  // [dist] every rank's part, in rank order = path order
      Tensor local = parts.empty() ? torch::empty({0, m->query_tokens.size(1), m->query_tokens.size(2)},
                                                  m->query_tokens.options().requires_grad(false))
                                   : torch::cat(parts);
      features = dist->all_gather_rows(local, rank_part(all_chunks, 0, o.world.world_size).size() * chunk);
    } else {
      features = torch::cat(parts);
    }
    for (int64_t i = 0; i < photos; ++i) cache[paths[i]] = features[i];
  }
  // Q-Former output per row of the batch: from the cache, or each distinct photo of the batch through
  // the image side once (augmented for this epoch with --augment).
  auto qformer_out = [&](const std::vector<const VqaPair*>& batch, int64_t epoch) -> Tensor {
    std::vector<Tensor> rows;
    if (use_cache) {
      for (const VqaPair* p : batch) rows.push_back(cache.at(p->image));
      return torch::stack(rows);
    }
    std::vector<std::string> photos;
    std::vector<ImageRGB> augmented;
    std::vector<const ImageRGB*> inputs;
    augmented.reserve(batch.size());
    for (const VqaPair* p : batch) {
      if (std::find(photos.begin(), photos.end(), p->image) != photos.end()) continue;
      photos.push_back(p->image);
      const ImageRGB* img = data.images.at(p->image).get();
      if (o.augment) {
        augmented.push_back(augment_image(*img, o.seed, epoch, p->id));
        img = &augmented.back();
      }
      inputs.push_back(img);
    }
    Tensor px = pixel_batch(inputs, b.image_cfg).to(dev);
    c10::optional<torch::NoGradGuard> no_grad;  // a frozen image side keeps no graph
    if (image_side_frozen) no_grad.emplace();
    Tensor q = m->qformer_features(m->vision_model->forward(px));
    no_grad.reset();
    for (const VqaPair* p : batch) rows.push_back(q[std::find(photos.begin(), photos.end(), p->image) - photos.begin()]);
    return torch::stack(rows);
  };
  auto batch_loss = [&](const std::vector<const VqaPair*>& batch, int64_t epoch) -> Tensor {
    Tensor q = qformer_out(batch, epoch);
    std::vector<std::string> prompts, answers;
    for (auto* p : batch) {
      prompts.push_back(p->prompt);
      answers.push_back(p->answer);
    }
    TokenBatch tb = prompt_batch(*b.tokenizer, prompts, b.cfg);
    Tensor labels = label_batch(*b.tokenizer, answers).to(dev);  // padding = -100: not in the loss
    Tensor slot = m->image_slots(tb.ids).to(dev);
    return lm_loss(m->forward_from_qformer(q, tb.ids.to(dev), tb.mask.to(dev), slot, labels), labels);
  };
  // --cuda-graph: one optimizer step over fixed-shape buffers (batch_size rows; the data's longest
  // prompt and answer), captured on its first use. Padded rows repeat row 0 with every label -100,
  // padded prompt positions are masked, padded answer positions are -100: the loss and its gradient
  // are the unpadded batch's (only dropout's random draws fall differently on the larger tensors).
  struct StaticStep {
    Tensor q, ids, mask, slot, labels, loss;
    CudaGraph graph;
    bool captured = false;
  } ss;
  if (o.cuda_graph) {
    int64_t T = 1, L = 1;
    for (const VqaPair& p : pairs) {
      T = std::max<int64_t>(T, static_cast<int64_t>(m->with_image_tokens(b.tokenizer->encode(p.prompt, true)).size()));
      L = std::max<int64_t>(L, static_cast<int64_t>(b.tokenizer->encode(p.answer, true).size()));
    }
    const int64_t B = o.batch_size;
    Tensor any_row = cache.begin()->second;
    auto lo = torch::TensorOptions().dtype(torch::kLong).device(dev);
    ss.q = torch::zeros({B, any_row.size(0), any_row.size(1)}, any_row.options());
    ss.ids = torch::zeros({B, T}, lo);
    ss.mask = torch::zeros({B, T}, lo);
    ss.slot = torch::full({B, T}, -1, lo);
    ss.labels = torch::full({B, L}, -100, lo);
    ss.loss = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat).device(dev));
  }
  auto fill_static = [&](const std::vector<const VqaPair*>& batch) {
    const int64_t B = ss.ids.size(0), T = ss.ids.size(1), L = ss.labels.size(1), rows = static_cast<int64_t>(batch.size());
    std::vector<std::string> prompts, answers;
    for (int64_t r = 0; r < B; ++r) prompts.push_back(batch[r < rows ? r : 0]->prompt);
    for (int64_t r = 0; r < rows; ++r) answers.push_back(batch[r]->answer);
    TokenBatch tb = prompt_batch(*b.tokenizer, prompts, b.cfg);
    Tensor labels = label_batch(*b.tokenizer, answers);
    Tensor ids = torch::full({B, T}, b.cfg.text.pad_token_id, torch::kLong), mask = torch::zeros({B, T}, torch::kLong);
    Tensor lab = torch::full({B, L}, -100, torch::kLong);
    ids.narrow(1, 0, tb.ids.size(1)).copy_(tb.ids);
    mask.narrow(1, 0, tb.mask.size(1)).copy_(tb.mask);
    lab.narrow(0, 0, rows).narrow(1, 0, labels.size(1)).copy_(labels);
    std::vector<Tensor> q;
    for (int64_t r = 0; r < B; ++r) q.push_back(cache.at(batch[r < rows ? r : 0]->image));
    torch::NoGradGuard ng;
    ss.q.copy_(torch::stack(q));
    ss.ids.copy_(ids);
    ss.mask.copy_(mask);
    ss.slot.copy_(m->image_slots(ids));
    ss.labels.copy_(lab);
  };
  auto static_step = [&] {
    opt.zero_grad();
    Tensor loss = lm_loss(m->forward_from_qformer(ss.q, ss.ids, ss.mask, ss.slot, ss.labels), ss.labels);
    loss.backward();
    if (o.max_grad_norm > 0) opt.clip_grad_norm(o.max_grad_norm);
    opt.step();
    ss.loss.copy_(loss.detach());
  };
  // Validation at an epoch's end. [dist] A collective: every rank answers its part of the pairs and
  // gets the whole report; rank 0 logs it.
  auto evaluate_now = [&](int64_t epoch) {
    if (data.val.empty() || !o.eval_each_epoch) return;
    auto answerer = make_blip2_answerer(b, dev);
    GenerationOptions g;
    g.max_new_tokens = 16;
    res.final_eval = dist ? evaluate_distributed(*dist, *answerer, data.val, pairs, 64, g)
                          : evaluate(*answerer, data.val, pairs, 64, g, false);
    res.evaluated = true;
    set_modes(m, image_side_frozen);  // the answerer put the whole model back in training mode
    if (!main_rank) return;  // [dist]
    json line = {{"step", st.step}, {"epoch", epoch + 1}, {"eval_accuracy", res.final_eval.accuracy}};
    for (const auto& a : res.final_eval.attributes) line["accuracy"][a.attribute] = a.accuracy;
    append_line_durable(log_path, line.dump());
    if (o.progress) std::fprintf(stderr, "\nepoch %lld: validation accuracy %.3f\n", (long long)epoch + 1, res.final_eval.accuracy);
  };

  // ---- the loop -----------------------------------------------------------------------------
  // One optimizer step = grad_accum batches of the epoch's order (fewer at the epoch's end).
  // Checkpoint after every checkpoint_every steps (or at each epoch's end) and at the end.
  // [dist] Every rank goes through the same steps and batches; it trains on its part of each batch.
  std::unique_ptr<Progress> bar;
  if (o.progress && main_rank) bar = std::make_unique<Progress>("train", total_steps, "steps");  // [dist]
  if (bar) bar->add(st.step);
  auto t0 = std::chrono::steady_clock::now();
  int64_t samples = 0;
  const char* trace_dir = std::getenv("TAILOR_SAMPLE_TRACE");  // [dist] see below
  while (st.step < total_steps && st.epoch < o.epochs) {
    std::vector<int64_t> order = epoch_order(pairs, o.seed, st.epoch);
    while (st.pos < n && st.step < total_steps) {
      double lr = warmup_cosine_lr(o.lr, o.warmup_ratio, st.step, total_steps);
      set_lr(opt, groups.size(), lr, o.image_lr_scale);
      if (!o.cuda_graph) opt.zero_grad();
      // The step's global batches (what one process trains on). Each batch's loss is divided by the
      // number of batches actually used, so a short step at the epoch's end is a mean too. [dist] This
      // rank takes its part of each batch; its loss (a mean over its label tokens) is weighted by its
      // share of the batch's label tokens, so the ranks' gradients sum to the gradient of the whole
      // batch's mean (share = 1 alone).
      const std::vector<Span> global = step_batches(st.pos, n, o.batch_size, o.grad_accum);
      const double batches = static_cast<double>(global.size());
      double step_loss = 0;
      std::vector<int64_t> trace;
      for (size_t a = 0; a < global.size(); ++a) {
        Span part = dist ? rank_part(global[a], o.world.rank, o.world.world_size) : global[a];
        std::vector<const VqaPair*> batch;
        for (int64_t i = part.begin; i < part.end; ++i) {
          batch.push_back(&pairs[order[i]]);
          trace.push_back(order[i]);
        }
        samples += global[a].size();
        if (batch.empty()) continue;  // [dist] more ranks than pairs in this batch
        double share = 1.0;
        if (dist) {
          int64_t mine = 0, all = 0;
          for (int64_t i = global[a].begin; i < global[a].end; ++i) {
            int64_t t = static_cast<int64_t>(b.tokenizer->encode(pairs[order[i]].answer, true).size());
            all += t;
            if (i >= part.begin && i < part.end) mine += t;
          }
          share = static_cast<double>(mine) / static_cast<double>(all);
          if (a + 1 == global.size()) reducer->arm();  // this backward starts the all-reduces
        }
        if (o.cuda_graph) {  // the whole step: zero_grad, forward, backward, clip, AdamW
          fill_static(batch);
          if (!ss.captured) {
            // On a GPU the warm-up call is this first step; on the CPU nothing ran yet.
            ss.graph.capture(static_step, dev.is_cuda() && cuda_graphs_available(), /*warmups=*/1);
            ss.captured = true;
            if (!ss.graph.is_graph()) ss.graph.replay();
          } else {
            ss.graph.replay();
          }
          step_loss = ss.loss.item<double>();
          continue;
        }
        Tensor loss = batch_loss(batch, st.epoch);
        (loss * share / batches).backward();
        step_loss += loss.item<double>() * share / batches;
      }
      st.pos = global.back().end;
      if (reducer) step_loss = reducer->finish(step_loss);  // [dist] summed gradients and loss
      if (trace_dir) {  // [dist] TAILOR_SAMPLE_TRACE=dir: which pairs this rank trained on, per step
        json ids = json::array();
        for (int64_t i : trace) ids.push_back(pairs[i].id + "/" + pairs[i].attribute);
        append_line_durable(join_path(trace_dir, "rank" + std::to_string(o.world.rank) + ".jsonl"),
                            json({{"epoch", st.epoch}, {"step", st.step + 1}, {"pairs", ids}}).dump());
      }
      if (!o.cuda_graph) {
        if (o.max_grad_norm > 0) opt.clip_grad_norm(o.max_grad_norm);
        opt.step();
      }
      st.step++;
      res.step_losses.push_back(step_loss);
      double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      res.samples_per_second = elapsed > 0 ? samples / elapsed : 0;
      if (main_rank)  // [dist]
        append_line_durable(log_path, json({{"step", st.step}, {"epoch", st.epoch + 1}, {"loss", step_loss}, {"lr", lr},
                                            {"samples_per_second", res.samples_per_second}})
                                          .dump());
      if (bar) {
        char extra[96];
        std::snprintf(extra, sizeof extra, "loss %.4f  %.1f samples/s", step_loss, res.samples_per_second);
        bar->add(1, extra);
      }
      bool epoch_end = st.pos >= n;
      if (epoch_end) {
        evaluate_now(st.epoch);
        st.epoch++;
        st.pos = 0;
      }
      if (main_rank && ((o.checkpoint_every > 0 && st.step % o.checkpoint_every == 0) ||
                        (o.checkpoint_every == 0 && epoch_end)))  // [dist] rank 0 writes
        save_checkpoint(o.out_dir, st, fp, trainable, opt, dev);
      if (epoch_end) break;  // the next epoch has its own order
    }
  }
  if (bar) bar->finish();
  res.steps = st.step;
  if (reducer && main_rank)
    std::printf("data-parallel: %lld of %lld bucket all-reduces started during the backward pass\n",
                (long long)reducer->buckets_started_in_backward(), (long long)reducer->buckets_started());
  if (!main_rank) return res;  // [dist] checkpoint and outputs are rank 0's
  save_checkpoint(o.out_dir, st, fp, trainable, opt, dev);

  // ---- outputs ------------------------------------------------------------------------------
  b.task.attributes.clear();
  b.task.values.clear();
  for (const auto& p : pairs) {
    bool have = false;
    for (const auto& a : b.task.attributes) have = have || a.name == p.attribute;
    if (!have) b.task.attributes.push_back({p.attribute, p.question});
    auto& v = b.task.values[p.attribute];
    if (std::find(v.begin(), v.end(), p.value) == v.end()) v.push_back(p.value);
  }
  if (!o.full) {
    save_peft_adapter(join_path(o.out_dir, "adapter"), *m, o.lora, o.model_dir);
    merge_lora(*m);
  }
  m->eval();
  save_model_dir(join_path(o.out_dir, "model"), b, o.full ? torch::kFloat : frozen_dtype);
  if (res.evaluated) write_file_atomic(join_path(o.out_dir, "eval.json"), eval_report_json(res.final_eval));
  return res;
}

}  // namespace tailor
