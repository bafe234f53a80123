#include "util/text.h"

#include <cstdint>

namespace tailor {

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return "";
  size_t b = s.find_last_not_of(" \t\r\n");
  return s.substr(a, b - a + 1);
}

std::string ascii_lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

std::vector<std::string> split_comma_list(const std::string& text) {
  std::vector<std::string> out;
  std::string t = trim(text);
  if (t.empty()) return out;
  size_t pos = 0;
  while (pos <= t.size()) {
    size_t c = t.find(',', pos);
    if (c == std::string::npos) c = t.size();
    std::string one = trim(t.substr(pos, c - pos));
    if (!one.empty()) out.push_back(one);
    pos = c + 1;
  }
  return out;
}

bool parse_csv_line(const std::string& line, std::vector<std::string>* fields, std::string* why) {
  fields->clear();
  std::string cur;
  size_t i = 0, n = line.size();
  while (true) {
    cur.clear();
    if (i < n && line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < n) {
        if (line[i] == '"') {
          if (i + 1 < n && line[i + 1] == '"') {
            cur += '"';
            i += 2;
          } else {
            closed = true;
            ++i;
            break;
          }
        } else {
          cur += line[i++];
        }
      }
      if (!closed) {
        *why = "unterminated quoted field " + std::to_string(fields->size() + 1);
        return false;
      }
      if (i < n && line[i] != ',') {
        *why = "characters after the closing quote of field " + std::to_string(fields->size() + 1);
        return false;
      }
    } else {
      while (i < n && line[i] != ',') {
        if (line[i] == '"') {
          *why = "stray quote in unquoted field " + std::to_string(fields->size() + 1);
          return false;
        }
        cur += line[i++];
      }
    }
    fields->push_back(cur);
    if (i >= n) break;
    ++i;  // the comma
  }
  return true;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::vector<std::string> text_lines(std::string text) {
  if (text.size() >= 3 && static_cast<uint8_t>(text[0]) == 0xEF && static_cast<uint8_t>(text[1]) == 0xBB &&
      static_cast<uint8_t>(text[2]) == 0xBF)
    text.erase(0, 3);
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    pos = end + 1;
  }
  return lines;
}

}  // namespace tailor
