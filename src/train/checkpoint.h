// What makes `tailor train --resume` continue exactly: the run's position, the fingerprint of what
// must not change across a resume, and checkpoint/ (trainable weights, optimizer state, random
// generators, position), written so that a kill at any moment leaves a complete one.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>
#include <nlohmann/json.hpp>

#include "train/optimizer.h"
#include "train/trainer.h"

namespace tailor {

// Where the run is: enough to continue exactly after a kill.
struct RunState {
  int64_t step = 0;   // optimizer steps done
  int64_t epoch = 0;  // current epoch
  int64_t pos = 0;    // pairs of this epoch's order already consumed
};

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Every option of `o` by name, as the fingerprint and logs show them (all but the job's world).
nlohmann::json train_options_json(const TrainOptions& o);

// What must not change across --resume: every option that shapes the numbers (all of
// train_options_json but the few that cannot, listed in checkpoint.cpp with why) and the training
// pairs themselves (the epoch order is recomputed from them).
nlohmann::json run_fingerprint(const TrainOptions& o, const std::string& train_jsonl_text);

// Named tensors as float32 in one safetensors file, written atomically (temp + rename).
void write_f32_safetensors(const std::string& path, const NamedTensors& tensors,
                           const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// <out_dir>/checkpoint/: trainable.safetensors, optimizer.safetensors, rng_N.pt, state.json.
void save_checkpoint(const std::string& out_dir, const RunState& st, const nlohmann::json& fingerprint,
                     const NamedTensors& trainable, FlatAdam& opt, const torch::Device& dev);
// false when there is none; throws Error when it was made with another fingerprint or is damaged.
bool load_checkpoint(const std::string& out_dir, RunState& st, const nlohmann::json& fingerprint,
                     const NamedTensors& trainable, FlatAdam& opt, const torch::Device& dev);

// Keeps the log lines of steps up to `step` (a resumed run rewrites what came after).
void trim_log(const std::string& path, int64_t step);

}  // namespace tailor
