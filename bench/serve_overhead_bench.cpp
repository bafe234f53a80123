// The server's own cost: tailor::Server with an instant model (answers without computing), driven
// by N concurrent HTTP clients posting a real catalog JPEG as JSON/base64 with one prompt. Reports
// requests/s, p50/p99 latency and the mean batch size, per client count.
//   serve_overhead_bench [seconds_per_level=3] [client counts...=1 8 32]
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <thread>

#include "serve/base64.h"
#include "serve/server.h"
#include "util/fs.h"

using namespace tailor;

class InstantAnswerer : public Answerer {
 public:
  InstantAnswerer() { task_.attributes = default_attributes(); }
  std::vector<Answer> answer(const std::vector<AnswerRequest>& requests, const GenerationOptions&) override {
    std::vector<Answer> out;
    for (const auto& r : requests) out.push_back({"Sleeve Length: " + std::to_string(r.image->width)});
    return out;
  }
  const TaskInfo& task() const override { return task_; }
  std::string name() const override { return "instant"; }

 private:
  TaskInfo task_;
};

static double metric(const std::string& text, const std::string& name) {
  size_t at = text.find("\n" + name + " ");
  return at == std::string::npos ? 0 : std::atof(text.c_str() + at + name.size() + 2);
}

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
  std::vector<int> levels;
  for (int i = 2; i < argc; ++i) levels.push_back(std::atoi(argv[i]));
  if (levels.empty()) levels = {1, 8, 32};

  std::string jpeg = read_file(std::string(TAILOR_REPO_ROOT) + "/../shared/data/fashion-products/images/10000.jpg");
  std::string body = nlohmann::json{{"image", encode_base64(reinterpret_cast<const uint8_t*>(jpeg.data()), jpeg.size())},
                                    {"prompt", "What is the sleeve length of the shirt in this picture?"}}
                         .dump();
  ServeOptions o;
  o.port = 0;
  o.http_threads = 128;
  o.queue_capacity = 1024;
  o.log_line = [](const std::string&) {};  // measure the server, not the terminal
  Server server(o, factory_of(std::make_unique<InstantAnswerer>()));
  int port = server.start();
  while (!server.ready()) std::this_thread::sleep_for(std::chrono::milliseconds(5));

  std::printf("serve_overhead_bench: instant model, JSON+base64 JPEG (%zu bytes body), %.0f s per level, %u cores\n",
              body.size(), seconds, std::thread::hardware_concurrency());
  std::printf("%-8s %10s %9s %9s %11s %7s\n", "clients", "req/s", "p50_ms", "p99_ms", "mean_batch", "errors");
  httplib::Client probe("127.0.0.1", port);
  double prev_sum = 0, prev_count = 0;
  for (int clients : levels) {
    std::atomic<bool> stop{false};
    std::atomic<int> errors{0};
    std::vector<std::vector<double>> lat(clients);
    std::vector<std::thread> threads;
    auto t0 = std::chrono::steady_clock::now();
    for (int c = 0; c < clients; ++c)
      threads.emplace_back([&, c] {
        httplib::Client cli("127.0.0.1", port);
        while (!stop) {
          auto s = std::chrono::steady_clock::now();
          auto r = cli.Post("/invocations", body, "application/json");
          if (!r || r->status != 200) ++errors;
          lat[c].push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s).count());
        }
      });
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    for (auto& t : threads) t.join();
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::vector<double> all;
    for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
    std::sort(all.begin(), all.end());
    auto pct = [&](double p) { return all.empty() ? 0.0 : all[std::min(all.size() - 1, size_t(p * all.size()))]; };
    std::string m = probe.Get("/metrics")->body;
    double sum = metric(m, "tailor_batch_size_sum"), count = metric(m, "tailor_batch_size_count");
    double mean_batch = count > prev_count ? (sum - prev_sum) / (count - prev_count) : 0;
    prev_sum = sum;
    prev_count = count;
    std::printf("%-8d %10.0f %9.2f %9.2f %11.2f %7d\n", clients, all.size() / elapsed, pct(0.5), pct(0.99), mean_batch,
                errors.load());
  }
  server.stop();
  return 0;
}
