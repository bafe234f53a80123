// train_model as a sequence of named steps, llm.c-style: check options → join the ranks → load data →
// set up what trains → restore → pre-train → feature cache → loop → write. Each step is a function
// below over the one TrainRun they share; the parts with their own file: checkpoint (resume),
// trainable (freezing, LoRA, optimizer), feature_cache, step (the optimizer step), sampling (epoch
// order), ranks (one process or a data-parallel job, one code path).
#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "catalog/dataset.h"
#include "catalog/images.h"
#include "infer/blip2_answerer.h"
#include "infer/cuda_graph.h"
#include "model/model_dir.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "train/checkpoint.h"
#include "train/feature_cache.h"
#include "train/lora.h"
#include "train/ranks.h"
#include "train/sampling.h"
#include "train/schedule.h"
#include "train/step.h"
#include "train/trainable.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/parallel.h"
#include "util/progress.h"
#include "util/signals.h"

namespace tailor {

namespace fs = std::filesystem;
using json = nlohmann::json;
using torch::Tensor;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The options that are choices, parsed once: TrainOptions holds them as the command line (and the
// tests) give them, as text.
struct TrainChoices {
  CacheMode cache = CacheMode::kAuto;
  OptimizerKind optimizer = OptimizerKind::kAdamW;
  std::vector<ModelPart> frozen;
};

TrainChoices check_options(const TrainOptions& o) {
  if (o.model_dir.empty() || o.data_dir.empty() || o.out_dir.empty()) throw Error("train needs --model, --data and --out");
  if (o.batch_size < 1 || o.grad_accum < 1 || o.epochs < 1) throw Error("batch size, grad accumulation and epochs must be >= 1");
  TrainChoices c;
  if (o.optimizer == "adamw") c.optimizer = OptimizerKind::kAdamW;
  else if (o.optimizer == "adam") c.optimizer = OptimizerKind::kAdam;
  else throw Error("--optimizer must be adamw or adam, not \"" + o.optimizer + "\"");
  if (o.cache == "auto") c.cache = CacheMode::kAuto;
  else if (o.cache == "on") c.cache = CacheMode::kOn;
  else if (o.cache == "off") c.cache = CacheMode::kOff;
  else throw Error("--cache must be auto, on or off, not \"" + o.cache + "\"");
  if (!o.full && !o.freeze.empty()) throw Error("--freeze needs --full (LoRA trains only its adapters)");
  if (o.pretrain.epochs < 0) throw Error("--pretrain-epochs must be 0 or more");
  if (!o.full && o.pretrain.epochs > 0) throw Error("--pretrain-epochs needs --full (it trains the image side from scratch)");
  if (o.full && o.gradient_checkpointing)
    throw Error("--gradient-checkpointing is for LoRA: with --full, parameters outside T5's blocks would need gradients through the recomputation");
  if (o.full && o.quantize != "auto" && o.quantize != "none")
    throw Error("--quantize " + o.quantize + " needs LoRA: quantized weights are frozen (leave out --full)");
  if (o.pretrain.epochs > 0 && o.pretrain.batch_size < 1) throw Error("--pretrain-batch-size must be >= 1");
  if (o.pretrain.epochs == 0 && (!o.pretrain_data.empty() || o.pretrain.reframe))
    throw Error(std::string(o.pretrain_data.empty() ? "--pretrain-reframe" : "--pretrain-data") +
                " needs --pretrain-epochs (it shapes the image-side pre-training)");
  const std::map<std::string, ModelPart> parts = {{"vision", ModelPart::kVision}, {"qformer", ModelPart::kQFormer},
                                                  {"projection", ModelPart::kProjection}, {"language", ModelPart::kLanguage}};
  for (const auto& f : o.freeze) {
    auto it = parts.find(f);
    if (it == parts.end()) throw Error("--freeze: unknown part \"" + f + "\" (vision, qformer, projection, language)");
    c.frozen.push_back(it->second);
  }
  return c;
}

// The training pairs of the chosen attributes, every photo decoded once. Errors name the file.
struct TrainData {
  std::string train_path, text;  // text: train.jsonl (and the other pair files) as read (its hash guards --resume)
  std::vector<VqaPair> pairs, val;
  std::map<std::string, std::shared_ptr<const ImageRGB>> images;  // path -> photo
  // --pretrain-data: its pairs less the validation split's products, and the photos pairs lacks.
  std::vector<VqaPair> pretrain_pairs;
  std::map<std::string, std::shared_ptr<const ImageRGB>> pretrain_images;
  int64_t pretrain_val_left_out = 0;  // products of --data's validation split found there
};

// --pretrain-data's pairs (train.jsonl, then val.jsonl when there), less every product or photo of the
// validation split, their photos decoded by a few threads. Errors name the file and product.
void load_pretrain_data(const TrainOptions& o, const std::vector<VqaPair>& val, TrainData& d) {
  std::set<std::string> val_ids, val_images, left_out;
  for (const auto& p : val) {
    val_ids.insert(p.id);
    val_images.insert(p.image);
  }
  const std::string train_path = join_path(o.pretrain_data, "train.jsonl");
  if (!file_exists(train_path)) throw Error("--pretrain-data: " + train_path + " not found (a `tailor prepare` directory)");
  std::vector<std::string> paths;  // the photos to decode, one entry each
  for (const std::string& file : {train_path, join_path(o.pretrain_data, "val.jsonl")}) {
    if (!file_exists(file)) continue;
    d.text += read_file(file);
    for (auto& p : read_pairs(file)) {
      if (val_ids.count(p.id) || val_images.count(p.image)) {
        left_out.insert(p.id);
        continue;
      }
      if (!d.images.count(p.image) && !d.pretrain_images.count(p.image)) {
        d.pretrain_images[p.image] = nullptr;
        paths.push_back(p.image);
      }
      d.pretrain_pairs.push_back(std::move(p));
    }
  }
  d.pretrain_val_left_out = static_cast<int64_t>(left_out.size());
  std::vector<std::shared_ptr<const ImageRGB>> decoded(paths.size());
  parallel_for(static_cast<int64_t>(paths.size()), worker_count(0), [&](int64_t i) {
    try {
      decoded[i] = std::make_shared<const ImageRGB>(load_image(paths[i]));
    } catch (const Error& e) {
      throw Error("--pretrain-data " + o.pretrain_data + ": " + e.what() + " (the catalog changed after `tailor prepare`? run it again)");
    }
  });
  for (size_t i = 0; i < paths.size(); ++i) d.pretrain_images[paths[i]] = decoded[i];
}

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
  const std::vector<VqaPair> every_val = o.pretrain_data.empty() ? std::vector<VqaPair>{} : d.val;  // whatever --attributes
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
  if (!o.pretrain_data.empty()) load_pretrain_data(o, every_val, d);
  return d;
}

// What the steps of a run share.
struct TrainRun {
  TrainRun(const TrainOptions& options, TrainChoices c, torch::Device device, Ranks& r, TrainData d)
      : o(options), choices(std::move(c)), dev(device), ranks(r), data(std::move(d)) {}
  const TrainOptions& o;
  TrainChoices choices;
  torch::Device dev;
  Ranks& ranks;
  TrainData data;
  torch::ScalarType frozen_dtype = torch::kFloat;
  Blip2Bundle b;
  Trainable trainable;
  bool use_cache = false;
  StepPlan plan;
  std::unique_ptr<FlatAdam> opt;
  std::unique_ptr<Answerer> answerer;  // validation's, made at the first evaluation and kept (its graphs too)
  int64_t total_steps = 0;
  json fingerprint;
  std::string log_path, pretrain_file;
  RunState st;
  bool resumed = false;
  TrainResult res;
  std::chrono::steady_clock::time_point started;  // train_model's start (time to first step)
};

// The model, what trains in it (seeded first, so --seed alone fixes the adapters, on every rank),
// whether the feature cache is used, and the optimizer.
void set_up_what_trains(TrainRun& r) {
  const TrainOptions& o = r.o;
  r.frozen_dtype = o.full ? torch::kFloat : parse_dtype_name(o.dtype, r.dev);
  // A directory saved quantized is refused before loading it (xxl takes 40 s): LoRA's merged model
  // is written from the original weights, and --full trains them; it has neither.
  const std::string saved_format = load_blip2_config(o.model_dir).weight_format;
  if (!saved_format.empty())
    throw Error(o.model_dir + " was saved quantized (" + saved_format +
                "): training needs the original weights it doesn't have (LoRA's merged model is written from them, --full "
                "trains them); train from the original checkpoint with --quantize " + saved_format);
  r.b = load_model_dir(o.model_dir, r.dev, r.frozen_dtype, o.quantize);
  r.b.model->language_model->encoder->gradient_checkpointing = o.gradient_checkpointing;
  r.b.model->language_model->decoder->gradient_checkpointing = o.gradient_checkpointing;
  torch::manual_seed(o.seed);
  r.trainable = set_up_trainable(r.b.model, o, r.choices.frozen, r.ranks.main());
  r.use_cache = use_feature_cache(r.choices.cache, r.trainable.image_side_frozen, o.augment);
  r.res.trainable_parameters = r.trainable.parameters;
  r.res.cache_used = r.use_cache;
  r.plan = plan_step(o.cuda_graph, r.dev, r.trainable.image_side_frozen);
  r.res.step_kind = r.plan.why;
  if (r.ranks.main())
    std::printf("training %lld of %lld parameters (%s) on %zu pairs of %zu photos; feature cache %s; step %s\n",
                (long long)r.trainable.parameters, (long long)r.trainable.all_parameters, o.full ? "full" : "LoRA",
                r.data.pairs.size(), r.data.images.size(), r.use_cache ? "on" : "off", r.plan.why.c_str());
  std::fflush(stdout);
  r.opt = make_optimizer(r.trainable, o, r.choices.optimizer);
}

// The schedule's length, the fingerprint (the same on every rank), and with --resume the checkpoint
// (every rank loads it; rank 0 alone fixes the log); without, rank 0 clears what an earlier run left.
// With image-side pre-training, its finished result alone is enough to resume from (a kill before
// the first checkpoint).
void restore(TrainRun& r) {
  const TrainOptions& o = r.o;
  const int64_t n = static_cast<int64_t>(r.data.pairs.size());
  const int64_t per_step = static_cast<int64_t>(o.batch_size) * o.grad_accum;
  r.total_steps = (n + per_step - 1) / per_step * o.epochs;
  if (o.max_steps > 0) r.total_steps = std::min(r.total_steps, o.max_steps);
  make_dirs(o.out_dir);
  r.fingerprint = run_fingerprint(o, r.data.text);
  r.ranks.check_same("training options", r.fingerprint.dump() + " pairs=" + std::to_string(n));
  r.log_path = join_path(o.out_dir, "train_log.jsonl");
  r.pretrain_file = join_path(join_path(o.out_dir, "pretrain"), "image_side.safetensors");
  const bool have_pretrained = o.pretrain.epochs > 0 && o.resume && file_exists(r.pretrain_file);
  if (o.resume) {
    r.resumed = load_checkpoint(o.out_dir, r.st, r.fingerprint, r.trainable.named, *r.opt, r.dev);
    if (!r.resumed && o.pretrain.epochs == 0)
      throw Error("--resume: no checkpoint in " + join_path(o.out_dir, "checkpoint"));
    if (r.resumed && o.pretrain.epochs > 0 && !have_pretrained)
      throw Error("--resume: " + r.pretrain_file + " is missing (the checkpoint was trained on top of it)");
    if (r.ranks.main()) {
      trim_log(r.log_path, r.st.step);
      if (r.resumed)
        std::printf("resumed at step %lld (epoch %lld, pair %lld)\n", (long long)r.st.step, (long long)r.st.epoch + 1,
                    (long long)r.st.pos);
    }
  } else if (r.ranks.main()) {
    if (file_exists(r.log_path)) fs::remove(r.log_path);
    for (const char* d : {"checkpoint", "checkpoint.old", "checkpoint.tmp", "pretrain"}) remove_tree(join_path(o.out_dir, d));
  }
}

// Its result, for every image-side weight the checkpoint did not restore (the frozen ones).
void load_pretrained_image_side(TrainRun& r) {
  auto file = SafetensorsFile::open(r.pretrain_file);
  auto opts = file->metadata().find("options");
  if (opts == file->metadata().end() || opts->second != r.fingerprint.dump())
    throw Error("--resume: " + r.pretrain_file + " was made with other options or training pairs (start a new --out or use the same ones)");
  Checkpoint ck = Checkpoint::open(r.pretrain_file);
  torch::NoGradGuard ng;
  for (auto& item : r.b.model->named_parameters(true)) {
    if (!ck.has(item.key()) || (r.resumed && item.value().requires_grad())) continue;
    Tensor t = tensor_from_view(ck.get(item.key()));
    if (t.sizes() != item.value().sizes()) throw Error(r.pretrain_file + ": " + item.key() + " has the wrong shape");
    item.value().copy_(t.to(r.dev, item.value().scalar_type()));
  }
  if (r.ranks.main()) std::printf("image-side pre-training: loaded %s\n", r.pretrain_file.c_str());
}

// Every rank runs the same pre-training (no rank waits on another); rank 0's result is broadcast
// with the other weights (start_ranks), and rank 0 alone logs and saves it. A run killed during it
// starts it again: its log lines so far go.
void run_pretraining(TrainRun& r) {
  const TrainOptions& o = r.o;
  const bool main = r.ranks.main();
  if (main && file_exists(r.log_path)) fs::remove(r.log_path);
  PretrainOptions po = o.pretrain;
  po.seed = o.seed;
  po.progress = o.progress && !o.log_lines && main;
  // --pretrain-data: its pairs after --data's own, its photos beside them.
  std::vector<VqaPair> pairs = r.data.pairs;
  pairs.insert(pairs.end(), r.data.pretrain_pairs.begin(), r.data.pretrain_pairs.end());
  std::map<std::string, std::shared_ptr<const ImageRGB>> images = r.data.images;
  images.insert(r.data.pretrain_images.begin(), r.data.pretrain_images.end());
  if (main && !o.pretrain_data.empty())
    std::printf("image-side pre-training: %zu photos, %zu of them from --pretrain-data (%zu pairs; %lld products of the validation split left out)\n",
                images.size(), r.data.pretrain_images.size(), r.data.pretrain_pairs.size(), (long long)r.data.pretrain_val_left_out);
  std::fflush(stdout);
  pretrain_image_side(r.b.model, r.b.image_cfg, pairs, r.data.val, images, po, r.dev, [&](const PretrainEpoch& e) {
    if (!main) return;
    json line = {{"stage", "pretrain"}, {"epoch", e.epoch}, {"loss", e.loss}};
    for (const auto& [a, acc] : e.val_accuracy) line["val_accuracy"][a] = acc;
    append_line_durable(r.log_path, line.dump());
    if (o.progress) {
      std::string accs;
      for (const auto& [a, acc] : e.val_accuracy) accs += "  " + a + " " + std::to_string(acc).substr(0, 5);
      std::fprintf(stderr, "\npretrain epoch %lld: loss %.4f, validation (heads):%s\n", (long long)e.epoch, e.loss, accs.c_str());
    }
  });
  if (!main) return;
  make_dirs(join_path(r.o.out_dir, "pretrain"));
  write_f32_safetensors(r.pretrain_file, image_side_parameters(r.b.model),
                        {{"format", "pt"}, {"options", r.fingerprint.dump()}});
}

// Image-side pre-training (from scratch; train/pretrain.h): its saved result on a resume, else a run.
void pretrain(TrainRun& r) {
  const bool have_pretrained = r.o.pretrain.epochs > 0 && r.o.resume && file_exists(r.pretrain_file);
  if (have_pretrained) load_pretrained_image_side(r);
  else if (r.o.pretrain.epochs > 0) run_pretraining(r);
  // The language model's training draws from a seed of its own, so a run resumed from the
  // pre-training result (no checkpoint yet) draws the same numbers as one that just finished it.
  if (r.o.pretrain.epochs > 0 && !r.resumed) torch::manual_seed(r.o.seed ^ 0x5DEECE66Dull);
}

// The same starting weights on every rank (as DDP; after pre-training its frozen weights too) and
// each rank its own dropout stream. (How the gradients are summed is the step's: train/step.h.)
void start_ranks(TrainRun& r) {
  r.ranks.broadcast_from_rank0(r.o.pretrain.epochs > 0 ? r.b.model->parameters() : r.trainable.params);
  if (!r.ranks.main())
    torch::manual_seed(r.o.seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(r.ranks.rank()) + r.st.step);
  set_modes(r.b.model, r.trainable.image_side_frozen);
}

// The optimizer step: captured or eager (r.plan). The captured step's buffers hold the most pairs a
// rank gets of one batch; without the cache, the image side before it is captured too.
std::unique_ptr<OptimizerStep> make_step(TrainRun& r, ImageFeatures& features) {
  StepContext sc{r.b, *r.opt, features, r.ranks, r.dev, r.o.max_grad_norm, r.trainable.params};
  const int64_t rows = (r.o.batch_size + r.ranks.size() - 1) / r.ranks.size();
  if (r.plan.graphs && !r.use_cache) features.capture_image_side();  // the image side of each batch too
  std::unique_ptr<OptimizerStep> step =
      r.plan.captured ? make_captured_step(sc, r.data.pairs, rows, r.plan.graphs) : make_eager_step(sc);
  if (r.ranks.main()) std::printf("%s", r.ranks.start_line().c_str());
  return step;
}

// Validation at an epoch's end: a collective (every rank answers its part of the pairs and gets the
// whole report); rank 0 logs it. On a GPU the answers go through CUDA graphs (infer/static_generate.h),
// kept from one epoch to the next: they hold the weights' addresses, which stay (the optimizer updates
// its flat buffers in place).
void evaluate_epoch(TrainRun& r, int64_t epoch) {
  if (r.data.val.empty() || !r.o.eval_each_epoch) return;
  auto t0 = std::chrono::steady_clock::now();
  if (!r.answerer) r.answerer = make_blip2_answerer(r.b, r.dev, /*static_greedy=*/r.dev.is_cuda());
  GenerationOptions g;
  g.max_new_tokens = 16;
  r.res.final_eval = r.ranks.evaluate(*r.answerer, r.data.val, r.data.pairs, 64, g);
  r.res.evaluated = true;
  set_modes(r.b.model, r.trainable.image_side_frozen);  // the answerer put the whole model back in training mode
  r.res.times.evaluation += seconds_since(t0);
  if (!r.ranks.main()) return;
  json line = {{"step", r.st.step}, {"epoch", epoch + 1}, {"eval_accuracy", r.res.final_eval.accuracy}};
  for (const auto& a : r.res.final_eval.attributes) line["accuracy"][a.attribute] = a.accuracy;
  append_line_durable(r.log_path, line.dump());
  if (r.o.progress || r.o.log_lines)
    std::fprintf(r.o.log_lines ? stdout : stderr, "%sepoch %lld: validation accuracy %.3f\n", r.o.log_lines ? "" : "\n",
                 (long long)epoch + 1, r.res.final_eval.accuracy);
}

// One step's batches: this rank's part of each of the step's global batches (step_batches), the
// parts' label shares, and the pairs' indices (for TAILOR_SAMPLE_TRACE).
struct StepBatches {
  std::vector<std::vector<const VqaPair*>> batches;
  std::vector<double> shares;
  std::vector<int64_t> trace;
  int64_t samples = 0;  // pairs of the global batches (what one process trains on)
  int64_t end = 0;      // the epoch position after this step
};

StepBatches step_batches_of(TrainRun& r, const std::vector<int64_t>& order) {
  const std::vector<VqaPair>& pairs = r.data.pairs;
  StepBatches s;
  const std::vector<Span> global = step_batches(r.st.pos, static_cast<int64_t>(pairs.size()), r.o.batch_size, r.o.grad_accum);
  for (const Span& g : global) {
    Span part = r.ranks.part(g);
    std::vector<const VqaPair*> batch;
    for (int64_t i = part.begin; i < part.end; ++i) {
      batch.push_back(&pairs[order[i]]);
      s.trace.push_back(order[i]);
    }
    s.samples += g.size();
    s.shares.push_back(batch.empty() ? 0.0 : label_share(*r.b.tokenizer, pairs, order, g, part));
    s.batches.push_back(std::move(batch));
  }
  s.end = global.back().end;
  return s;
}

// One optimizer step = grad_accum batches of the epoch's order (fewer at the epoch's end); a
// checkpoint after every checkpoint_every steps (or at each epoch's end). Every rank goes through
// the same steps and batches and trains on its part of each batch.
void train_loop(TrainRun& r, OptimizerStep& step) {
  const TrainOptions& o = r.o;
  const int64_t n = static_cast<int64_t>(r.data.pairs.size());
  std::unique_ptr<Progress> bar;
  if (o.progress && !o.log_lines && r.ranks.main()) bar = std::make_unique<Progress>("train", r.total_steps, "steps");
  double epoch_loss = 0;
  int64_t epoch_steps = 0;
  if (bar) bar->add(r.st.step);
  auto t0 = std::chrono::steady_clock::now();
  int64_t samples = 0;
  bool first = true;
  const char* trace_dir = std::getenv("TAILOR_SAMPLE_TRACE");  // a directory: which pairs each rank trained on, per step
  // SIGTERM/SIGINT (SageMaker stopping the job) end one process's run after the step under way, with a
  // checkpoint. Ranks of a job stop as the signal ends them: they could see it after different steps,
  // and the last checkpoint resumes the job.
  std::optional<GracefulStop> graceful;
  if (r.ranks.size() == 1) graceful.emplace();
  while (r.st.step < r.total_steps && r.st.epoch < o.epochs) {
    std::vector<int64_t> order = epoch_order(r.data.pairs, o.seed, r.st.epoch);
    while (r.st.pos < n && r.st.step < r.total_steps) {
      double lr = warmup_cosine_lr(o.lr, o.warmup_ratio, r.st.step, r.total_steps);
      set_lr(*r.opt, r.trainable, lr, o.image_lr_scale);
      auto step_t0 = std::chrono::steady_clock::now();
      StepBatches sb = step_batches_of(r, order);
      samples += sb.samples;
      double step_loss = step.run(sb.batches, sb.shares, r.st.epoch);
      const double step_s = seconds_since(step_t0);
      if (first) {
        r.res.times.first_step = step_s;
        r.res.times.to_first_step = seconds_since(r.started);
        first = false;
      } else {
        r.res.times.steps += step_s;
      }
      r.st.pos = sb.end;
      if (trace_dir) {
        json ids = json::array();
        for (int64_t i : sb.trace) ids.push_back(r.data.pairs[i].id + "/" + r.data.pairs[i].attribute);
        append_line_durable(join_path(trace_dir, "rank" + std::to_string(r.ranks.rank()) + ".jsonl"),
                            json({{"epoch", r.st.epoch}, {"step", r.st.step + 1}, {"pairs", ids}}).dump());
      }
      r.st.step++;
      r.res.step_losses.push_back(step_loss);
      double elapsed = seconds_since(t0);
      r.res.samples_per_second = elapsed > 0 ? samples / elapsed : 0;
      // One line per step, made durable with each checkpoint (an fsync per step would wait on the disk
      // between GPU steps); a run stopped between checkpoints redoes those steps and their lines.
      if (r.ranks.main())
        append_line(r.log_path, json({{"step", r.st.step}, {"epoch", r.st.epoch + 1}, {"loss", step_loss}, {"lr", lr},
                                      {"samples", sb.samples}, {"step_seconds", step_s},
                                      {"samples_per_second", r.res.samples_per_second}})
                                    .dump());
      if (bar) {
        char extra[96];
        std::snprintf(extra, sizeof extra, "loss %.4f  %.1f samples/s", step_loss, r.res.samples_per_second);
        bar->add(1, extra);
      }
      bool epoch_end = r.st.pos >= n;
      epoch_loss += step_loss;
      epoch_steps++;
      if (o.log_lines && r.ranks.main()) {
        std::printf("step %lld/%lld Loss: %.6f lr: %.3g samples/s: %.1f\n", (long long)r.st.step, (long long)r.total_steps,
                    step_loss, lr, r.res.samples_per_second);
        if (epoch_end) std::printf("epoch %lld Epoch Loss: %.6f\n", (long long)r.st.epoch + 1, epoch_loss / epoch_steps);
        std::fflush(stdout);
      }
      if (epoch_end) {
        epoch_loss = 0;
        epoch_steps = 0;
        evaluate_epoch(r, r.st.epoch);
        r.st.epoch++;
        r.st.pos = 0;
      }
      const int stop = GracefulStop::requested();
      if (r.ranks.main() && (stop || (o.checkpoint_every > 0 && r.st.step % o.checkpoint_every == 0) ||
                             (o.checkpoint_every == 0 && epoch_end))) {
        auto c0 = std::chrono::steady_clock::now();
        sync_file(r.log_path);  // the log's lines up to this step are durable before the checkpoint says so
        save_checkpoint(o.out_dir, r.st, r.fingerprint, r.trainable.named, *r.opt, r.dev);
        r.res.times.checkpoints += seconds_since(c0);
      }
      if (stop) {
        if (bar) bar->finish();
        throw Error(std::string(stop == SIGINT ? "SIGINT" : "SIGTERM") + ": stopped after step " +
                    std::to_string(r.st.step) + " of " + std::to_string(r.total_steps) + "; " +
                    join_path(o.out_dir, "checkpoint") + " resumes it (--resume)");
      }
      if (epoch_end) break;  // the next epoch has its own order
    }
  }
  if (bar) bar->finish();
  r.res.steps = r.st.step;
  if (r.ranks.main()) std::printf("%s", r.ranks.end_line().c_str());
}

// The GPU memory the run held (the caching allocator's counts, MiB): what the model took after
// loading, what the feature cache added, and the peaks of the whole run. Empty on the CPU.
json gpu_memory_json(const DeviceMemory& after_load, const DeviceMemory& after_features, const torch::Device& dev) {
  if (!dev.is_cuda()) return json::object();
  const DeviceMemory end = device_memory(dev);
  auto mib = [](int64_t b) { return static_cast<double>(b) / (1 << 20); };
  return {{"after_load", mib(after_load.allocated)}, {"after_features", mib(after_features.allocated)},
          {"peak_allocated", mib(end.peak_allocated)}, {"peak_reserved", mib(end.peak_reserved)}};
}

// LoRA on a quantized base: the model directory is the original checkpoint's weights with the
// adapters merged, in the checkpoint's own precision, as PEFT merges into a base loaded unquantized
// (merging into the codes would add their rounding to every weight). Loaded on the host.
void save_merged_into_original(TrainRun& r) {
  const TrainOptions& o = r.o;
  const torch::ScalarType original = checkpoint_float_dtype(Checkpoint::open(o.model_dir));
  Blip2Bundle dense = load_model_dir(o.model_dir, torch::kCPU, original, "none");
  attach_lora(*dense.model, o.lora);
  std::map<std::string, torch::Tensor> trained;
  for (auto& item : r.b.model->named_parameters(true))
    if (item.key().find("lora_") != std::string::npos) trained[item.key()] = item.value();
  {
    torch::NoGradGuard ng;
    for (auto& item : dense.model->named_parameters(true)) {
      if (item.key().find("lora_") == std::string::npos) continue;
      auto it = trained.find(item.key());
      if (it == trained.end()) throw Error("internal: the trained model has no adapter tensor " + item.key());
      item.value().copy_(it->second.detach().to(torch::kCPU, item.value().scalar_type()));
    }
  }
  merge_lora(*dense.model);
  dense.task = r.b.task;
  save_model_dir(join_path(o.out_dir, "model"), dense, original);
  std::printf("merged the adapters into %s's original %s weights (the quantized base trained them)\n", o.model_dir.c_str(),
              original == torch::kBFloat16 ? "bf16" : original == torch::kHalf ? "f16" : "f32");
}

// Rank 0's outputs: the last checkpoint, the task the model was trained on, the adapter (LoRA; then
// merged), the model directory and the last evaluation.
void write_outputs(TrainRun& r) {
  const TrainOptions& o = r.o;
  auto& m = r.b.model;
  sync_file(r.log_path);
  save_checkpoint(o.out_dir, r.st, r.fingerprint, r.trainable.named, *r.opt, r.dev);
  r.b.task.attributes.clear();
  r.b.task.values.clear();
  // The attributes as the dataset's task defines them (allowed values, aliases, article types:
  // prepare's tailor_task.json), else as the pairs ask them.
  const TaskInfo data_task = load_task_info(o.data_dir);
  for (const auto& p : r.data.pairs) {
    bool have = false;
    for (const auto& a : r.b.task.attributes) have = have || a.name == p.attribute;
    if (!have) {
      AttributeSpec spec{p.attribute, p.question};
      for (const auto& a : data_task.attributes)
        if (a.name == p.attribute && a.question == p.question) spec = a;
      r.b.task.attributes.push_back(spec);
    }
    auto& v = r.b.task.values[p.attribute];
    if (std::find(v.begin(), v.end(), p.value) == v.end()) v.push_back(p.value);
  }
  if (!o.full) save_peft_adapter(join_path(o.out_dir, "adapter"), *m, o.lora, o.model_dir);
  m->eval();
  if (!r.b.cfg.weight_format.empty()) {
    save_merged_into_original(r);
  } else {
    if (!o.full) merge_lora(*m);
    save_model_dir(join_path(o.out_dir, "model"), r.b, o.full ? torch::kFloat : r.frozen_dtype);
  }
  if (r.res.evaluated) write_file_atomic(join_path(o.out_dir, "eval.json"), eval_report_json(r.res.final_eval));
}

}  // namespace

TrainResult train_model(const TrainOptions& o) {
  const auto started = std::chrono::steady_clock::now();
  TrainChoices choices = check_options(o);
  torch::Device dev(o.device);
  if (dev.is_cuda() && !torch::cuda::is_available()) throw Error("--device cuda: no CUDA device is available");
  Ranks ranks(o.world, dev);  // one process, or this rank of a data-parallel job (may pick dev's index)
  auto t = std::chrono::steady_clock::now();
  TrainData data = load_train_data(o);
  const double data_s = seconds_since(t);
  TrainRun r(o, choices, dev, ranks, std::move(data));
  r.started = started;
  r.res.times.data = data_s;
  t = std::chrono::steady_clock::now();
  set_up_what_trains(r);
  restore(r);
  r.res.times.model = seconds_since(t);
  t = std::chrono::steady_clock::now();
  pretrain(r);
  r.res.times.pretrain = seconds_since(t);
  start_ranks(r);
  ImageFeatures features(r.b, r.data.images, dev, r.trainable.image_side_frozen, o.augment, o.seed);
  release_unused_device_memory();  // what loading and quantizing left in the allocator's cache
  const DeviceMemory after_load = device_memory(dev);
  t = std::chrono::steady_clock::now();
  if (r.use_cache) features.compute_cache(ranks, o.progress && !o.log_lines && ranks.main());
  r.res.times.features = seconds_since(t);
  release_unused_device_memory();
  const DeviceMemory after_features = device_memory(dev);
  std::unique_ptr<OptimizerStep> step = make_step(r, features);
  train_loop(r, *step);
  if (ranks.main()) {  // checkpoint and outputs are rank 0's
    t = std::chrono::steady_clock::now();
    write_outputs(r);
    r.res.times.outputs = seconds_since(t);
    const TrainTimes& tt = r.res.times;
    append_line_durable(r.log_path, json({{"stage", "times"}, {"step", r.st.step}, {"data_s", tt.data}, {"model_s", tt.model},
                                          {"pretrain_s", tt.pretrain}, {"features_s", tt.features},
                                          {"first_step_s", tt.first_step}, {"to_first_step_s", tt.to_first_step},
                                          {"steps_s", tt.steps}, {"evaluation_s", tt.evaluation},
                                          {"checkpoints_s", tt.checkpoints}, {"outputs_s", tt.outputs},
                                          {"total_s", seconds_since(started)}, {"step_kind", r.res.step_kind},
                                          {"ranks", ranks.size()}, {"gpu_mib", gpu_memory_json(after_load, after_features, dev)}})
                                        .dump());
  }
  return r.res;
}

}  // namespace tailor
