#include "app/ask_run.h"

#include <cstdio>
#include <memory>

#include "catalog/images.h"
#include "core/attributes.h"
#include "infer/load.h"
#include "util/torch_threads.h"

namespace tailor {

void run_ask(const AskOptions& o) {
  init_torch_threads();
  auto image = std::make_shared<const ImageRGB>(load_image(o.image));
  LoadOptions lo;
  lo.device = o.device;
  lo.dtype = o.dtype;
  auto model = load_answerer(o.model_dir, lo);
  std::vector<AnswerRequest> reqs;
  if (!o.question.empty()) {
    reqs.push_back({image, wrap_prompt(o.question)});
  } else {
    for (const auto& a : model->task().attributes) reqs.push_back({image, wrap_prompt(a.question)});
  }
  std::vector<std::string> out = model->answer(reqs, o.generation);
  for (const auto& s : out) std::printf("%s\n", s.c_str());
}

}  // namespace tailor
