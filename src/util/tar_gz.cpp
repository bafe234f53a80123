#include "util/tar_gz.h"

#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "util/error.h"

namespace tailor {

namespace {

constexpr size_t kBlock = 512;

// The gzip stream into a file.
class GzipFile {
 public:
  explicit GzipFile(const std::string& path) : path_(path), out_(path, std::ios::binary | std::ios::trunc) {
    if (!out_) throw Error("cannot create " + path + ": " + std::strerror(errno));
    std::memset(&z_, 0, sizeof z_);
    // windowBits 15 + 16: a gzip header and trailer around the deflate stream.
    if (deflateInit2(&z_, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      throw Error("cannot start zlib's compressor for " + path);
  }
  ~GzipFile() { deflateEnd(&z_); }
  void write(const char* p, size_t n) { pump(p, n, Z_NO_FLUSH); }
  void finish() {
    pump(nullptr, 0, Z_FINISH);
    out_.flush();
    if (!out_) throw Error("cannot write " + path_ + ": " + std::strerror(errno));
  }

 private:
  void pump(const char* p, size_t n, int flush) {
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(p));
    z_.avail_in = static_cast<uInt>(n);
    char buf[1 << 16];
    int rc;
    do {
      z_.next_out = reinterpret_cast<Bytef*>(buf);
      z_.avail_out = sizeof buf;
      rc = deflate(&z_, flush);
      if (rc == Z_STREAM_ERROR) throw Error("zlib failed while writing " + path_);
      out_.write(buf, static_cast<std::streamsize>(sizeof buf - z_.avail_out));
      if (!out_) throw Error("cannot write " + path_ + ": " + std::strerror(errno));
    } while (z_.avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
  }
  std::string path_;
  std::ofstream out_;
  z_stream z_;
};

// An octal field of `width` bytes: digits, then NUL.
void octal(char* field, size_t width, uint64_t value) {
  std::snprintf(field, width, "%0*llo", static_cast<int>(width - 1), static_cast<unsigned long long>(value));
}

void header(GzipFile& gz, const std::string& name, char type, uint64_t size) {
  char h[kBlock];
  std::memset(h, 0, sizeof h);
  std::memcpy(h, name.data(), std::min<size_t>(name.size(), 100));  // name[100]
  octal(h + 100, 8, type == '5' ? 0755 : 0644);                        // mode
  octal(h + 108, 8, 0);                                               // uid
  octal(h + 116, 8, 0);                                               // gid
  octal(h + 124, 12, size < (1ull << 33) ? size : 0);                 // size (a pax record beyond 8 GiB)
  octal(h + 136, 12, 0);                                              // mtime
  h[156] = type;                                                      // typeflag
  std::memcpy(h + 257, "ustar", 6);                                   // magic "ustar\0"
  std::memcpy(h + 263, "00", 2);                                      // version
  std::memcpy(h + 265, "root", 4);                                    // uname
  std::memcpy(h + 297, "root", 4);                                    // gname
  // The checksum: the sum of the header's bytes with its own field as eight spaces.
  std::memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(h + 148, 8, "%06o", sum);  // six digits, NUL, and the space left in place
  gz.write(h, sizeof h);
}

void pad(GzipFile& gz, uint64_t size) {
  static const char zeros[kBlock] = {};
  if (size % kBlock) gz.write(zeros, kBlock - size % kBlock);
}

// One pax record: "<length> <key>=<value>\n", the length counting itself.
std::string pax_record(const std::string& key, const std::string& value) {
  size_t body = 1 + key.size() + 1 + value.size() + 1;  // " key=value\n"
  size_t len = body + 1;
  while (std::to_string(len).size() + body != len) ++len;
  return std::to_string(len) + " " + key + "=" + value + "\n";
}

}  // namespace

int64_t write_tar_gz(const std::string& path, const std::vector<TarEntry>& entries) {
  namespace fs = std::filesystem;
  const std::string tmp = path + ".tmp";
  int64_t stored = 0;
  {
    GzipFile gz(tmp);
    std::vector<char> buf(1 << 20);
    for (const TarEntry& e : entries) {
      const bool dir = e.source.empty();
      const std::string name = dir ? e.name + "/" : e.name;
      uint64_t size = 0;
      if (!dir) {
        std::error_code ec;
        size = fs::file_size(e.source, ec);  // follows links
        if (ec) throw Error("cannot read " + e.source + ": " + ec.message());
      }
      std::string pax;
      if (name.size() > 100) pax += pax_record("path", name);
      if (size >= (1ull << 33)) pax += pax_record("size", std::to_string(size));
      if (!pax.empty()) {
        header(gz, "PaxHeaders/" + name.substr(0, 80), 'x', pax.size());
        gz.write(pax.data(), pax.size());
        pad(gz, pax.size());
      }
      header(gz, name, dir ? '5' : '0', size);
      if (dir) continue;
      std::ifstream in(e.source, std::ios::binary);
      if (!in) throw Error("cannot open " + e.source + ": " + std::strerror(errno));
      uint64_t left = size;
      while (left > 0) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
        if (!in.read(buf.data(), static_cast<std::streamsize>(n)))
          throw Error("cannot read " + e.source + " (it changed while being packaged?)");
        gz.write(buf.data(), n);
        left -= n;
      }
      pad(gz, size);
      stored += static_cast<int64_t>(size);
    }
    static const char end[2 * kBlock] = {};  // two zero blocks end the archive
    gz.write(end, sizeof end);
    gz.finish();
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw Error("cannot rename " + tmp + " to " + path + ": " + ec.message());
  return stored;
}

}  // namespace tailor
