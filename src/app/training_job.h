// SageMaker's training-job contract for `tailor train` started with no arguments inside the container
// (SageMaker runs `docker run IMAGE train`). Under the root (/opt/ml; TAILOR_SAGEMAKER_ROOT in tests):
//   input/config/hyperparameters.json  `tailor train`'s flags by name, every value a string as SageMaker
//                                      passes them ("lr": "1e-4", "batch_size" or "batch-size": "64",
//                                      "full": "true"); keys starting with "sagemaker_" are SageMaker's own
//   input/data/model/                  the base model (HF layout), unless the "model" hyperparameter names one
//   input/data/train/                  prepared pairs (train.jsonl, val.jsonl) or a catalog, which is
//                                      prepared into output/data/prepared first (the "article_types"
//                                      hyperparameter: prepare's --article-types)
//   checkpoints/run/                   the run's --out: a restarted job (managed spot) resumes from it
//   model/                             the trained model `tailor serve` loads, with adapter/ (LoRA)
//   output/data/                       eval.json and train_log.jsonl
//   output/failure                     why the job failed (SageMaker's failure reason)
// SM_CHANNEL_MODEL and SM_CHANNEL_TRAIN, when set, are the channels' paths (as SageMaker sets them).
// The job prints one line per step and epoch ("Loss: …", "Epoch Loss: …") for metric definitions.
#pragma once
#include <string>
#include <vector>

namespace tailor {

struct TrainingJob {
  std::string root;
  std::vector<std::string> train_args;  // the `tailor train` flags this job amounts to
  std::string out_dir;                  // its --out
};

// This process runs as a training job: the root's input/config/hyperparameters.json exists.
bool training_job_present();

// Reads the job's configuration and channels into `tailor train` flags; a catalog in the train channel
// is prepared first (once: a finished preparation is reused, e.g. by the ranks of --nproc or after a
// restart). Errors name the file, key or channel.
TrainingJob open_training_job();

// After training: the model (and adapter) into root/model, eval.json and train_log.jsonl into
// root/output/data.
void finish_training_job(const TrainingJob& job);

// The failure reason into root/output/failure (best effort: the job is failing already); nothing
// in a rank that --nproc started (its launcher fails and reports).
void write_job_failure(const std::string& reason);

}  // namespace tailor
