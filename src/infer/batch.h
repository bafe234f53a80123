// Turning photos and texts into model tensors, shared by inference and training.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "core/image.h"
#include "model/config.h"
#include "model/image_processor.h"
#include "model/tokenizer.h"

namespace tailor {

// [N,3,H,W] float32 on the CPU. pinned (for a GPU; needs a CUDA libtorch): page-locked memory, so
// the copy to the device can be asynchronous, and the photos preprocessed on one thread per core.
torch::Tensor pixel_batch(const std::vector<const ImageRGB*>& images, const ImageProcessorConfig& cfg,
                          bool pinned = false);

struct TokenBatch {
  torch::Tensor ids;   // [N,T] int64, right-padded with pad_id (or -100 for labels)
  torch::Tensor mask;  // [N,T] int64, 1 = token
};

// Prompts for the encoder: eos appended, <image> tokens in front when the config uses them.
TokenBatch prompt_batch(const T5Tokenizer& tok, const std::vector<std::string>& prompts, const Blip2Config& cfg);
// Targets for the decoder: eos appended, padding = -100 (ignored by the loss).
torch::Tensor label_batch(const T5Tokenizer& tok, const std::vector<std::string>& answers);

}  // namespace tailor
