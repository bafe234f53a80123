// tailor demo: the whole pipeline on an embedded synthetic catalog, offline, as a list of steps.
// This stage provides the catalog steps (synthesize, prepare); train/demo.h appends the model steps
// (init, train, evaluate, describe, report), reading what earlier steps left in DemoContext.
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
  // Model half (train/demo.h). Tuned for about 3 minutes on 2 CPU cores: see docs/benchmarks.md.
  std::string preset = "tiny";
  int epochs = 3;
  double lr = 3e-4;
  int batch_size = 32;
  double weight_decay = 0.01;
  double warmup = 0.05;          // fraction of the steps
  double max_grad_norm = 1.0;    // 0 = no clipping
  double image_lr_scale = 1.0;   // image side (vision, Q-Former, queries, projection) at lr times this
  double adam_beta2 = 0.999;
  std::string init = "auto";     // tailor init --init: auto (= hf), hf, fan-in
  // Optional second stage: the language model frozen, the image side (vision, Q-Former,
  // projection) trained alone at image_lr, so that it must carry what the answers need.
  int image_epochs = 0;
  double image_lr = 1e-3;
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
// Runs the steps in order, printing "[i/n] name" and the time of each, then a summary; writes
// <out>/timings.json (seconds per step and in total).
void run_demo(DemoContext& ctx, const std::vector<DemoStep>& steps);

}  // namespace tailor
