// Files: whole-file reads and crash-safe writes (temp file + fsync + rename), so a killed process
// never leaves a half-written output behind.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tailor {

std::string read_file(const std::string& path);                 // throws Error naming the path
std::vector<uint8_t> read_file_bytes(const std::string& path);
// Reads an input file from outside: it must be a regular file (not a FIFO, device or directory) of at
// most max_bytes; throws Error naming the path and what is wrong.
std::string read_input_file(const std::string& path, int64_t max_bytes);
bool file_exists(const std::string& path);
void make_dirs(const std::string& path);
// Removes a file or a directory tree if it exists (rm -rf); throws Error naming what it could not
// remove. Not std::filesystem::remove_all: pip's libtorch.so exports its own copy of that symbol,
// the dynamic linker binds tailor's calls to it, and it jumps to a null pointer on a non-empty
// directory (seen on the GPU machine with torch 2.11).
void remove_tree(const std::string& path);
// Writes `data` to `path` atomically: readers see the old file or the whole new one.
void write_file_atomic(const std::string& path, const std::string& data);
void write_file_atomic(const std::string& path, const void* data, size_t size);
// Same, from several buffers written one after another (large files without one giant copy).
struct ByteSpan { const void* data; size_t size; };
void write_file_atomic_parts(const std::string& path, const std::vector<ByteSpan>& parts);
// Appends one whole line (adds '\n') with a single write(2) and fsyncs; used for resumable JSONL.
void append_line_durable(const std::string& path, const std::string& line);
// The same without the fsync: the line survives the process being killed, not the machine losing
// power; sync_file later makes every line so far durable (the trainer's log, at each checkpoint).
void append_line(const std::string& path, const std::string& line);
void sync_file(const std::string& path);
std::string join_path(const std::string& a, const std::string& b);
// An exclusive flock(2) on `path` (created if missing, never removed: removing it would let two
// processes lock two different files), held until destroyed; the holder's pid is written into it.
// Throws Error naming the path and the holder when another process (or another FileLock in this
// one) holds it. The kernel drops the lock when the process dies, so a killed run leaves none.
class FileLock {
 public:
  explicit FileLock(const std::string& path);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};
// This process's argv, read from /proc/self/cmdline (for re-executing or spawning itself).
std::vector<std::string> own_command_line();

}  // namespace tailor
