// The tensor-free part of the Answerer interface: answer modes and per-attribute requests.
#include "infer/answerer.h"

#include "util/error.h"

namespace tailor {

std::vector<std::string> answer_texts(const std::vector<Answer>& answers) {
  std::vector<std::string> texts;
  for (const Answer& a : answers) texts.push_back(a.text);
  return texts;
}

AnswerMode parse_answer_mode(const std::string& name) {
  if (name == "choice") return AnswerMode::Choice;
  if (name == "free") return AnswerMode::Free;
  throw Error("unknown answer mode \"" + name + "\" (use choice or free)");
}

const char* answer_mode_name(AnswerMode mode) { return mode == AnswerMode::Choice ? "choice" : "free"; }

AnswerRequest attribute_request(const TaskInfo& task, const AttributeSpec& attribute,
                                std::shared_ptr<const ImageRGB> image, AnswerMode mode) {
  AnswerRequest r;
  r.image = std::move(image);
  r.prompt = wrap_prompt(attribute.question);
  auto values = task.values.find(attribute.name);
  if (mode == AnswerMode::Choice && values != task.values.end() && values->second.size() >= 2) {
    for (const std::string& v : values->second) r.candidates.push_back(answer_text(attribute.name, v));
    auto t = task.temperature.find(attribute.name);
    if (t != task.temperature.end()) r.temperature = t->second;
  }
  return r;
}

}  // namespace tailor
