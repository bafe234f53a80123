// Greedy answering with fixed shapes: photos + prompts -> token ids, each stage a CUDA graph.
//
// Per shape bucket (photos and rows rounded up to a power of two, prompt length up to a multiple
// of 8, each max_new_tokens; at most kMaxTextStages kept) three graphs are captured once and
// replayed: the image side (vision tower, Q-Former, projection), the T5 encoder with the decoder's
// cross-attention K/V (T5StaticCache), and one decoding step (embedding, decoder layers, lm_head,
// argmax, finished flags, position + 1). Between steps the host reads one flag to stop when every
// row has finished. The token ids are generate_tokens()'s greedy ones: padded rows repeat row 0,
// padded prompt positions are masked, and keys past the current token weigh exactly 0. Without CUDA
// graphs (CPU, TAILOR_CUDA_GRAPHS=0) the same functions run eagerly, which is how the CPU tests
// check them.
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "infer/answerer.h"
#include "infer/cuda_graph.h"
#include "model/blip2.h"

namespace tailor {

class StaticGreedyGenerator {
 public:
  // use_graphs: capture CUDA graphs (the model must be on a CUDA device).
  StaticGreedyGenerator(Blip2ForConditionalGeneration model, bool use_graphs);
  ~StaticGreedyGenerator();

  // pixels [U,3,H,W] float32 (any device), row_image[r] = which photo row r asks about, ids/mask [R,T]
  // on the CPU (prompt_batch). Greedy only (num_beams 1, no sampling). Returns [R, L] int64 on the CPU.
  torch::Tensor generate(const torch::Tensor& pixels, const std::vector<int64_t>& row_image, const torch::Tensor& ids,
                         const torch::Tensor& mask, const GenerationOptions& o);

  // Which options this path serves (the rest go to generate_tokens).
  static bool supports(const GenerationOptions& o) { return o.num_beams == 1 && !o.do_sample; }
  size_t graphs_captured() const { return graphs_; }
  size_t text_stages() const { return texts_.size(); }
  static constexpr size_t kMaxTextStages = 32;  // text stages kept (older ones dropped)

 private:
  struct ImageStage;
  struct TextStage;
  ImageStage& image_stage(int64_t U);
  TextStage& text_stage(int64_t R, int64_t T, int64_t N);

  Blip2ForConditionalGeneration m_;
  bool use_graphs_;
  torch::TensorOptions opts_;  // the model's dtype and device
  std::map<int64_t, std::unique_ptr<ImageStage>> images_;
  std::map<std::tuple<int64_t, int64_t, int64_t>, std::unique_ptr<TextStage>> texts_;
  size_t graphs_ = 0;
};

int64_t bucket_pow2(int64_t n);  // 1, 2, 4, ...

}  // namespace tailor
