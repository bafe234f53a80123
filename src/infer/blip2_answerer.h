// The Answerer over a live model (shared with a trainer, so evaluation sees the current weights).
#pragma once
#include <memory>

#include "infer/answerer.h"
#include "model/model_dir.h"

namespace tailor {

std::unique_ptr<Answerer> make_blip2_answerer(const Blip2Bundle& bundle, const torch::Device& dev);

}  // namespace tailor
