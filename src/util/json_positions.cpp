#include "util/json_positions.h"

#include <vector>

namespace tailor {

namespace {

// An open object or array while scanning.
struct Open {
  bool array = false;
  int64_t index = 0;        // the current element of an array
  std::string path, key;    // the container's own path; an object's current member
  bool expect_key = false;  // an object between '{' or ',' and the next key
};

}  // namespace

std::map<std::string, int64_t> json_value_lines(const std::string& text) {
  std::map<std::string, int64_t> lines;
  std::vector<Open> stack;
  int64_t line = 1;
  auto value_path = [&]() -> std::string {
    if (stack.empty()) return "";
    const Open& o = stack.back();
    if (o.array) return o.path + "[" + std::to_string(o.index) + "]";
    return o.path.empty() ? o.key : o.path + "." + o.key;
  };
  size_t i = 0, n = text.size();
  while (i < n) {
    char c = text[i];
    if (c == '\n') {
      ++line;
      ++i;
    } else if (c == ' ' || c == '\t' || c == '\r' || c == ':') {
      ++i;
    } else if (c == '"') {
      std::string s;
      for (++i; i < n && text[i] != '"'; ++i) {
        if (text[i] == '\\' && i + 1 < n) ++i;  // an escape: its character is no quote
        s += text[i];
      }
      ++i;
      if (!stack.empty() && !stack.back().array && stack.back().expect_key) {
        stack.back().key = s;
        stack.back().expect_key = false;
      } else {
        lines.emplace(value_path(), line);
      }
    } else if (c == ',') {
      if (!stack.empty()) {
        if (stack.back().array) ++stack.back().index;
        else stack.back().expect_key = true;
      }
      ++i;
    } else if (c == '{' || c == '[') {
      std::string path = value_path();
      lines.emplace(path, line);
      Open o;
      o.array = c == '[';
      o.path = path;
      o.expect_key = c == '{';
      stack.push_back(o);
      ++i;
    } else if (c == '}' || c == ']') {
      if (!stack.empty()) stack.pop_back();
      ++i;
    } else {  // a number, true, false or null
      lines.emplace(value_path(), line);
      while (i < n && text[i] != ',' && text[i] != '}' && text[i] != ']' && text[i] != '\n' && text[i] != ' ') ++i;
    }
  }
  return lines;
}

}  // namespace tailor
