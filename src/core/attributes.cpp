#include "core/attributes.h"

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/fs.h"
#include "util/text.h"

namespace tailor {

using json = nlohmann::json;

std::vector<AttributeSpec> default_attributes() {
  return {
      {"Fabric", "What is the fabric of the shirt in this picture?"},
      {"Fit", "What is the Fit of the shirt in this picture?"},
      {"Collar", "What is the collar of the shirt in this picture?"},
      {"Pattern", "What is the pattern of the shirt in this picture?"},
      {"Neck", "What is the neck type of the shirt in this picture?"},
      {"Sleeve Length", "What is the sleeve length of the shirt in this picture?"},
      {"Sleeve Styling", "What is the sleeve styling of the shirt in this picture?"},
      {"baseColour", "What is the colour of the shirt in this picture?"},
  };
}

static std::vector<AttributeSpec> specs_from_json(const json& j, const std::string& where) {
  std::vector<AttributeSpec> out;
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!it.value().is_string())
        throw Error(where + ": the question for \"" + it.key() + "\" must be a string");
      out.push_back({it.key(), it.value().get<std::string>()});
    }
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i) {
      const json& e = j[i];
      if (!e.is_object() || !e.contains("name") || !e.contains("question") || !e["name"].is_string() ||
          !e["question"].is_string())
        throw Error(where + ": entry " + std::to_string(i) + " needs string fields \"name\" and \"question\"");
      out.push_back({e["name"].get<std::string>(), e["question"].get<std::string>()});
    }
  } else {
    throw Error(where + ": expected an object {attribute: question} or an array of {name, question}");
  }
  if (out.empty()) throw Error(where + ": no attributes");
  return out;
}

std::vector<AttributeSpec> load_attribute_specs(const std::string& path) {
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw Error(path + ": invalid JSON: " + e.what());
  }
  return specs_from_json(j, path);
}

std::vector<AttributeSpec> select_attributes(const std::vector<AttributeSpec>& all,
                                             const std::vector<std::string>& names) {
  std::vector<AttributeSpec> out;
  for (const auto& n : names) {
    bool found = false;
    for (const auto& a : all)
      if (a.name == n) {
        out.push_back(a);
        found = true;
      }
    if (!found) {
      std::string known;
      for (const auto& a : all) known += (known.empty() ? "" : ", ") + a.name;
      throw Error("unknown attribute \"" + n + "\" (known: " + known + ")");
    }
  }
  return out;
}

std::string wrap_prompt(const std::string& question) {
  if (question.rfind("Question:", 0) == 0) return question;
  return "Question: " + question + " Answer: ";
}

std::string answer_text(const std::string& attribute, const std::string& value) {
  return attribute + ": " + value;
}

std::pair<std::string, std::string> parse_answer(const std::string& text,
                                                 const std::string& fallback_attribute) {
  size_t c = text.find(':');
  if (c != std::string::npos) {
    std::string attr = trim(text.substr(0, c));
    if (!fallback_attribute.empty() && attr == fallback_attribute) return {attr, trim(text.substr(c + 1))};
    if (fallback_attribute.empty() && !attr.empty()) return {attr, trim(text.substr(c + 1))};
  }
  return {fallback_attribute, trim(text)};
}

static const char* kTaskFile = "tailor_task.json";

void save_task_info(const std::string& model_dir, const TaskInfo& info) {
  json j;
  j["attributes"] = json::array();
  for (const auto& a : info.attributes) j["attributes"].push_back({{"name", a.name}, {"question", a.question}});
  j["values"] = info.values;
  if (!info.temperature.empty() || !info.threshold.empty()) {
    json c = json::object();
    for (const auto& [a, t] : info.temperature) c[a]["temperature"] = t;
    for (const auto& [a, t] : info.threshold) c[a]["threshold"] = t;
    j["calibration"] = c;
  }
  write_file_atomic(join_path(model_dir, kTaskFile), j.dump(2) + "\n");
}

TaskInfo load_task_info(const std::string& model_dir) {
  TaskInfo info;
  std::string path = join_path(model_dir, kTaskFile);
  if (!file_exists(path)) {
    info.attributes = default_attributes();
    return info;
  }
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw Error(path + ": invalid JSON: " + e.what());
  }
  if (!j.contains("attributes")) throw Error(path + ": missing field \"attributes\"");
  info.attributes = specs_from_json(j["attributes"], path + " field attributes");
  if (j.contains("values")) {
    try {
      info.values = j["values"].get<std::map<std::string, std::vector<std::string>>>();
    } catch (const json::exception& e) {
      throw Error(path + ": field \"values\" must map attribute to a list of strings");
    }
  }
  if (j.contains("calibration")) {
    const json& c = j["calibration"];
    if (!c.is_object()) throw Error(path + ": field \"calibration\" must be an object {attribute: {temperature, threshold}}");
    for (auto it = c.begin(); it != c.end(); ++it) {
      std::string where = path + ": calibration[\"" + it.key() + "\"]";
      if (!it.value().is_object()) throw Error(where + " must be an object");
      for (auto f = it.value().begin(); f != it.value().end(); ++f) {
        if (!f.value().is_number()) throw Error(where + "." + f.key() + " must be a number");
        double v = f.value().get<double>();
        if (f.key() == "temperature") {
          if (!(v > 0 && v < 1e6)) throw Error(where + ".temperature must be positive, got " + f.value().dump());
          info.temperature[it.key()] = v;
        } else if (f.key() == "threshold") {
          if (!(v >= 0 && v <= 1)) throw Error(where + ".threshold must be in [0, 1], got " + f.value().dump());
          info.threshold[it.key()] = v;
        } else {
          throw Error(where + ": unknown field \"" + f.key() + "\" (temperature, threshold)");
        }
      }
    }
  }
  return info;
}

}  // namespace tailor
