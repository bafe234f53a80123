// tailor demo: the whole pipeline on an embedded synthetic catalog, offline, as a list of steps.
// This stage provides the catalog steps (synthesize, prepare); later stages append theirs
// (train, evaluate, describe) in cmd_demo.cpp, reading what earlier steps left in DemoContext.
#pragma once
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "catalog/prepare.h"
#include "catalog/synth.h"

namespace tailor {

struct DemoOptions {
  std::string out_dir = "demo-out";
  int products = 400;
  uint64_t seed = 1;
  int threads = 0;  // 0 = one per core
  bool progress = true;
};

// What the steps share: options, where things are, and each step's results.
struct DemoContext {
  DemoOptions opt;
  std::string catalog_dir;  // <out>/catalog
  std::string dataset_dir;  // <out>/dataset (train.jsonl, val.jsonl, ...)
  SynthSummary synth;
  PrepareSummary prepare;
  std::map<std::string, std::string> outputs;  // step name -> one-line result for the final summary
  std::FILE* log = stdout;
};

struct DemoStep {
  std::string name;
  std::function<void(DemoContext&)> run;  // throws Error on failure
};

DemoContext make_demo_context(const DemoOptions& opt);
// synth → prepare.
std::vector<DemoStep> demo_catalog_steps();
// Runs the steps in order, printing "[i/n] name" and the time of each, then a summary.
void run_demo(DemoContext& ctx, const std::vector<DemoStep>& steps);

}  // namespace tailor
