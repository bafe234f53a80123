// Small text helpers every stage shares: trimming, comma lists, and RFC 4180 CSV fields.
#pragma once
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

// RFC 4180: splits one logical CSV line into its fields. Returns false (with why) for an
// unterminated quote, a stray quote in an unquoted field, or characters after a closing quote.
bool parse_csv_line(const std::string& line, std::vector<std::string>* fields, std::string* why);
// Quotes a field for CSV output when it contains a comma, quote, CR or LF.
std::string csv_field(const std::string& s);

}  // namespace tailor
