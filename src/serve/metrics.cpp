#include "serve/metrics.h"

#include <cstdio>

namespace tailor {

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds(std::move(upper_bounds)), counts(bounds.size() + 1, 0) {}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds.size() && v > bounds[i]) ++i;
  ++counts[i];
  sum += v;
  ++count;
}

static const std::vector<double> kLatencyBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                   1,     2.5,  5,     10,   30,  60};

Metrics::Metrics()
    : batch_size_({1, 2, 4, 8, 16, 32, 64, 128, 256}), batch_seconds_(kLatencyBounds) {}

static std::string known_route(const std::string& route) {
  if (route == "/ping" || route == "/invocations" || route == "/describe" || route == "/metrics") return route;
  return "other";
}

void Metrics::count_request(const std::string& route, int status, double seconds) {
  std::string r = known_route(route);
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{r, status}];
  auto it = latency_.find(r);
  if (it == latency_.end()) it = latency_.emplace(r, Histogram(kLatencyBounds)).first;
  it->second.observe(seconds);
}

void Metrics::count_batch(size_t questions, double seconds, bool failed) {
  std::lock_guard<std::mutex> lock(mutex_);
  batch_size_.observe(static_cast<double>(questions));
  batch_seconds_.observe(seconds);
  if (failed) ++batch_failures_;
}

static std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

static void render_histogram(std::string& out, const std::string& name, const std::string& labels,
                             const Histogram& h) {
  std::string sep = labels.empty() ? "" : ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.bounds.size(); ++i) {
    cumulative += h.counts[i];
    out += name + "_bucket{" + labels + sep + "le=\"" + number(h.bounds[i]) + "\"} " +
           std::to_string(cumulative) + "\n";
  }
  cumulative += h.counts.back();
  out += name + "_bucket{" + labels + sep + "le=\"+Inf\"} " + std::to_string(cumulative) + "\n";
  std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out += name + "_sum" + braces + " " + number(h.sum) + "\n";
  out += name + "_count" + braces + " " + std::to_string(h.count) + "\n";
}

std::string Metrics::render(size_t queue_depth, size_t queue_capacity, bool model_ready) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  out += "# HELP tailor_requests_total HTTP requests served, by route and status code.\n";
  out += "# TYPE tailor_requests_total counter\n";
  for (const auto& [key, n] : requests_)
    out += "tailor_requests_total{route=\"" + key.first + "\",status=\"" + std::to_string(key.second) + "\"} " +
           std::to_string(n) + "\n";
  out += "# HELP tailor_request_duration_seconds Time from request headers read to response ready.\n";
  out += "# TYPE tailor_request_duration_seconds histogram\n";
  for (const auto& [route, h] : latency_)
    render_histogram(out, "tailor_request_duration_seconds", "route=\"" + route + "\"", h);
  out += "# HELP tailor_batch_size Questions answered per model call.\n";
  out += "# TYPE tailor_batch_size histogram\n";
  render_histogram(out, "tailor_batch_size", "", batch_size_);
  out += "# HELP tailor_batch_duration_seconds Time of one model call.\n";
  out += "# TYPE tailor_batch_duration_seconds histogram\n";
  render_histogram(out, "tailor_batch_duration_seconds", "", batch_seconds_);
  out += "# HELP tailor_batch_failures_total Model calls that raised an error (every request in them failed).\n";
  out += "# TYPE tailor_batch_failures_total counter\n";
  out += "tailor_batch_failures_total " + std::to_string(batch_failures_) + "\n";
  out += "# HELP tailor_requests_in_flight HTTP requests received and not yet answered (this one included).\n";
  out += "# TYPE tailor_requests_in_flight gauge\n";
  out += "tailor_requests_in_flight " + std::to_string(in_flight_.load(std::memory_order_relaxed)) + "\n";
  out += "# HELP tailor_queue_depth Requests waiting for the model.\n";
  out += "# TYPE tailor_queue_depth gauge\n";
  out += "tailor_queue_depth " + std::to_string(queue_depth) + "\n";
  out += "# HELP tailor_queue_capacity Requests the queue holds before answering 503.\n";
  out += "# TYPE tailor_queue_capacity gauge\n";
  out += "tailor_queue_capacity " + std::to_string(queue_capacity) + "\n";
  out += "# HELP tailor_model_ready 1 once the model is loaded.\n";
  out += "# TYPE tailor_model_ready gauge\n";
  out += std::string("tailor_model_ready ") + (model_ready ? "1" : "0") + "\n";
  return out;
}

}  // namespace tailor
