// The bottom layer of the server: one thread that owns the model. It builds the Answerer (so a slow
// load runs while the HTTP listener already answers /ping with 503), then pops batches from the
// queue, makes one Answerer call per batch, and hands each job its answers — or, when the call
// throws, the same exception to every job of the batch. The model never sees HTTP.
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "infer/answerer.h"
#include "serve/metrics.h"
#include "serve/queue.h"

namespace tailor {

// Builds the model; called once, on the batcher thread, after the listener is up.
using AnswererFactory = std::function<std::unique_ptr<Answerer>()>;
// A factory that hands over an already built model (tests, embedding).
AnswererFactory factory_of(std::unique_ptr<Answerer> answerer);

struct BatcherOptions {
  size_t max_batch = 32;  // questions per model call
  std::chrono::microseconds max_wait{5000};
};

class Batcher {
 public:
  Batcher(RequestQueue& queue, Metrics& metrics, BatcherOptions options);
  ~Batcher();
  // Starts the thread: factory() first (the load), then the batching loop until the queue is
  // closed and drained.
  void start(AnswererFactory factory);
  void join();

  bool ready() const { return ready_.load(std::memory_order_acquire); }
  bool load_failed() const { return load_failed_.load(std::memory_order_acquire); }
  std::string load_error() const;
  // Valid once ready(): the model's attributes and questions, and its name.
  const TaskInfo& task() const { return task_; }
  const std::string& model_name() const { return model_name_; }

 private:
  void run(AnswererFactory factory);
  void run_batch(Answerer& answerer, std::vector<AnswerJob>& jobs);

  RequestQueue& queue_;
  Metrics& metrics_;
  BatcherOptions options_;
  std::thread thread_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> load_failed_{false};
  mutable std::mutex error_mutex_;
  std::string load_error_;
  TaskInfo task_;  // written once before ready_ is set, read-only after
  std::string model_name_;
};

}  // namespace tailor
