// The attributes tailor asks about, their question templates, and the prompt/answer text forms
// shared by prepare, training, serving and describing.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace tailor {

struct AttributeSpec {
  std::string name;      // as in the catalog: "Sleeve Length", "baseColour", ...
  std::string question;  // "What is the sleeve length of the shirt in this picture?"
};

// The original system's eight attributes and templates, in its order.
std::vector<AttributeSpec> default_attributes();
// Reads a templates file: JSON object {"Attribute": "question", ...} or array of {name, question}.
std::vector<AttributeSpec> load_attribute_specs(const std::string& path);
// Keeps the named attributes of `all` (in the given order); throws Error naming an unknown one.
std::vector<AttributeSpec> select_attributes(const std::vector<AttributeSpec>& all,
                                             const std::vector<std::string>& names);

// "Question: {question} Answer: " unless the text already has that form.
std::string wrap_prompt(const std::string& question);
// The training target: "{Attribute}: {value}".
std::string answer_text(const std::string& attribute, const std::string& value);
// Splits generated text "Sleeve Length: Long Sleeves" into {"Sleeve Length", "Long Sleeves"}.
// Without a known attribute prefix, returns {fallback_attribute, whole text}.
std::pair<std::string, std::string> parse_answer(const std::string& text,
                                                 const std::string& fallback_attribute);

// What a trained model directory records about its task (tailor_task.json beside config.json).
struct TaskInfo {
  std::vector<AttributeSpec> attributes;
  std::map<std::string, std::vector<std::string>> values;  // attribute -> values seen in training
  // Choice-answer calibration, fitted by `tailor eval --calibrate` on the validation split:
  std::map<std::string, double> temperature;  // attribute -> softmax temperature (absent: 1)
  std::map<std::string, double> threshold;    // attribute -> confidence below which a person reviews
};
void save_task_info(const std::string& model_dir, const TaskInfo& info);
// Missing file → default_attributes() and no values (a plain HF checkpoint).
TaskInfo load_task_info(const std::string& model_dir);

}  // namespace tailor
