// The model as serving and describing see it: photos + questions in, answer texts out.
// No libtorch here, so the HTTP server and the writers build without it.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/attributes.h"
#include "core/image.h"

namespace tailor {

struct GenerationOptions {
  int max_new_tokens = 20;
  int min_new_tokens = 0;
  int num_beams = 1;
  float length_penalty = 1.0f;
  bool do_sample = false;
  float temperature = 1.0f;
  float top_p = 1.0f;
  uint64_t seed = 0;
};

struct AnswerRequest {
  // Requests that share one image pointer share one vision + Q-Former pass.
  std::shared_ptr<const ImageRGB> image;
  std::string prompt;  // wrapped ("Question: ... Answer: ") by the caller
};

class Answerer {
 public:
  virtual ~Answerer() = default;
  // One batched pass over all requests; returns one generated text per request, in order.
  virtual std::vector<std::string> answer(const std::vector<AnswerRequest>& requests,
                                          const GenerationOptions& options) = 0;
  // The attributes and templates the model was trained with.
  virtual const TaskInfo& task() const = 0;
  virtual std::string name() const = 0;  // e.g. the model directory
};

}  // namespace tailor
