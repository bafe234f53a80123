// tailor demo: the whole pipeline on a synthetic catalog, offline, as a list of steps: the catalog
// steps (synthesize, prepare), then the model steps (init, train, evaluate, describe, report), each
// reading what earlier steps left in DemoContext. A tiny BLIP-2 is trained from scratch on the
// synthetic pairs, evaluated against the majority baseline, and a few validation products get
// predicted attributes, an offline description and a place in an HTML report.
#pragma once
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "catalog/prepare.h"
#include "catalog/synth.h"

namespace tailor {

struct DemoOptions {
  std::string out_dir = "demo-out";
  int products = 2000;
  uint64_t seed = 1;
  int threads = 0;  // 0 = one per core
  bool progress = true;
  // The attributes the synthetic photos show (Fabric and Fit are catalog metadata, not drawn).
  std::vector<std::string> attributes = {"Sleeve Length", "Neck", "Collar", "Pattern", "baseColour"};
  double val_fraction = 0.1;
  // Model steps. Tuned for about 3 minutes on 2 CPU cores: see docs/demo.md.
  // Two stages, as BLIP-2: the image side pre-trained on the attributes (pretrain_epochs, attribute
  // heads, train/pretrain.h), then frozen while the language model learns to answer (epochs).
  std::string preset = "tiny";
  std::string init = "fan-in";   // tailor init --init: auto (= hf), hf, fan-in
  int pretrain_epochs = 12;      // 0: one stage, everything trained through the language model's loss
  double pretrain_lr = 1e-3;
  int epochs = 2;
  double lr = 1e-3;
  int batch_size = 32;           // pairs per step; also photos per pre-training step
  int examples = 8;  // validation products shown in the report, with a description each
};

// What the steps share: options, where things are, and each step's results.
struct DemoContext {
  DemoOptions opt;
  std::string catalog_dir;  // <out>/catalog
  std::string dataset_dir;  // <out>/dataset (train.jsonl, val.jsonl, ...)
  SynthSummary synth;
  PrepareSummary prepare;
  std::map<std::string, std::string> outputs;  // step name -> one-line result for the final summary
  std::vector<std::pair<std::string, double>> step_seconds;  // filled by run_demo as steps finish
  std::string final_text;  // printed last by run_demo (e.g. the accuracy table)
  std::FILE* log = stdout;
};

struct DemoStep {
  std::string name;
  std::function<void(DemoContext&)> run;  // throws Error on failure
};

DemoContext make_demo_context(const DemoOptions& opt);
// synth → prepare.
std::vector<DemoStep> demo_catalog_steps();
// init model → train → evaluate → describe → report. Outputs under ctx.opt.out_dir:
//   model-init/ (the random model), train/ (trainer output, train/model = the trained model),
//   eval.json + eval.txt (per attribute, majority baseline, confusion tables),
//   examples.jsonl (per shown product: photo, answers predicted vs true, description),
//   report.html (photos linked relative to it, questions, answers, descriptions, timings).
std::vector<DemoStep> demo_model_steps(const DemoOptions& opt);
// Runs the steps in order, printing "[i/n] name" and the time of each, then a summary; writes
// <out>/timings.json (seconds per step and in total).
void run_demo(DemoContext& ctx, const std::vector<DemoStep>& steps);

// `tailor demo`: checks the options (before anything runs), then every step of both halves.
void run_whole_demo(const DemoOptions& opt);

}  // namespace tailor
