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

bool parse_csv_line(const std::string& line, std::vector<std::string>* fields, std::string* why, char separator) {
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
      if (i < n && line[i] != separator) {
        *why = "characters after the closing quote of field " + std::to_string(fields->size() + 1);
        return false;
      }
    } else {
      while (i < n && line[i] != separator) {
        if (line[i] == '"') {
          *why = "stray quote in unquoted field " + std::to_string(fields->size() + 1);
          return false;
        }
        cur += line[i++];
      }
    }
    fields->push_back(cur);
    if (i >= n) break;
    ++i;  // the separator
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

CsvRecordReader::CsvRecordReader(std::istream& in, char separator, bool quoted_newlines, size_t max_record_bytes)
    : in_(in), separator_(separator), quoted_newlines_(quoted_newlines), max_record_bytes_(max_record_bytes) {}

bool CsvRecordReader::read_line(std::string* line) {
  if (!std::getline(in_, *line)) return false;
  bytes_ += static_cast<int64_t>(line->size()) + (in_.eof() ? 0 : 1);
  if (++line_ == 1 && line->size() >= 3 && static_cast<uint8_t>((*line)[0]) == 0xEF &&
      static_cast<uint8_t>((*line)[1]) == 0xBB && static_cast<uint8_t>((*line)[2]) == 0xBF)
    line->erase(0, 3);
  if (!line->empty() && line->back() == '\r') line->pop_back();
  return true;
}

// A record's quote is open at the end of a line when it holds an odd number of quote characters:
// escaped quotes ("") come in pairs and so do a quoted field's opening and closing ones.
static size_t count_quotes(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '"';
  return n;
}

bool CsvRecordReader::next(std::vector<std::string>* fields, bool* ok, std::string* why) {
  std::string record;
  do {
    if (!read_line(&record)) return false;
  } while (trim(record).empty());
  record_line_ = line_;
  if (quoted_newlines_) {
    size_t quotes = count_quotes(record);
    std::string more;
    while (quotes % 2 == 1) {
      if (record.size() > max_record_bytes_) {
        *ok = false;
        *why = "a quote opened on this line is still open after " + std::to_string(max_record_bytes_) +
               " bytes (line " + std::to_string(line_) + ")";
        return true;
      }
      if (!read_line(&more)) break;  // the parser names the open quote
      quotes += count_quotes(more);
      record += '\n';
      record += more;
    }
  }
  *ok = parse_csv_line(record, fields, why, separator_);
  return true;
}

}  // namespace tailor
