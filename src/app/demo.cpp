#include "app/demo.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "app/charts.h"
#include "catalog/dataset.h"
#include "infer/load.h"
#include "model/presets.h"
#include "train/eval.h"
#include "train/trainer.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/torch_threads.h"
#include "write/describe.h"
#include "write/writer.h"

namespace tailor {


namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// One validation product shown in the report.
struct DemoAnswer {
  std::string attribute, question, truth, predicted;
};
struct DemoExample {
  std::string id, image, article_type;
  std::vector<DemoAnswer> answers;
  ProductAttributes described;  // what the writer was given (predicted + catalog metadata)
  std::string description;
};

// What the model steps hand each other.
struct DemoModelState {
  std::string init_dir, train_dir, model_dir;
  int64_t parameters = 0;
  TrainResult train;
  EvalReport eval;
  std::map<std::string, std::vector<std::string>> known_values;  // attribute -> values in the training pairs
  std::vector<DemoExample> examples;
};

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

// The photo's path as the report (in out_dir) links it.
std::string link_from(const std::string& out_dir, const std::string& path) {
  std::error_code ec;
  fs::path rel = fs::relative(fs::absolute(path), fs::absolute(out_dir), ec);
  return ec || rel.empty() ? fs::absolute(path).string() : rel.generic_string();
}

std::string accuracy_table(const EvalReport& r) {
  std::string s = "  attribute         pairs  accuracy  majority baseline\n";
  for (const auto& a : r.attributes) {
    char line[256];
    std::snprintf(line, sizeof line, "  %-16s %6lld    %6.3f    %6.3f (%s)\n", a.attribute.c_str(), (long long)a.n,
                  a.accuracy, a.majority_accuracy, a.majority_value.c_str());
    s += line;
  }
  char line[128];
  std::snprintf(line, sizeof line, "  %-16s %6lld    %6.3f\n", "all", (long long)r.n, r.accuracy);
  return s + line;
}

std::string write_report(const DemoContext& c, const DemoModelState& st) {
  const DemoOptions& o = c.opt;
  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>tailor demo report</title>\n";
  h += "<style>body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:.5em 0}"
       "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}.ok{color:#060}.bad{color:#b00}"
       ".product{display:flex;gap:1.5em;margin:1.5em 0;padding-top:1em;border-top:1px solid #ddd}"
       ".product img{width:224px;height:224px}.desc{max-width:40em}</style></head><body>\n";
  h += "<h1>tailor demo</h1>\n<p>A synthetic catalog of " + std::to_string(c.synth.products.size()) +
       " products, prepared into " + std::to_string(c.prepare.pairs_train) + " training and " +
       std::to_string(c.prepare.pairs_val) + " validation question/answer pairs; a BLIP-2 model (preset <code>" +
       escape_html(o.preset) + "</code>, " + std::to_string(st.parameters) + " parameters) trained from scratch: " +
       (o.pretrain_epochs > 0 ? std::to_string(o.pretrain_epochs) +
                                    " epochs of image-side pre-training with attribute heads (learning rate " +
                                    fmt("%g", o.pretrain_lr) + "), then the image side frozen and "
                              : std::string()) +
       std::to_string(o.epochs) + " epochs of the language model (learning rate " + fmt("%g", o.lr) + ", batch " +
       std::to_string(o.batch_size) + ", " + fmt("%.0f", st.train.samples_per_second) + " samples/s)" +
       "; descriptions by the offline writer.</p>\n";

  h += "<h2>Validation accuracy</h2>\n<table><tr><th>attribute</th><th>pairs</th><th>accuracy</th>"
       "<th>majority baseline</th><th>majority value</th></tr>\n";
  for (const auto& a : st.eval.attributes)
    h += "<tr><td>" + escape_html(a.attribute) + "</td><td>" + std::to_string(a.n) + "</td><td>" +
         fmt("%.3f", a.accuracy) + "</td><td>" + fmt("%.3f", a.majority_accuracy) + "</td><td>" +
         escape_html(a.majority_value) + "</td></tr>\n";
  h += "<tr><th>all</th><th>" + std::to_string(st.eval.n) + "</th><th>" + fmt("%.3f", st.eval.accuracy) +
       "</th><th></th><th></th></tr>\n</table>\n";

  h += "<h2>Charts</h2>\n" + eval_charts_html(join_path(st.train_dir, "train_log.jsonl"), st.eval);
  h += "<h2>Time per stage</h2>\n<table><tr><th>stage</th><th>seconds</th></tr>\n";
  double total = 0;
  for (const auto& [name, s] : c.step_seconds) {
    h += "<tr><td>" + escape_html(name) + "</td><td>" + fmt("%.1f", s) + "</td></tr>\n";
    total += s;
  }
  h += "<tr><th>before the report</th><th>" + fmt("%.1f", total) + "</th></tr>\n</table>\n";

  h += "<h2>Products</h2>\n";
  for (const auto& e : st.examples) {
    h += "<div class=\"product\" id=\"p" + escape_html(e.id) + "\">\n<img src=\"" +
         escape_html(link_from(o.out_dir, e.image)) + "\" alt=\"product " + escape_html(e.id) + "\">\n<div>\n";
    h += "<h3>" + escape_html(e.id) + " (" + escape_html(e.article_type) + ")</h3>\n";
    h += "<table><tr><th>question</th><th>predicted</th><th>true</th><th></th></tr>\n";
    for (const auto& a : e.answers) {
      bool ok = a.predicted == a.truth;
      h += "<tr><td>" + escape_html(a.question) + "</td><td>" + escape_html(a.predicted) + "</td><td>" +
           escape_html(a.truth) + "</td><td class=\"" + (ok ? "ok\">&#10003;" : "bad\">&#10007;") + "</td></tr>\n";
    }
    h += "</table>\n<p class=\"desc\">" + escape_html(e.description) + "</p>\n</div>\n</div>\n";
  }
  h += "</body></html>\n";
  return h;
}

// The first validation products (in eval order), each with all its answers, described by the
// offline writer from the predicted attributes; examples.jsonl and two of them printed.
void describe_examples(DemoContext& c, DemoModelState& st) {
  std::map<std::string, size_t> slot;
  for (const auto& p : st.eval.predictions) {
    auto it = slot.find(p.id);
    if (it == slot.end()) {
      if (static_cast<int>(st.examples.size()) >= c.opt.examples) continue;
      it = slot.emplace(p.id, st.examples.size()).first;
      DemoExample e;
      e.id = p.id;
      e.image = p.image;
      st.examples.push_back(e);
    }
    std::string question = p.attribute;
    for (const auto& a : default_attributes())
      if (a.name == p.attribute) question = a.question;
    st.examples[it->second].answers.push_back({p.attribute, question, p.truth, p.predicted});
  }
  std::map<std::string, const SynthProduct*> truth;
  for (const auto& sp : c.synth.products) truth[sp.id] = &sp;
  auto writer = make_writer(WriterConfig{});  // offline: deterministic, no network
  std::string lines;
  for (auto& e : st.examples) {
    // Predicted visual attributes; fabric, fit and type are catalog metadata (not drawn).
    // An answer that is no known value of its attribute (an undertrained model's
    // fragment) stays out of the text: the report still shows it beside the truth.
    std::map<std::string, std::string> attrs;
    for (const auto& a : e.answers) {
      const auto& known = st.known_values[a.attribute];
      if (std::find(known.begin(), known.end(), a.predicted) != known.end())
        attrs[a.attribute] = a.predicted;
    }
    auto t = truth.find(e.id);
    if (t != truth.end()) {
      e.article_type = t->second->article_type;
      attrs["articleType"] = t->second->article_type;
      if (!t->second->fabric.empty()) attrs["Fabric"] = t->second->fabric;
      if (!t->second->fit.empty()) attrs["Fit"] = t->second->fit;
    }
    DescribedProduct d = describe_one(*writer, attrs);
    e.described = d.attributes;
    e.description = d.description;
    json j = {{"id", e.id}, {"image", e.image}, {"article_type", e.article_type},
              {"description", e.description}, {"writer", d.writer}, {"writer_model", d.model}};
    for (const auto& a : e.answers)
      j["answers"].push_back({{"attribute", a.attribute}, {"question", a.question},
                              {"predicted", a.predicted}, {"truth", a.truth}});
    for (const auto& a : e.described) j["described_attributes"][a.name] = a.value;
    lines += j.dump() + "\n";
  }
  write_file_atomic(join_path(c.opt.out_dir, "examples.jsonl"), lines);
  for (size_t i = 0; i < st.examples.size() && i < 2; ++i) {
    const auto& e = st.examples[i];
    std::fprintf(c.log, "product %s (%s):\n", e.id.c_str(), e.article_type.c_str());
    for (const auto& a : e.answers)
      std::fprintf(c.log, "  %-14s predicted %-18s true %-18s %s\n", a.attribute.c_str(),
                   a.predicted.c_str(), a.truth.c_str(), a.predicted == a.truth ? "ok" : "WRONG");
    std::fprintf(c.log, "  description: %s\n", e.description.c_str());
  }
  c.outputs["describe"] = std::to_string(st.examples.size()) + " products described in " +
                          join_path(c.opt.out_dir, "examples.jsonl");
}

}  // namespace


std::vector<DemoStep> demo_model_steps(const DemoOptions& opt) {
  auto st = std::make_shared<DemoModelState>();
  std::vector<DemoStep> steps;

  steps.push_back({"init model", [st](DemoContext& c) {
                     st->init_dir = join_path(c.opt.out_dir, "model-init");
                     InitOptions io;
                     io.preset = c.opt.preset;
                     io.out_dir = st->init_dir;
                     io.seed = c.opt.seed;
                     io.init = c.opt.init;
                     st->parameters = init_model_dir(io);
                     c.outputs["init model"] = "preset " + c.opt.preset + ", " + std::to_string(st->parameters) +
                                               " parameters in " + st->init_dir;
                   }});

  steps.push_back({"train", [st](DemoContext& c) {
                     st->train_dir = join_path(c.opt.out_dir, "train");
                     st->model_dir = join_path(st->train_dir, "model");
                     TrainOptions to;
                     to.model_dir = st->init_dir;
                     to.data_dir = c.dataset_dir;
                     to.out_dir = st->train_dir;
                     to.full = true;  // from scratch: every parameter
                     to.lr = c.opt.lr;
                     to.batch_size = c.opt.batch_size;
                     to.epochs = c.opt.epochs;
                     to.pretrain.epochs = c.opt.pretrain_epochs;
                     to.pretrain.lr = c.opt.pretrain_lr;
                     to.pretrain.batch_size = c.opt.batch_size;
                     // Pre-trained, the image side stays as it is: the language model learns from the
                     // feature cache (each photo through the image side once).
                     if (c.opt.pretrain_epochs > 0) to.freeze = {"vision", "qformer"};
                     to.seed = c.opt.seed;
                     to.eval_each_epoch = false;  // the evaluate step does it once, at the end
                     to.progress = c.opt.progress;
                     st->train = train_model(to);
                     c.outputs["train"] = std::to_string(st->train.steps) + " steps, " +
                                          fmt("%.0f", st->train.samples_per_second) + " samples/s, last loss " +
                                          fmt("%.4f", st->train.step_losses.empty() ? 0.0 : st->train.step_losses.back()) +
                                          "; model in " + st->model_dir;
                   }});

  steps.push_back({"evaluate", [st](DemoContext& c) {
                     std::vector<VqaPair> val = read_pairs(join_path(c.dataset_dir, "val.jsonl"));
                     std::vector<VqaPair> ref = read_pairs(join_path(c.dataset_dir, "train.jsonl"));
                     if (val.empty()) throw Error("no validation pairs in " + c.dataset_dir + " (too few products?)");
                     for (const auto& p : ref) {
                       auto& v = st->known_values[p.attribute];
                       if (std::find(v.begin(), v.end(), p.value) == v.end()) v.push_back(p.value);
                     }
                     auto model = load_answerer(st->model_dir);
                     GenerationOptions g;
                     g.max_new_tokens = 16;  // the longest answer ("Sleeve Length: Short Sleeves") is far shorter
                     st->eval = evaluate(*model, val, ref, 64, g, c.opt.progress);
                     write_file_atomic(join_path(c.opt.out_dir, "eval.json"), eval_report_json(st->eval));
                     write_file_atomic(join_path(c.opt.out_dir, "eval.txt"), eval_table(st->eval));
                     std::fprintf(c.log, "validation accuracy (exact match) vs the majority baseline:\n%s",
                                  accuracy_table(st->eval).c_str());
                     c.outputs["evaluate"] = "accuracy " + fmt("%.3f", st->eval.accuracy) + " on " +
                                             std::to_string(st->eval.n) + " pairs; " +
                                             join_path(c.opt.out_dir, "eval.json");
                   }});

  steps.push_back({"describe", [st](DemoContext& c) { describe_examples(c, *st); }});

  steps.push_back({"report", [st](DemoContext& c) {
                     std::string path = join_path(c.opt.out_dir, "report.html");
                     write_file_atomic(path, write_report(c, *st));
                     c.outputs["report"] = path;
                     c.final_text = "validation accuracy (exact match) vs the majority baseline:\n" +
                                    accuracy_table(st->eval) + "report: " + path + "\n";
                   }});
  return steps;
}


// ---- the catalog steps and the runner ---------------------------------------------------------


DemoContext make_demo_context(const DemoOptions& opt) {
  DemoContext ctx;
  ctx.opt = opt;
  ctx.catalog_dir = join_path(opt.out_dir, "catalog");
  ctx.dataset_dir = join_path(opt.out_dir, "dataset");
  return ctx;
}

std::vector<DemoStep> demo_catalog_steps() {
  std::vector<DemoStep> steps;
  steps.push_back({"synthesize catalog", [](DemoContext& c) {
                     SynthOptions o;
                     o.products = c.opt.products;
                     o.out_dir = c.catalog_dir;
                     o.seed = c.opt.seed;
                     o.threads = c.opt.threads;
                     o.progress = c.opt.progress;
                     c.synth = synth_catalog(o);
                     c.outputs["synthesize catalog"] = std::to_string(c.synth.products.size()) +
                                                       " products in " + c.catalog_dir;
                   }});
  steps.push_back({"prepare", [](DemoContext& c) {
                     PrepareOptions o;
                     o.catalog_dir = c.catalog_dir;
                     o.out_dir = c.dataset_dir;
                     o.seed = c.opt.seed;
                     o.threads = c.opt.threads;
                     o.progress = c.opt.progress;
                     o.val_fraction = c.opt.val_fraction;
                     if (!c.opt.attributes.empty()) o.attributes = select_attributes(default_attributes(), c.opt.attributes);
                     c.prepare = prepare_catalog(o);
                     std::fputs(format_prepare_summary(c.prepare).c_str(), c.log);
                     if (!prepare_has_pairs(c.prepare))
                       throw Error("prepare produced no pairs from " + c.catalog_dir);
                     c.outputs["prepare"] = std::to_string(c.prepare.pairs_train) + " train / " +
                                            std::to_string(c.prepare.pairs_val) + " val pairs in " + c.dataset_dir;
                   }});
  return steps;
}

void run_demo(DemoContext& ctx, const std::vector<DemoStep>& steps) {
  auto t0 = std::chrono::steady_clock::now();
  make_dirs(ctx.opt.out_dir);
  for (size_t i = 0; i < steps.size(); ++i) {
    std::fprintf(ctx.log, "[%zu/%zu] %s\n", i + 1, steps.size(), steps[i].name.c_str());
    std::fflush(ctx.log);
    auto s0 = std::chrono::steady_clock::now();
    try {
      steps[i].run(ctx);
    } catch (const Error& e) {
      throw Error("demo step \"" + steps[i].name + "\" failed: " + e.what());
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - s0).count();
    ctx.step_seconds.push_back({steps[i].name, s});
    std::fprintf(ctx.log, "[%zu/%zu] %s: done in %.1f s\n", i + 1, steps.size(), steps[i].name.c_str(), s);
    std::fflush(ctx.log);
  }
  double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string timings = "{\n  \"steps\": [";
  for (size_t i = 0; i < ctx.step_seconds.size(); ++i) {
    char line[256];
    std::snprintf(line, sizeof line, "%s\n    {\"step\": \"%s\", \"seconds\": %.3f}", i ? "," : "",
                  ctx.step_seconds[i].first.c_str(), ctx.step_seconds[i].second);
    timings += line;
  }
  char tail[64];
  std::snprintf(tail, sizeof tail, "\n  ],\n  \"total_seconds\": %.3f\n}\n", total);
  write_file_atomic(join_path(ctx.opt.out_dir, "timings.json"), timings + tail);
  std::fprintf(ctx.log, "demo: finished in %.1f s\n", total);
  for (const auto& [name, s] : ctx.step_seconds) std::fprintf(ctx.log, "  %-20s %6.1f s\n", name.c_str(), s);
  for (const auto& st : steps) {
    auto it = ctx.outputs.find(st.name);
    if (it != ctx.outputs.end()) std::fprintf(ctx.log, "  %-20s %s\n", st.name.c_str(), it->second.c_str());
  }
  if (!ctx.final_text.empty()) std::fputs(ctx.final_text.c_str(), ctx.log);
  std::fflush(ctx.log);
}


void run_whole_demo(const DemoOptions& opt) {
  preset_config(opt.preset, 1);  // an unknown preset fails now, not after synth and prepare
  if (opt.products < 2) throw Error("--products must be at least 2 (one to train on, one to evaluate)");
  if (opt.epochs < 1 || opt.batch_size < 1) throw Error("--epochs and --batch-size must be at least 1");
  if (opt.pretrain_epochs < 0) throw Error("--pretrain-epochs must be 0 or more");
  if (!(opt.val_fraction > 0 && opt.val_fraction < 1)) throw Error("--val-fraction must be between 0 and 1");
  init_torch_threads();
  DemoContext ctx = make_demo_context(opt);
  std::vector<DemoStep> steps = demo_catalog_steps();
  for (auto& s : demo_model_steps(ctx.opt)) steps.push_back(std::move(s));
  run_demo(ctx, steps);
}

}  // namespace tailor
