#include <cstdio>

#include "catalog/dataset.h"
#include "cli/commands.h"
#include "infer/load.h"
#include "train/distributed.h"
#include "train/eval.h"
#include "train/world.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/torch_threads.h"

namespace tailor::cli {

void add_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Accuracy per attribute on prepared pairs, with the majority baseline");
  struct Opts {
    std::string model, data, split = "val", report, device = "cpu", dtype = "auto";
    int batch = 32;
    GenerationOptions gen;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--model", o->model, "Model directory")->required();
  cmd->add_option("--data", o->data, "Directory written by `tailor prepare`")->required();
  cmd->add_option("--split", o->split, "val or train")->capture_default_str();
  cmd->add_option("--report", o->report, "Write the JSON report here (default: <data>/eval_<split>.json)");
  cmd->add_option("--batch-size", o->batch)->capture_default_str();
  cmd->add_option("--num-beams", o->gen.num_beams)->capture_default_str();
  cmd->add_option("--max-new-tokens", o->gen.max_new_tokens)->capture_default_str();
  cmd->add_option("--device", o->device)->capture_default_str();
  cmd->add_option("--dtype", o->dtype)->capture_default_str();
  auto nproc = std::make_shared<int>(0);
  auto dist_timeout = std::make_shared<double>(0);
  cmd->add_option("--nproc", *nproc, "Split the pairs over N local ranks (else the torchrun variables, as `train`)");
  cmd->add_option("--dist-timeout", *dist_timeout, "Seconds to wait for the other ranks (default 300)");
  cmd->callback([o, nproc, dist_timeout] {
    WorldInfo world = world_from_env();
    if (*dist_timeout > 0) world.timeout_s = *dist_timeout;
    if (*nproc > 1) {
      if (world.distributed()) throw Error("--nproc: this process is already rank " + std::to_string(world.rank) + " of a job");
      launch_local_workers(*nproc, without_nproc(own_command_line()));
      return;
    }
    init_torch_threads();
    std::string path = join_path(o->data, o->split + ".jsonl");
    if (!file_exists(path)) throw Error(path + " not found: run `tailor prepare` first");
    std::vector<VqaPair> pairs = read_pairs(path);
    std::string train_path = join_path(o->data, "train.jsonl");
    std::vector<VqaPair> ref = file_exists(train_path) ? read_pairs(train_path) : std::vector<VqaPair>{};
    LoadOptions lo;
    lo.device = o->device == "cuda" && world.distributed() ? "cuda:" + std::to_string(world.local_rank) : o->device;
    lo.dtype = o->dtype;
    auto model = load_answerer(o->model, lo);
    EvalReport r;
    if (world.distributed()) {  // each rank answers its part; rank 0 reports
      Distributed dist(world, torch::Device(lo.device));
      r = evaluate_distributed(dist, *model, pairs, ref, o->batch, o->gen);
      if (!world.is_main()) return;
    } else {
      r = evaluate(*model, pairs, ref, o->batch, o->gen);
    }
    std::printf("%s", eval_table(r).c_str());
    std::string report = o->report.empty() ? join_path(o->data, "eval_" + o->split + ".json") : o->report;
    write_file_atomic(report, eval_report_json(r));
    std::printf("report: %s\n", report.c_str());
  });
}

}  // namespace tailor::cli
