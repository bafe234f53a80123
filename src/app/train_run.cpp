#include "app/train_run.h"

#include <cstdio>

#include "util/error.h"
#include "util/signals.h"
#include "util/torch_threads.h"

namespace tailor {

void run_training(TrainOptions o, const DistributedOptions& dist) {
  // Checked before any rank starts (the trainer checks it again).
  if (o.cuda_graph != "auto" && o.cuda_graph != "on" && o.cuda_graph != "off")
    throw Error("--cuda-graph must be auto, on or off, not \"" + o.cuda_graph + "\"");
  o.world = world_of(dist);
  // As PID 1 of a container (SageMaker's `train`) SIGTERM would be dropped without a handler; the
  // training loop turns it into a checkpoint and a stop (util/signals.h).
  exit_on_stop_signals();
  if (launched_local_ranks(dist, o.world)) return;
  init_torch_threads();
  TrainResult r = train_model(o);
  if (!o.world.is_main()) return;  // rank 0 reports
  std::printf("trained %lld steps (%lld trainable parameters), %.1f samples/s; wrote %s/model%s\n", (long long)r.steps,
              (long long)r.trainable_parameters, r.samples_per_second, o.out_dir.c_str(), o.full ? "" : " and adapter/");
  const TrainTimes& t = r.times;
  std::printf("time: %.1f s to the first step (data %.1f, model %.1f, pre-training %.1f, feature cache %.1f, first step "
              "%.1f), later steps %.1f, evaluation %.1f, checkpoints %.1f, outputs %.1f\n",
              t.to_first_step, t.data, t.model, t.pretrain, t.features, t.first_step, t.steps, t.evaluation, t.checkpoints,
              t.outputs);
  if (r.evaluated) std::printf("%s", eval_table(r.final_eval).c_str());
}

}  // namespace tailor
