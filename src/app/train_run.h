// `tailor train` as one call: join or launch the data-parallel job, train (train/trainer.h), and
// print the result on rank 0.
#pragma once
#include "app/launch.h"
#include "train/trainer.h"

namespace tailor {

void run_training(TrainOptions o, const DistributedOptions& dist);

}  // namespace tailor
