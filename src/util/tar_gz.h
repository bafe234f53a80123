// A .tar.gz writer from the specs: POSIX ustar headers (IEEE 1003.1-1988) with pax extended headers
// (1003.1-2001) for names over 100 bytes and files of 8 GiB or more, inside one gzip member (RFC 1952,
// through zlib). Deterministic: entries in the given order, mtime 0, owner root, modes 0644 / 0755.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tailor {

struct TarEntry {
  std::string name;    // the path inside the archive ("adapter/adapter_config.json"; a directory without a trailing '/')
  std::string source;  // the file whose bytes are stored (followed if it is a link); "" for a directory
};

// Writes `entries` to `path` (a temporary file renamed into place when complete). Returns the bytes
// of file content stored. Errors name the file.
int64_t write_tar_gz(const std::string& path, const std::vector<TarEntry>& entries);

}  // namespace tailor
