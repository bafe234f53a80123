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
  lo.quantize = o.quantize;
  auto model = load_answerer(o.model_dir, lo);
  std::vector<AnswerRequest> reqs;
  AnswerMode mode = parse_answer_mode(o.answer);
  for (const auto& a : model->task().attributes)
    if (o.question.empty() || o.question == a.question) reqs.push_back(attribute_request(model->task(), a, image, mode));
  if (reqs.empty()) {  // not a trained attribute's question: free text
    AnswerRequest free_text;
    free_text.image = image;
    free_text.prompt = wrap_prompt(o.question);
    reqs.push_back(free_text);
  }
  for (const Answer& a : model->answer(reqs, o.generation)) {
    if (a.has_confidence()) std::printf("%s\t(confidence %.3f)\n", a.text.c_str(), a.confidence);
    else std::printf("%s\n", a.text.c_str());
  }
}

}  // namespace tailor
