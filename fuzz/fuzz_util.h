// Shared by the fuzz targets: parsers that take a path get the input as a file.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace tailor::fuzz {

// Writes the input to one file per process (in $TMPDIR or /tmp) and returns its path.
inline std::string input_file(const uint8_t* data, size_t size, const char* name) {
  const char* dir = std::getenv("TMPDIR");
  std::string path = std::string(dir && *dir ? dir : "/tmp") + "/tailor_fuzz_" + std::to_string(::getpid()) + "_" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  return path;
}

}  // namespace tailor::fuzz
