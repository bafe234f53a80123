#include "train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "catalog/dataset.h"
#include "catalog/images.h"
#include "catalog/rng.h"
#include "infer/batch.h"
#include "infer/blip2_answerer.h"
#include "model/model_dir.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "train/augment.h"
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

// The options that must not change across --resume.
json fingerprint(const TrainOptions& o) {
  return {{"full", o.full}, {"lora_r", o.lora.r}, {"lora_alpha", o.lora.alpha}, {"lora_targets", o.lora.targets},
          {"optimizer", o.optimizer}, {"lr", o.lr}, {"batch_size", o.batch_size}, {"grad_accum", o.grad_accum},
          {"epochs", o.epochs}, {"seed", o.seed}, {"augment", o.augment}, {"attributes", o.attributes},
          {"freeze", o.freeze}, {"weight_decay", o.weight_decay}, {"warmup_ratio", o.warmup_ratio}};
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

double lr_at(const TrainOptions& o, int64_t step, int64_t total) {
  int64_t warm = static_cast<int64_t>(std::ceil(o.warmup_ratio * total));
  if (step < warm) return o.lr * static_cast<double>(step + 1) / static_cast<double>(warm);
  double progress = total > warm ? static_cast<double>(step - warm) / static_cast<double>(total - warm) : 1.0;
  return o.lr * 0.5 * (1.0 + std::cos(M_PI * std::min(1.0, progress)));
}

// Group 0 gets lr; a second group (the image side, see image_lr_scale) gets lr * image_scale.
void set_lr(torch::optim::Optimizer& opt, const std::string& kind, double lr, double image_scale) {
  for (size_t i = 0; i < opt.param_groups().size(); ++i) {
    auto& g = opt.param_groups()[i];
    double v = i == 0 ? lr : lr * image_scale;
    if (kind == "adam") static_cast<torch::optim::AdamOptions&>(g.options()).lr(v);
    else static_cast<torch::optim::AdamWOptions&>(g.options()).lr(v);
  }
}

void save_checkpoint(const std::string& out_dir, const RunState& st, const TrainOptions& o,
                     const std::vector<std::pair<std::string, Tensor>>& trainable, torch::optim::Optimizer& opt) {
  std::string dir = join_path(out_dir, "checkpoint"), tmp = dir + ".tmp", old = dir + ".old";
  fs::remove_all(tmp);
  make_dirs(tmp);
  std::vector<Tensor> keep;
  std::vector<TensorToWrite> w;
  for (const auto& [name, p] : trainable) {
    Tensor t = p.detach().to(torch::kCPU, torch::kFloat).contiguous();
    keep.push_back(t);
    w.push_back({name, DType::F32, t.sizes().vec(), t.data_ptr(), static_cast<size_t>(t.numel()) * 4});
  }
  write_safetensors(join_path(tmp, "trainable.safetensors"), w);
  torch::save(opt, join_path(tmp, "optimizer.pt"));
  Tensor rng = at::detail::getDefaultCPUGenerator().get_state();
  torch::save(rng, join_path(tmp, "rng.pt"));
  json s = {{"step", st.step}, {"epoch", st.epoch}, {"pos", st.pos}, {"options", fingerprint(o)}};
  write_file_atomic(join_path(tmp, "state.json"), s.dump(2));
  // Commit point: the rename. A kill before it leaves the previous checkpoint (or .old) intact.
  if (fs::exists(dir)) fs::rename(dir, old);
  fs::rename(tmp, dir);
  fs::remove_all(old);
}

bool load_checkpoint(const std::string& out_dir, RunState& st, const TrainOptions& o,
                     const std::vector<std::pair<std::string, Tensor>>& trainable, torch::optim::Optimizer& opt) {
  std::string dir = join_path(out_dir, "checkpoint");
  if (!fs::exists(join_path(dir, "state.json")) && fs::exists(join_path(dir + ".old", "state.json"))) dir += ".old";
  if (!fs::exists(join_path(dir, "state.json"))) return false;
  json s;
  try {
    s = json::parse(read_file(join_path(dir, "state.json")));
  } catch (const json::exception& e) {
    throw Error(join_path(dir, "state.json") + ": invalid JSON: " + e.what());
  }
  if (s["options"] != fingerprint(o))
    throw Error("--resume: the options differ from the checkpoint's in " + dir + " (checkpoint: " +
                s["options"].dump() + ")");
  Checkpoint ck = Checkpoint::open(join_path(dir, "trainable.safetensors"));
  torch::NoGradGuard ng;
  for (const auto& [name, p] : trainable) {
    if (!ck.has(name)) throw Error(dir + ": checkpoint lacks " + name);
    Tensor t = tensor_from_view(ck.get(name));
    if (t.sizes() != p.sizes()) throw Error(dir + ": " + name + " has the wrong shape");
    const_cast<Tensor&>(p).copy_(t.to(p.device(), p.scalar_type()));
  }
  torch::load(opt, join_path(dir, "optimizer.pt"));
  Tensor rng;
  torch::load(rng, join_path(dir, "rng.pt"));
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  gen.set_state(rng);
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

}  // namespace

TrainResult train_model(const TrainOptions& o) {
  if (o.model_dir.empty() || o.data_dir.empty() || o.out_dir.empty()) throw Error("train needs --model, --data and --out");
  if (o.batch_size < 1 || o.grad_accum < 1 || o.epochs < 1) throw Error("batch size, grad accumulation and epochs must be >= 1");
  if (o.optimizer != "adamw" && o.optimizer != "adam") throw Error("--optimizer must be adamw or adam");
  torch::Device dev(o.device);
  if (dev.is_cuda() && !torch::cuda::is_available()) throw Error("--device cuda: no CUDA device is available");
  TrainResult res;

  // ---- data ---------------------------------------------------------------------------------
  std::string train_path = join_path(o.data_dir, "train.jsonl"), val_path = join_path(o.data_dir, "val.jsonl");
  if (!file_exists(train_path)) throw Error(train_path + " not found: run `tailor prepare` first");
  std::vector<VqaPair> pairs = read_pairs(train_path);
  std::vector<VqaPair> val = file_exists(val_path) ? read_pairs(val_path) : std::vector<VqaPair>{};
  if (!o.attributes.empty()) {
    std::map<std::string, int64_t> seen;
    for (const auto& p : pairs) seen[p.attribute]++;
    for (const auto& a : o.attributes)
      if (!seen.count(a)) {
        std::string known;
        for (const auto& kv : seen) known += (known.empty() ? "" : ", ") + kv.first;
        throw Error("unknown attribute \"" + a + "\": " + train_path + " has " + known);
      }
    auto keep = [&](std::vector<VqaPair>& v) {
      std::vector<VqaPair> out;
      for (auto& p : v)
        if (std::find(o.attributes.begin(), o.attributes.end(), p.attribute) != o.attributes.end()) out.push_back(p);
      v.swap(out);
    };
    keep(pairs);
    keep(val);
  }
  if (pairs.empty()) throw Error("no training pairs in " + train_path);
  std::map<std::string, std::shared_ptr<const ImageRGB>> images;
  for (const auto& p : pairs)
    if (!images.count(p.image)) images[p.image] = std::make_shared<const ImageRGB>(load_image(p.image));

  // ---- model --------------------------------------------------------------------------------
  torch::ScalarType frozen_dtype = o.full ? torch::kFloat : parse_dtype_name(o.dtype, dev);
  Blip2Bundle b = load_model_dir(o.model_dir, dev, frozen_dtype);
  auto& m = b.model;
  for (auto& p : m->parameters()) p.set_requires_grad(o.full);
  if (o.full) {
    for (const auto& f : o.freeze) {
      torch::nn::Module* part = nullptr;
      if (f == "vision") part = m->vision_model.get();
      else if (f == "qformer") {
        part = m->qformer.get();
        m->query_tokens.set_requires_grad(false);
      } else if (f == "projection") part = m->language_projection.get();
      else if (f == "language") part = m->language_model.get();
      else throw Error("--freeze: unknown part \"" + f + "\" (vision, qformer, projection, language)");
      for (auto& p : part->parameters()) p.set_requires_grad(false);
    }
  } else {
    LoraSummary ls = attach_lora(*m->language_model, o.lora);
    (void)ls;
  }
  std::vector<std::pair<std::string, Tensor>> trainable;
  std::vector<Tensor> params;
  for (auto& item : m->named_parameters(true))
    if (item.value().requires_grad()) {
      trainable.emplace_back(item.key(), item.value());
      params.push_back(item.value());
      res.trainable_parameters += item.value().numel();
    }
  if (params.empty()) throw Error("nothing to train: every part is frozen");
  bool image_side_frozen = !module_trainable(*m->vision_model) && !module_trainable(*m->qformer) &&
                           !m->query_tokens.requires_grad();
  if (o.cache == "on" && (!image_side_frozen || o.augment))
    throw Error("--cache on needs a frozen vision tower and Q-Former and no augmentation");
  if (o.cache != "on" && o.cache != "off" && o.cache != "auto") throw Error("--cache must be auto, on or off");
  bool use_cache = o.cache == "on" || (o.cache == "auto" && image_side_frozen && !o.augment);
  res.cache_used = use_cache;
  std::printf("training %lld of %lld parameters (%s) on %zu pairs of %zu photos; feature cache %s\n",
              (long long)res.trainable_parameters, (long long)[&] { int64_t n = 0; for (auto& p : m->parameters()) n += p.numel(); return n; }(),
              o.full ? "full" : "LoRA", pairs.size(), images.size(), use_cache ? "on" : "off");

  std::unique_ptr<torch::optim::Optimizer> opt;
  // One group, or (image_lr_scale != 1) the language model's parameters and the image side's apart.
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (o.image_lr_scale == 1.0) {
    groups.emplace_back(params);
  } else {
    std::vector<Tensor> lang, image;
    for (const auto& [name, p] : trainable) (name.rfind("language_model.", 0) == 0 ? lang : image).push_back(p);
    if (lang.empty() || image.empty()) throw Error("--image-lr-scale needs both the language model and the image side trained");
    groups.emplace_back(lang);
    groups.emplace_back(image);
  }
  std::tuple<double, double> betas{0.9, o.adam_beta2};
  if (o.optimizer == "adam") opt = std::make_unique<torch::optim::Adam>(groups, torch::optim::AdamOptions(o.lr).betas(betas));
  else opt = std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(o.lr).betas(betas).weight_decay(o.weight_decay));

  // ---- schedule and state -------------------------------------------------------------------
  const int64_t n = static_cast<int64_t>(pairs.size());
  const int64_t per_step = static_cast<int64_t>(o.batch_size) * o.grad_accum;
  const int64_t steps_per_epoch = (n + per_step - 1) / per_step;
  int64_t total_steps = steps_per_epoch * o.epochs;
  if (o.max_steps > 0) total_steps = std::min(total_steps, o.max_steps);
  make_dirs(o.out_dir);
  std::string log_path = join_path(o.out_dir, "train_log.jsonl");
  RunState st;
  torch::manual_seed(o.seed);
  if (o.resume) {
    if (!load_checkpoint(o.out_dir, st, o, trainable, *opt))
      throw Error("--resume: no checkpoint in " + join_path(o.out_dir, "checkpoint"));
    trim_log(log_path, st.step);
    std::printf("resumed at step %lld (epoch %lld, pair %lld)\n", (long long)st.step, (long long)st.epoch, (long long)st.pos);
  } else if (file_exists(log_path)) {
    fs::remove(log_path);
  }

  // Frozen image side: eval mode (no dropout), so its output is a pure function of the photo.
  m->train();
  if (image_side_frozen) {
    m->vision_model->eval();
    m->qformer->eval();
  }
  std::map<std::string, Tensor> cache;  // photo path -> Q-Former output [Q, H]
  auto qformer_out = [&](const std::vector<const VqaPair*>& batch, int64_t epoch) -> Tensor {
    if (use_cache) {
      std::vector<const ImageRGB*> todo;
      std::vector<std::string> todo_paths;
      for (auto* p : batch)
        if (!cache.count(p->image) && std::find(todo_paths.begin(), todo_paths.end(), p->image) == todo_paths.end()) {
          todo.push_back(images[p->image].get());
          todo_paths.push_back(p->image);
        }
      if (!todo.empty()) {
        torch::NoGradGuard ng;
        Tensor q = m->qformer_features(m->vision_model->forward(pixel_batch(todo, b.image_cfg).to(dev)));
        for (size_t i = 0; i < todo.size(); ++i) cache[todo_paths[i]] = q[i];
      }
      std::vector<Tensor> rows;
      for (auto* p : batch) rows.push_back(cache[p->image]);
      return torch::stack(rows);
    }
    // Each distinct photo of the batch goes through the image side once; rows are expanded after.
    std::vector<ImageRGB> aug;
    std::vector<const ImageRGB*> ptrs;
    std::map<std::string, int64_t> slot;
    std::vector<int64_t> rows;
    aug.reserve(batch.size());
    for (const VqaPair* p : batch) {
      auto it = slot.find(p->image);
      if (it == slot.end()) {
        const ImageRGB* img = images[p->image].get();
        if (o.augment) {
          aug.push_back(augment_image(*img, o.seed, epoch, p->id));
          img = &aug.back();
        }
        it = slot.emplace(p->image, static_cast<int64_t>(ptrs.size())).first;
        ptrs.push_back(img);
      }
      rows.push_back(it->second);
    }
    Tensor px = pixel_batch(ptrs, b.image_cfg).to(dev);
    Tensor index = torch::tensor(rows, torch::kLong).to(dev);
    if (image_side_frozen) {
      torch::NoGradGuard ng;
      return m->qformer_features(m->vision_model->forward(px)).index_select(0, index);
    }
    return m->qformer_features(m->vision_model->forward(px)).index_select(0, index);
  };
  auto batch_loss = [&](const std::vector<const VqaPair*>& batch, int64_t epoch) -> Tensor {
    Tensor q = qformer_out(batch, epoch);
    Tensor feats = m->language_projection->forward(q.to(m->language_projection->weight.scalar_type()));
    std::vector<std::string> prompts, answers;
    for (auto* p : batch) {
      prompts.push_back(p->prompt);
      answers.push_back(p->answer);
    }
    TokenBatch tb = prompt_batch(*b.tokenizer, prompts, b.cfg);
    Tensor labels = label_batch(*b.tokenizer, answers).to(dev);
    auto enc = m->encode(feats, tb.ids.to(dev), tb.mask.to(dev));
    return lm_loss(m->language_model->forward_labels(enc.first, enc.second, labels), labels);
  };

  // ---- the loop -----------------------------------------------------------------------------
  std::unique_ptr<Progress> bar;
  if (o.progress) bar = std::make_unique<Progress>("train", total_steps, "steps");
  if (bar) bar->add(st.step);
  auto t0 = std::chrono::steady_clock::now();
  int64_t samples = 0;
  auto evaluate_now = [&](int64_t epoch) {
    if (val.empty() || !o.eval_each_epoch) return;
    auto answerer = make_blip2_answerer(b, dev);
    GenerationOptions g;
    g.max_new_tokens = 16;
    res.final_eval = evaluate(*answerer, val, pairs, 64, g, false);
    res.evaluated = true;
    json line = {{"step", st.step}, {"epoch", epoch + 1}, {"eval_accuracy", res.final_eval.accuracy}};
    for (const auto& a : res.final_eval.attributes) line["accuracy"][a.attribute] = a.accuracy;
    append_line_durable(log_path, line.dump());
    std::fprintf(stderr, "\nepoch %lld: validation accuracy %.3f\n", (long long)epoch + 1, res.final_eval.accuracy);
  };
  bool done = st.step >= total_steps;
  while (!done && st.epoch < o.epochs) {
    std::vector<int64_t> order = epoch_order(pairs, o.seed, st.epoch);
    while (st.pos < n && !done) {
      opt->zero_grad();
      double step_loss = 0;
      int64_t step_samples = 0;
      for (int a = 0; a < o.grad_accum && st.pos < n; ++a) {
        std::vector<const VqaPair*> batch;
        for (int64_t i = st.pos; i < std::min(n, st.pos + o.batch_size); ++i) batch.push_back(&pairs[order[i]]);
        st.pos += static_cast<int64_t>(batch.size());
        Tensor loss = batch_loss(batch, st.epoch);
        (loss / o.grad_accum).backward();
        step_loss += loss.item<double>() / o.grad_accum;
        step_samples += static_cast<int64_t>(batch.size());
      }
      if (o.max_grad_norm > 0) torch::nn::utils::clip_grad_norm_(params, o.max_grad_norm);
      double lr = lr_at(o, st.step, total_steps);
      set_lr(*opt, o.optimizer, lr, o.image_lr_scale);
      opt->step();
      st.step++;
      samples += step_samples;
      res.step_losses.push_back(step_loss);
      double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      res.samples_per_second = el > 0 ? samples / el : 0;
      append_line_durable(log_path, json({{"step", st.step}, {"epoch", st.epoch + 1}, {"loss", step_loss}, {"lr", lr},
                                          {"samples_per_second", res.samples_per_second}})
                                        .dump());
      if (bar) {
        char extra[96];
        std::snprintf(extra, sizeof extra, "loss %.4f  %.1f samples/s", step_loss, res.samples_per_second);
        bar->add(1, extra);
      }
      done = st.step >= total_steps;
      if (st.pos >= n) {  // epoch boundary: evaluate, then move on
        evaluate_now(st.epoch);
        st.epoch++;
        st.pos = 0;
        if (o.checkpoint_every == 0) save_checkpoint(o.out_dir, st, o, trainable, *opt);
      }
      if (o.checkpoint_every > 0 && st.step % o.checkpoint_every == 0) save_checkpoint(o.out_dir, st, o, trainable, *opt);
    }
  }
  if (bar) bar->finish();
  res.steps = st.step;
  save_checkpoint(o.out_dir, st, o, trainable, *opt);

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
  if (!o.full) save_peft_adapter(join_path(o.out_dir, "adapter"), *m->language_model, o.lora, o.model_dir);
  if (!o.full) merge_lora(*m);
  m->eval();
  save_model_dir(join_path(o.out_dir, "model"), b, o.full ? torch::kFloat : frozen_dtype);
  if (res.evaluated) write_file_atomic(join_path(o.out_dir, "eval.json"), eval_report_json(res.final_eval));
  return res;
}

}  // namespace tailor
