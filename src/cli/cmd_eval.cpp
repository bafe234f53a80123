#include <cstdio>

#include "catalog/attributes.h"
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

// report.json -> report_choice.json
static std::string with_suffix(const std::string& path, const std::string& suffix) {
  size_t dot = path.rfind('.');
  if (dot == std::string::npos || path.find('/', dot) != std::string::npos) return path + suffix;
  return path.substr(0, dot) + suffix + path.substr(dot);
}

void add_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Accuracy per attribute on prepared pairs, with the majority baseline");
  struct Opts {
    std::string model, data, split = "val", report, device = "cpu", dtype = "auto", answer = "choice";
    int batch = 32;
    double target_precision = 0.98;
    bool calibrate = false;
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
  cmd->add_option("--answer", o->answer, "choice (likeliest known value, with confidence and calibration; free text where no values are known), free (generated text), or both side by side (the free report beside --report, suffixed _free)")
      ->check(CLI::IsMember({"choice", "free", "both"}))
      ->capture_default_str();
  cmd->add_option("--target-precision", o->target_precision, "Suggest per attribute the lowest confidence threshold whose accepted choice answers reach this accuracy")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_flag("--calibrate", o->calibrate, "Store each attribute's fitted temperature and suggested threshold in the model's tailor_task.json (use the validation split)");
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
    std::unique_ptr<Distributed> dist;
    if (world.distributed()) dist = std::make_unique<Distributed>(world, torch::Device(lo.device));
    // Each rank answers its part; rank 0 reports.
    auto run = [&](AnswerMode mode) {
      if (dist) return evaluate_distributed(*dist, *model, pairs, ref, o->batch, o->gen, mode, o->target_precision);
      return evaluate(*model, pairs, ref, o->batch, o->gen, true, mode, o->target_precision);
    };
    std::vector<AnswerMode> modes;
    if (o->answer != "choice") modes.push_back(AnswerMode::Free);
    if (o->answer != "free") modes.push_back(AnswerMode::Choice);
    std::vector<EvalReport> reports;
    for (AnswerMode m : modes) reports.push_back(run(m));
    if (dist && !world.is_main()) return;
    std::string report = o->report.empty() ? join_path(o->data, "eval_" + o->split + ".json") : o->report;
    for (size_t i = 0; i < modes.size(); ++i) {
      std::printf("== %s answers ==\n%s", answer_mode_name(modes[i]), eval_table(reports[i]).c_str());
      if (reports[i].seconds > 0)
        std::printf("answered %lld pairs in %.2f s (%.1f pairs/s, batches of %d)\n", (long long)reports[i].n,
                    reports[i].seconds, reports[i].n / reports[i].seconds, o->batch);
      std::string path = modes[i] == AnswerMode::Free && modes.size() == 2 ? with_suffix(report, "_free") : report;
      write_file_atomic(path, eval_report_json(reports[i]));
      std::printf("report: %s\n", path.c_str());
    }
    if (modes.size() == 2) std::printf("\n%s", compare_table(reports[0], reports[1]).c_str());
    if (o->calibrate) {
      if (o->answer == "free") throw Error("--calibrate needs choice answers (--answer choice or both)");
      save_task_info(o->model, with_calibration(model->task(), reports.back()));
      std::printf("calibration (temperature, threshold per attribute) stored in %s/tailor_task.json\n", o->model.c_str());
    }
  });
}

}  // namespace tailor::cli
