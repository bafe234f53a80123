// Progress for long work: a one-line bar (count, rate, ETA, extra text) redrawn in place when stderr
// is a terminal, plain periodic lines otherwise (logs, CI).
#pragma once
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace tailor {

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit = "items");
  ~Progress();
  void add(int64_t n = 1, const std::string& extra = "");  // thread-safe
  void finish();
  static bool quiet;  // tests switch output off

 private:
  void draw(bool final_line);
  std::string label_, unit_, extra_;
  int64_t total_, done_ = 0;
  bool tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
  std::mutex mu_;
};

}  // namespace tailor
