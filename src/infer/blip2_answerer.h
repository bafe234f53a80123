// The Answerer over a live model (shared with a trainer, so evaluation sees the current weights).
#pragma once
#include <memory>

#include "infer/answerer.h"
#include "model/model_dir.h"

namespace tailor {

// static_greedy: answer greedy requests through StaticGreedyGenerator, captured as CUDA graphs where
// they are available (load_answerer on a GPU), else run eagerly (as tests do on the CPU). Only for a
// model whose weights and modules stay as they are: a graph holds their addresses, so a trainer's
// answerer keeps the default.
std::unique_ptr<Answerer> make_blip2_answerer(const Blip2Bundle& bundle, const torch::Device& dev,
                                              bool static_greedy = false);

}  // namespace tailor
