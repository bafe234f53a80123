#include "app/eval_run.h"

#include <cstdio>

#include "catalog/dataset.h"
#include "infer/load.h"
#include "train/distributed.h"
#include "train/eval.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/torch_threads.h"

namespace tailor {

void run_evaluation(const EvalRunOptions& o, const DistributedOptions& dist) {
  WorldInfo world = world_of(dist);
  if (launched_local_ranks(dist, world)) return;
  init_torch_threads();
  std::string path = join_path(o.data_dir, o.split + ".jsonl");
  if (!file_exists(path)) throw Error(path + " not found: run `tailor prepare` first");
  std::vector<VqaPair> pairs = read_pairs(path);
  std::string train_path = join_path(o.data_dir, "train.jsonl");
  std::vector<VqaPair> ref = file_exists(train_path) ? read_pairs(train_path) : std::vector<VqaPair>{};
  LoadOptions lo;
  lo.device = o.device == "cuda" && world.distributed() ? "cuda:" + std::to_string(world.local_rank) : o.device;
  lo.dtype = o.dtype;
  auto model = load_answerer(o.model_dir, lo);
  EvalReport r;
  if (world.distributed()) {  // each rank answers its part; rank 0 reports
    Distributed group(world, torch::Device(lo.device));
    r = evaluate_distributed(group, *model, pairs, ref, o.batch_size, o.generation);
    if (!world.is_main()) return;
  } else {
    r = evaluate(*model, pairs, ref, o.batch_size, o.generation);
  }
  std::printf("%s", eval_table(r).c_str());
  std::string report = o.report.empty() ? join_path(o.data_dir, "eval_" + o.split + ".json") : o.report;
  write_file_atomic(report, eval_report_json(r));
  std::printf("report: %s\n", report.c_str());
}

}  // namespace tailor
