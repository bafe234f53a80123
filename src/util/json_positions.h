// Where each value of a JSON text starts, so that errors about a parsed document (nlohmann keeps no
// positions) can name the line: task files, spec files.
#pragma once
#include <cstdint>
#include <map>
#include <string>

namespace tailor {

// Field path -> 1-based line of the value's first character, for every value of a well-formed JSON
// text. Paths: "" the top, "attributes" a member, "attributes[2].values[0]" an element of a list
// ("a.b" for nested members). Meant for text that json::parse accepted; on other text the lines are
// whatever the scan found.
std::map<std::string, int64_t> json_value_lines(const std::string& text);

}  // namespace tailor
