// One error type for the library: a message that says what failed and where (file, field, byte).
// The CLI catches it, prints one line and exits non-zero.
#pragma once
#include <stdexcept>
#include <string>

namespace tailor {

struct Error : std::runtime_error {
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace tailor
