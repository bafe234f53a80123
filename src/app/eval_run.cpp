#include "app/eval_run.h"

#include <cstdio>
#include <memory>

#include "catalog/dataset.h"
#include "core/attributes.h"
#include "infer/load.h"
#include "train/distributed.h"
#include "train/eval.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/text.h"
#include "util/torch_threads.h"

namespace tailor {

// report.json -> report_free.json
static std::string with_suffix(const std::string& path, const std::string& suffix) {
  size_t dot = path.rfind('.');
  if (dot == std::string::npos || path.find('/', dot) != std::string::npos) return path + suffix;
  return path.substr(0, dot) + suffix + path.substr(dot);
}

void run_evaluation(const EvalRunOptions& o, const DistributedOptions& dist) {
  WorldInfo world = world_of(dist);
  if (launched_local_ranks(dist, world)) return;
  init_torch_threads();
  std::vector<PhotoShift> shifts;  // checked before anything loads
  for (const auto& name : split_comma_list(o.shift))
    if (parse_photo_shift(name) != PhotoShift::None) shifts.push_back(parse_photo_shift(name));
  std::string path = join_path(o.data_dir, o.split + ".jsonl");
  if (!file_exists(path)) throw Error(path + " not found: run `tailor prepare` first");
  std::vector<VqaPair> pairs = read_pairs(path);
  std::string train_path = join_path(o.data_dir, "train.jsonl");
  std::vector<VqaPair> ref = file_exists(train_path) ? read_pairs(train_path) : std::vector<VqaPair>{};
  LoadOptions lo;
  lo.device = o.device == "cuda" && world.distributed() ? "cuda:" + std::to_string(world.local_rank) : o.device;
  lo.dtype = o.dtype;
  lo.quantize = o.quantize;
  auto model = load_answerer(o.model_dir, lo);
  std::unique_ptr<Distributed> group;
  if (world.distributed()) group = std::make_unique<Distributed>(world, torch::Device(lo.device));
  // Each rank answers its part; rank 0 reports.
  auto run = [&](AnswerMode mode, PhotoShift photos) {
    if (group) return evaluate_distributed(*group, *model, pairs, ref, o.batch_size, o.generation, mode, o.target_precision, photos);
    return evaluate(*model, pairs, ref, o.batch_size, o.generation, true, mode, o.target_precision, photos);
  };
  std::vector<AnswerMode> modes;
  if (o.answer != "choice") modes.push_back(AnswerMode::Free);
  if (o.answer != "free") modes.push_back(AnswerMode::Choice);
  std::vector<EvalReport> reports;
  std::vector<std::vector<EvalReport>> shifted(modes.size());  // [mode][shift]
  for (size_t i = 0; i < modes.size(); ++i) {
    reports.push_back(run(modes[i], PhotoShift::None));
    for (PhotoShift s : shifts) shifted[i].push_back(run(modes[i], s));
  }
  if (group && !world.is_main()) return;
  std::string report = o.report.empty() ? join_path(o.data_dir, "eval_" + o.split + ".json") : o.report;
  for (size_t i = 0; i < modes.size(); ++i) {
    std::printf("== %s answers ==\n%s", answer_mode_name(modes[i]), eval_table(reports[i]).c_str());
    if (reports[i].seconds > 0)
      std::printf("answered %lld pairs in %.2f s (%.1f pairs/s, batches of %d)\n", (long long)reports[i].n,
                  reports[i].seconds, reports[i].n / reports[i].seconds, o.batch_size);
    std::string path = modes[i] == AnswerMode::Free && modes.size() == 2 ? with_suffix(report, "_free") : report;
    write_file_atomic(path, eval_report_json(reports[i]));
    std::printf("report: %s\n", path.c_str());
    for (size_t k = 0; k < shifts.size(); ++k) {
      const std::string shifted_path = with_suffix(path, std::string("_") + photo_shift_name(shifts[k]));
      write_file_atomic(shifted_path, eval_report_json(shifted[i][k]));
      std::printf("\n== %s answers, photos framed as %s ==\n%s\nreport: %s\n", answer_mode_name(modes[i]),
                  photo_shift_name(shifts[k]), shift_table(reports[i], shifted[i][k], shifts[k]).c_str(), shifted_path.c_str());
    }
  }
  if (modes.size() == 2) std::printf("\n%s", compare_table(reports[0], reports[1]).c_str());
  if (o.calibrate) {
    if (o.answer == "free") throw Error("--calibrate needs choice answers (--answer choice or both)");
    save_task_info(o.model_dir, with_calibration(model->task(), reports.back()));
    std::printf("calibration (temperature, threshold per attribute) stored in %s/tailor_task.json\n", o.model_dir.c_str());
  }
}

}  // namespace tailor
