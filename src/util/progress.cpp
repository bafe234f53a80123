#include "util/progress.h"

#include <unistd.h>

#include <cstdio>

namespace tailor {

bool Progress::quiet = false;

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), tty_(::isatty(2) == 1) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { finish(); }

static std::string fmt_secs(double s) {
  char b[32];
  if (s < 0 || s > 1e7) return "?";
  int t = static_cast<int>(s + 0.5);
  if (t >= 3600) std::snprintf(b, sizeof b, "%dh%02dm", t / 3600, (t / 60) % 60);
  else std::snprintf(b, sizeof b, "%dm%02ds", t / 60, t % 60);
  return b;
}

void Progress::draw(bool final_line) {
  if (quiet) return;
  auto now = std::chrono::steady_clock::now();
  double el = std::chrono::duration<double>(now - start_).count();
  double rate = el > 0 ? done_ / el : 0;
  double eta = (rate > 0 && total_ > 0) ? (total_ - done_) / rate : -1;
  char line[512];
  if (tty_) {
    int width = 24, fill = total_ > 0 ? static_cast<int>(width * done_ / total_) : 0;
    std::string bar(fill, '#');
    bar += std::string(width - fill, '.');
    std::snprintf(line, sizeof line, "\r%s [%s] %lld/%lld %.1f %s/s ETA %s %s\033[K", label_.c_str(),
                  bar.c_str(), (long long)done_, (long long)total_, rate, unit_.c_str(),
                  final_line ? fmt_secs(el).c_str() : fmt_secs(eta).c_str(), extra_.c_str());
    std::fputs(line, stderr);
    if (final_line) std::fputc('\n', stderr);
  } else {
    std::snprintf(line, sizeof line, "%s: %lld/%lld %s, %.1f/s, %s %s %s\n", label_.c_str(),
                  (long long)done_, (long long)total_, unit_.c_str(), rate,
                  final_line ? "took" : "ETA", final_line ? fmt_secs(el).c_str() : fmt_secs(eta).c_str(),
                  extra_.c_str());
    std::fputs(line, stderr);
  }
  std::fflush(stderr);
  last_draw_ = now;
}

void Progress::add(int64_t n, const std::string& extra) {
  std::lock_guard<std::mutex> lock(mu_);
  done_ += n;
  if (!extra.empty()) extra_ = extra;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if (since >= (tty_ ? 0.1 : 5.0)) draw(false);
}

void Progress::finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  finished_ = true;
  draw(true);
}

}  // namespace tailor
