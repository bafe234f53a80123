// The attributes tailor asks about, their question templates, and the prompt/answer text forms
// shared by prepare, training, serving and describing.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace tailor {

// One allowed value of an attribute and the other ways catalogs write it ("Half Sleeves" for
// "Short Sleeves").
struct AllowedValue {
  std::string value;
  std::vector<std::string> aliases;
};

struct AttributeSpec {
  std::string name;      // as in the catalog: "Sleeve Length", "baseColour", ...
  std::string question;  // "What is the sleeve length of the shirt in this picture?"
  // The values it may take; empty = any value, as the catalog writes it. A catalog value matches an
  // allowed value or alias ignoring case and runs of spaces (normalize_value).
  std::vector<AllowedValue> allowed;
  std::vector<std::string> article_types;  // the article types it is asked for; empty = every type
};

// The original system's eight attributes and templates, in its order (no allowed values, every type).
std::vector<AttributeSpec> default_attributes();
// Reads a task file: {"attributes": [{name, question, values?, article_types?}, ...]} (the form of
// tailor_task.json), an array of such entries, or the short form {"Attribute": "question", ...}.
// "values" lists allowed values, each a string or {"value": ..., "aliases": [...]}. Errors name the
// file, the line and the field ("task.json:7: attributes[1].values[2]: ...").
std::vector<AttributeSpec> load_attribute_specs(const std::string& path);
// The allowed value that `raw` stands for (case and runs of spaces ignored, aliases resolved); ""
// when the attribute has allowed values and raw is none of them; raw trimmed when it has none.
std::string normalize_value(const AttributeSpec& attribute, const std::string& raw);
// Whether the attribute is asked for a product of this article type ("" = unknown: asked).
bool applies_to(const AttributeSpec& attribute, const std::string& article_type);
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
