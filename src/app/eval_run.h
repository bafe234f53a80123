// `tailor eval` as one call: accuracy per attribute of a model on prepared pairs, with the majority
// baseline; split over the ranks of a data-parallel job (train/distributed.h) when there is one.
#pragma once
#include <string>

#include "app/launch.h"
#include "infer/answerer.h"

namespace tailor {

struct EvalRunOptions {
  std::string model_dir, data_dir;
  std::string split = "val";  // val or train: which <data>/<split>.jsonl to answer
  std::string report;         // JSON report path (default: <data>/eval_<split>.json)
  std::string device = "cpu", dtype = "auto", quantize = "auto";
  int batch_size = 32;
  GenerationOptions generation;
  std::string answer = "choice";   // choice, free, or both (the free report beside `report`, suffixed _free)
  double target_precision = 0.98;  // for each attribute's suggested confidence threshold
  bool calibrate = false;          // store the fitted temperatures and thresholds in the model's tailor_task.json
  // Also answer every pair with its photo framed as another source would (train/reframe.h), once per
  // framing of this comma list: each shifted report beside `report`, suffixed _<framing>, and a table
  // of it against the photos as-is. "none": as-is only.
  std::string shift = "none";
};

// Prints the tables and writes the reports (rank 0 of a job).
void run_evaluation(const EvalRunOptions& o, const DistributedOptions& dist);

}  // namespace tailor
