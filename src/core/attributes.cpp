#include "core/attributes.h"

#include <set>

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/fs.h"
#include "util/json_positions.h"
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

// The comparison form of a value: ASCII lower case, trimmed, runs of spaces as one.
static std::string value_key(const std::string& v) {
  std::string out;
  bool space = false;
  for (char c : trim(v)) {
    if (c == ' ' || c == '\t') {
      space = true;
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  return out;
}

std::string normalize_value(const AttributeSpec& attribute, const std::string& raw) {
  if (attribute.allowed.empty()) return trim(raw);
  const std::string key = value_key(raw);
  for (const auto& v : attribute.allowed) {
    if (value_key(v.value) == key) return v.value;
    for (const auto& alias : v.aliases)
      if (value_key(alias) == key) return v.value;
  }
  return "";
}

bool applies_to(const AttributeSpec& attribute, const std::string& article_type) {
  if (attribute.article_types.empty() || article_type.empty()) return true;
  for (const auto& t : attribute.article_types)
    if (t == article_type) return true;
  return false;
}

// Names a field of a task file in errors: "file:LINE: field" (the line from json_value_lines).
struct TaskFileWhere {
  std::string file;
  std::map<std::string, int64_t> lines;
  std::string operator()(const std::string& field) const {
    auto it = lines.find(field);
    std::string at = it == lines.end() ? file : file + ":" + std::to_string(it->second);
    return field.empty() ? at : at + ": " + field;
  }
};

static std::string non_empty_string(const json& j, const std::string& field, const TaskFileWhere& where) {
  if (!j.is_string() || trim(j.get<std::string>()).empty()) throw Error(where(field) + " must be a non-empty string");
  return j.get<std::string>();
}

static std::vector<std::string> string_list(const json& j, const std::string& field, const TaskFileWhere& where) {
  if (!j.is_array()) throw Error(where(field) + " must be a list of strings");
  std::vector<std::string> out;
  for (size_t i = 0; i < j.size(); ++i) out.push_back(non_empty_string(j[i], field + "[" + std::to_string(i) + "]", where));
  return out;
}

// One entry {name, question, values?, article_types?} at `field` ("attributes[2]").
static AttributeSpec spec_from_json(const json& e, const std::string& field, const TaskFileWhere& where) {
  if (!e.is_object()) throw Error(where(field) + " must be an object {name, question, values, article_types}");
  for (auto it = e.begin(); it != e.end(); ++it)
    if (it.key() != "name" && it.key() != "question" && it.key() != "values" && it.key() != "article_types")
      throw Error(where(field + "." + it.key()) + ": unknown field (name, question, values, article_types)");
  if (!e.contains("name")) throw Error(where(field) + " has no \"name\"");
  if (!e.contains("question")) throw Error(where(field) + " has no \"question\"");
  AttributeSpec a;
  a.name = non_empty_string(e["name"], field + ".name", where);
  a.question = non_empty_string(e["question"], field + ".question", where);
  if (e.contains("article_types")) a.article_types = string_list(e["article_types"], field + ".article_types", where);
  if (e.contains("values")) {
    const json& vs = e["values"];
    const std::string vfield = field + ".values";
    if (!vs.is_array() || vs.empty()) throw Error(where(vfield) + " must be a non-empty list of values");
    std::map<std::string, std::string> seen;  // comparison form -> the field that wrote it
    auto claim = [&](const std::string& text, const std::string& f) {
      auto [it, fresh] = seen.insert({value_key(text), f});
      if (!fresh) throw Error(where(f) + ": \"" + text + "\" is the same value as " + it->second + " (case and spaces ignored)");
    };
    for (size_t i = 0; i < vs.size(); ++i) {
      const std::string f = vfield + "[" + std::to_string(i) + "]";
      AllowedValue v;
      if (vs[i].is_string()) {
        v.value = non_empty_string(vs[i], f, where);
      } else if (vs[i].is_object()) {
        for (auto it = vs[i].begin(); it != vs[i].end(); ++it)
          if (it.key() != "value" && it.key() != "aliases")
            throw Error(where(f + "." + it.key()) + ": unknown field (value, aliases)");
        if (!vs[i].contains("value")) throw Error(where(f) + " has no \"value\"");
        v.value = non_empty_string(vs[i]["value"], f + ".value", where);
        if (vs[i].contains("aliases")) v.aliases = string_list(vs[i]["aliases"], f + ".aliases", where);
      } else {
        throw Error(where(f) + " must be a string or {\"value\", \"aliases\"}");
      }
      claim(v.value, vs[i].is_object() ? f + ".value" : f);
      v.value = trim(v.value);
      for (size_t k = 0; k < v.aliases.size(); ++k) claim(v.aliases[k], f + ".aliases[" + std::to_string(k) + "]");
      a.allowed.push_back(v);
    }
  }
  return a;
}

static std::vector<AttributeSpec> specs_from_json(const json& j, const std::string& field, const TaskFileWhere& where) {
  std::vector<AttributeSpec> out;
  if (j.is_object() && j.contains("attributes") && j["attributes"].is_array()) {
    return specs_from_json(j["attributes"], "attributes", where);
  } else if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it)
      out.push_back({it.key(), non_empty_string(it.value(), field.empty() ? it.key() : field + "." + it.key(), where)});
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i) out.push_back(spec_from_json(j[i], field + "[" + std::to_string(i) + "]", where));
  } else {
    throw Error(where(field) + ": expected {\"attributes\": [...]}, an array of {name, question}, or {attribute: question}");
  }
  if (out.empty()) throw Error(where(field) + ": no attributes");
  std::set<std::string> names;
  for (size_t i = 0; i < out.size(); ++i)
    if (!names.insert(out[i].name).second)
      throw Error(where(field + "[" + std::to_string(i) + "]") + ": attribute \"" + out[i].name + "\" given twice");
  return out;
}

// Parses a task file's text; errors name the file and line.
static json parse_task_json(const std::string& text, const std::string& path) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    int64_t line = 1;
    for (size_t i = 0; i < e.byte && i < text.size(); ++i) line += text[i] == '\n';
    throw Error(path + ":" + std::to_string(line) + ": invalid JSON (byte " + std::to_string(e.byte) + "): " + e.what());
  }
}

std::vector<AttributeSpec> load_attribute_specs(const std::string& path) {
  std::string text = read_file(path);
  json j = parse_task_json(text, path);
  return specs_from_json(j, "", TaskFileWhere{path, json_value_lines(text)});
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
  for (const auto& a : info.attributes) {
    json e = {{"name", a.name}, {"question", a.question}};
    // Written only when set, so the default task's file is as before.
    if (!a.allowed.empty()) {
      e["values"] = json::array();
      for (const auto& v : a.allowed)
        e["values"].push_back(v.aliases.empty() ? json(v.value) : json({{"value", v.value}, {"aliases", v.aliases}}));
    }
    if (!a.article_types.empty()) e["article_types"] = a.article_types;
    j["attributes"].push_back(e);
  }
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
  std::string text = read_file(path);
  json j = parse_task_json(text, path);
  if (!j.is_object() || !j.contains("attributes")) throw Error(path + ": missing field \"attributes\"");
  TaskFileWhere where{path, json_value_lines(text)};
  if (!j["attributes"].is_array()) throw Error(where("attributes") + " must be a list of {name, question}");
  info.attributes = specs_from_json(j["attributes"], "attributes", where);
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
