// `tailor ask` as one call: one photo, one question (or every attribute the model was trained on),
// answers printed one per line (choice answers with their confidence).
#pragma once
#include <string>

#include "infer/answerer.h"

namespace tailor {

struct AskOptions {
  std::string model_dir, image, question;  // question empty: every attribute of the model's task
  std::string device = "cpu", dtype = "auto", quantize = "auto";
  std::string answer = "choice";  // choice (with a confidence) where the attribute's values are known, or free
  GenerationOptions generation;
};

void run_ask(const AskOptions& o);

}  // namespace tailor
