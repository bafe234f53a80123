#include "app/train_run.h"

#include <cstdio>

#include "util/error.h"
#include "util/torch_threads.h"

namespace tailor {

void run_training(TrainOptions o, const DistributedOptions& dist) {
  // Checked before any rank starts (the trainer refuses a CUDA graph on the CPU too, later).
  if (o.cuda_graph && o.device.rfind("cuda", 0) != 0) throw Error("--cuda-graph needs --device cuda");
  o.world = world_of(dist);
  if (launched_local_ranks(dist, o.world)) return;
  init_torch_threads();
  TrainResult r = train_model(o);
  if (!o.world.is_main()) return;  // rank 0 reports
  std::printf("trained %lld steps (%lld trainable parameters), %.1f samples/s; wrote %s/model%s\n", (long long)r.steps,
              (long long)r.trainable_parameters, r.samples_per_second, o.out_dir.c_str(), o.full ? "" : " and adapter/");
  if (r.evaluated) std::printf("%s", eval_table(r.final_eval).c_str());
}

}  // namespace tailor
