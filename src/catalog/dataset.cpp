#include "catalog/dataset.h"

#include <map>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/fs.h"

namespace tailor {

std::string pair_to_json_line(const VqaPair& p) {
  nlohmann::ordered_json j;
  j["id"] = p.id;
  j["image"] = p.image;
  j["attribute"] = p.attribute;
  j["question"] = p.question;
  j["prompt"] = p.prompt;
  j["answer"] = p.answer;
  j["value"] = p.value;
  // Catalog text is not always valid UTF-8; replace bad bytes rather than fail the whole run.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<VqaPair> read_pairs(const std::string& jsonl_path) {
  std::string text = read_file(jsonl_path);
  std::vector<VqaPair> out;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::string where = jsonl_path + ":" + std::to_string(line_no);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(where + ": invalid JSON: " + e.what());
    }
    if (!j.is_object()) throw Error(where + ": expected a JSON object");
    auto field = [&](const char* name) -> std::string {
      auto it = j.find(name);
      if (it == j.end()) throw Error(where + ": missing field \"" + name + "\"");
      if (!it->is_string()) throw Error(where + ": field \"" + name + "\" must be a string");
      return it->get<std::string>();
    };
    VqaPair p;
    p.id = field("id");
    p.image = field("image");
    p.attribute = field("attribute");
    p.question = field("question");
    p.prompt = field("prompt");
    p.answer = field("answer");
    p.value = field("value");
    if (p.id.empty()) throw Error(where + ": field \"id\" is empty");
    if (p.image.empty()) throw Error(where + ": field \"image\" is empty");
    if (p.answer.empty()) throw Error(where + ": field \"answer\" is empty");
    out.push_back(std::move(p));
  }
  return out;
}

void merge_pairs(std::vector<VqaPair>& pairs, const std::vector<VqaPair>& extra) {
  std::map<std::pair<std::string, std::string>, size_t> where;  // (id, attribute) -> index in pairs
  for (size_t i = 0; i < pairs.size(); ++i) where[{pairs[i].id, pairs[i].attribute}] = i;
  for (const auto& p : extra) {
    auto it = where.find({p.id, p.attribute});
    if (it != where.end()) {
      pairs[it->second] = p;
    } else {
      where[{p.id, p.attribute}] = pairs.size();
      pairs.push_back(p);
    }
  }
}

}  // namespace tailor
