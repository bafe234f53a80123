#include <cstdio>

#include "catalog/attributes.h"
#include "catalog/images.h"
#include "cli/commands.h"
#include "infer/load.h"
#include "util/torch_threads.h"

namespace tailor::cli {

void add_ask(CLI::App& app) {
  auto* cmd = app.add_subcommand("ask", "Answer a question about a photo (all trained attributes if none)");
  struct Opts {
    std::string model, image, question, device = "cpu", dtype = "auto", answer = "choice";
    GenerationOptions gen;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--model", o->model, "Model directory")->required();
  cmd->add_option("--image", o->image, "JPEG or PNG photo")->required();
  cmd->add_option("--question", o->question, "Question (wrapped as 'Question: ... Answer: ')");
  cmd->add_option("--device", o->device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "auto, f32, bf16, f16")->capture_default_str();
  cmd->add_option("--answer", o->answer, "choice: the likeliest of each attribute's known values, with its confidence; free: generated text")
      ->check(CLI::IsMember({"choice", "free"}))
      ->capture_default_str();
  cmd->add_option("--max-new-tokens", o->gen.max_new_tokens)->capture_default_str();
  cmd->add_option("--num-beams", o->gen.num_beams)->capture_default_str();
  cmd->callback([o] {
    init_torch_threads();
    auto image = std::make_shared<const ImageRGB>(load_image(o->image));
    LoadOptions lo;
    lo.device = o->device;
    lo.dtype = o->dtype;
    auto model = load_answerer(o->model, lo);
    std::vector<AnswerRequest> reqs;
    AnswerMode mode = parse_answer_mode(o->answer);
    for (const auto& a : model->task().attributes)
      if (o->question.empty() || o->question == a.question) reqs.push_back(attribute_request(model->task(), a, image, mode));
    if (reqs.empty()) reqs.push_back({image, wrap_prompt(o->question)});  // not a trained attribute: free text
    for (const Answer& a : model->answer(reqs, o->gen)) {
      if (a.has_confidence()) std::printf("%s\t(confidence %.3f)\n", a.text.c_str(), a.confidence);
      else std::printf("%s\n", a.text.c_str());
    }
  });
}

}  // namespace tailor::cli
