// Server metrics, rendered in Prometheus text exposition format (version 0.0.4) for GET /metrics.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace tailor {

struct Histogram {
  std::vector<double> bounds;    // upper bounds of the buckets, ascending; +Inf is implicit
  std::vector<uint64_t> counts;  // per bucket (not cumulative), bounds.size() + 1 entries
  double sum = 0;
  uint64_t count = 0;

  explicit Histogram(std::vector<double> upper_bounds = {});
  void observe(double v);
};

class Metrics {
 public:
  Metrics();
  // One finished HTTP request. Routes outside the known set are counted as "other".
  void count_request(const std::string& route, int status, double seconds);
  // One model call: how many questions it answered, how long it took, whether it failed.
  void count_batch(size_t questions, double seconds, bool failed);
  // HTTP requests received and not yet answered.
  void request_started() { in_flight_.fetch_add(1, std::memory_order_relaxed); }
  void request_finished() { in_flight_.fetch_sub(1, std::memory_order_relaxed); }
  // queue_depth and ready are read live by the caller when rendering.
  std::string render(size_t queue_depth, size_t queue_capacity, bool model_ready) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // (route, status) -> count
  std::map<std::string, Histogram> latency_;                   // route -> seconds
  Histogram batch_size_;
  Histogram batch_seconds_;
  uint64_t batch_failures_ = 0;
  std::atomic<int64_t> in_flight_{0};
};

}  // namespace tailor
