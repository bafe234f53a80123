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
  // Choice answering: the allowed answer texts ("Attribute: value"), scored by their likelihood; the
  // answer is the likeliest. Empty: free generation with the GenerationOptions.
  std::vector<std::string> candidates;
  double temperature = 1.0;  // of the softmax over the candidates' log-likelihoods (calibration)
};

struct Answer {
  std::string text;
  // Choice answers: the probability of `text` among the candidates; free generation has none (-1).
  double confidence = -1;
  std::vector<double> log_likelihoods;  // choice answers: one per candidate, in order
  bool has_confidence() const { return confidence >= 0; }
};

std::vector<std::string> answer_texts(const std::vector<Answer>& answers);

// Choice wherever the attribute's values are known, or free generation everywhere.
enum class AnswerMode { Choice, Free };
AnswerMode parse_answer_mode(const std::string& name);  // "choice" | "free"; Error otherwise
const char* answer_mode_name(AnswerMode mode);

// The request for one attribute of one photo: choice among the values the model was trained with
// (task.values), at the attribute's temperature, when mode is Choice and there are at least two;
// otherwise free generation.
AnswerRequest attribute_request(const TaskInfo& task, const AttributeSpec& attribute,
                                std::shared_ptr<const ImageRGB> image, AnswerMode mode);

class Answerer {
 public:
  virtual ~Answerer() = default;
  // One batched pass over all requests; returns one answer per request, in order.
  virtual std::vector<Answer> answer(const std::vector<AnswerRequest>& requests, const GenerationOptions& options) = 0;
  // The attributes and templates the model was trained with.
  virtual const TaskInfo& task() const = 0;
  virtual std::string name() const = 0;  // e.g. the model directory
};

}  // namespace tailor
