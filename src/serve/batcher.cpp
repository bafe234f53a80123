#include "serve/batcher.h"

#include <cstdio>

namespace tailor {

AnswererFactory factory_of(std::unique_ptr<Answerer> answerer) {
  // std::function must be copyable: hold the model in a shared slot and move it out on the call.
  auto slot = std::make_shared<std::unique_ptr<Answerer>>(std::move(answerer));
  return [slot]() -> std::unique_ptr<Answerer> {
    if (!*slot) throw Error("factory_of: the model was already handed over");
    return std::move(*slot);
  };
}

Batcher::Batcher(RequestQueue& queue, Metrics& metrics, BatcherOptions options)
    : queue_(queue), metrics_(metrics), options_(options) {
  if (options_.max_batch == 0) options_.max_batch = 1;
}

Batcher::~Batcher() { join(); }

void Batcher::start(AnswererFactory factory) {
  thread_ = std::thread([this, f = std::move(factory)]() mutable { run(std::move(f)); });
}

void Batcher::join() {
  if (thread_.joinable()) thread_.join();
}

std::string Batcher::load_error() const {
  std::lock_guard<std::mutex> lock(error_mutex_);
  return load_error_;
}

void Batcher::run(AnswererFactory factory) {
  std::unique_ptr<Answerer> answerer;
  std::string error;
  try {
    answerer = factory();
    if (!answerer) throw Error("the model factory returned no model");
    task_ = answerer->task();
    model_name_ = answerer->name();
    if (task_.attributes.empty()) throw Error("the model " + model_name_ + " has no attributes to ask");
  } catch (const std::exception& e) {
    error = e.what();
  } catch (...) {
    error = "unknown error while loading the model";
  }
  if (!error.empty()) {
    {
      std::lock_guard<std::mutex> lock(error_mutex_);
      load_error_ = error;
    }
    load_failed_.store(true, std::memory_order_release);
    // Nothing is pushed before ready(), but fail whatever might be queued and drain until closed.
    for (;;) {
      std::vector<AnswerJob> jobs = queue_.pop_batch(options_.max_batch, std::chrono::microseconds(0));
      if (jobs.empty()) return;
      for (AnswerJob& j : jobs) j.answers.set_exception(std::make_exception_ptr(Error("model not loaded")));
    }
  }
  ready_.store(true, std::memory_order_release);

  for (;;) {
    std::vector<AnswerJob> jobs = queue_.pop_batch(options_.max_batch, options_.max_wait);
    if (jobs.empty()) break;  // closed and drained
    run_batch(*answerer, jobs);
  }
}

void Batcher::run_batch(Answerer& answerer, std::vector<AnswerJob>& jobs) {
  // All jobs of a batch have equal options (the queue groups them).
  const GenerationOptions options = jobs.front().options;
  std::vector<AnswerRequest> flat;
  for (const AnswerJob& j : jobs) flat.insert(flat.end(), j.questions.begin(), j.questions.end());

  std::vector<Answer> answers;
  answers.reserve(flat.size());
  try {
    // Normally one call; more only when a single job holds more questions than max_batch.
    for (size_t start = 0; start < flat.size(); start += options_.max_batch) {
      size_t end = std::min(flat.size(), start + options_.max_batch);
      std::vector<AnswerRequest> part(flat.begin() + start, flat.begin() + end);
      Clock::time_point t0 = Clock::now();
      std::vector<Answer> out;
      try {
        out = answerer.answer(part, options);
        if (out.size() != part.size())
          throw Error("the model returned " + std::to_string(out.size()) + " answers for " +
                      std::to_string(part.size()) + " questions");
      } catch (...) {
        metrics_.count_batch(part.size(), std::chrono::duration<double>(Clock::now() - t0).count(), true);
        throw;
      }
      metrics_.count_batch(part.size(), std::chrono::duration<double>(Clock::now() - t0).count(), false);
      for (Answer& a : out) answers.push_back(std::move(a));
    }
  } catch (...) {
    std::exception_ptr failure = std::current_exception();
    for (AnswerJob& j : jobs) j.answers.set_exception(failure);
    return;
  }

  size_t at = 0;
  for (AnswerJob& j : jobs) {
    std::vector<Answer> mine(answers.begin() + at, answers.begin() + at + j.questions.size());
    at += j.questions.size();
    j.answers.set_value(std::move(mine));
  }
}

}  // namespace tailor
