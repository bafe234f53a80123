// Small text helpers every stage shares: trimming, comma lists, and RFC 4180 CSV fields.
#pragma once
#include <cstdint>
#include <istream>
#include <string>
#include <vector>

namespace tailor {

// Without leading and trailing spaces, tabs, CRs and LFs.
std::string trim(const std::string& s);
// ASCII letters to lower case (header names, media types); other bytes unchanged.
std::string ascii_lower(std::string s);

// The lines of a text file without their line ends (LF or CRLF); a leading UTF-8 BOM goes.
std::vector<std::string> text_lines(std::string text);

// Splits "a, b,c" → {"a","b","c"} (trimmed, empty items dropped).
std::vector<std::string> split_comma_list(const std::string& text);

// RFC 4180: splits one logical CSV line into its fields (`separator` ',' or '\t' for TSV). Returns false
// (with why) for an unterminated quote, a stray quote in an unquoted field, or characters after a
// closing quote.
bool parse_csv_line(const std::string& line, std::vector<std::string>* fields, std::string* why,
                    char separator = ',');

// Reads CSV/TSV records one at a time from a stream (memory: one record). A leading UTF-8 BOM goes,
// CRLF and LF line ends are fine, blank lines are skipped. With quoted_newlines (RFC 4180) a quoted
// field may span lines, kept as "\n"; a quote still open after max_record_bytes makes that record bad
// (and the reader goes on after it). Without, each line is one record (an open quote spoils one line).
class CsvRecordReader {
 public:
  CsvRecordReader(std::istream& in, char separator, bool quoted_newlines, size_t max_record_bytes = 1 << 20);
  // The next record: false at the end. ok=false: the record does not parse, why says how.
  bool next(std::vector<std::string>* fields, bool* ok, std::string* why);
  int64_t line_no() const { return record_line_; }  // 1-based first line of the last record
  int64_t bytes_read() const { return bytes_; }

 private:
  bool read_line(std::string* line);
  std::istream& in_;
  char separator_;
  bool quoted_newlines_;
  size_t max_record_bytes_;
  int64_t line_ = 0, record_line_ = 0, bytes_ = 0;
};
// Quotes a field for CSV output when it contains a comma, quote, CR or LF.
std::string csv_field(const std::string& s);

}  // namespace tailor
