// The middle layer of the server: a bounded queue of answer jobs that hands back futures.
// The HTTP adapter pushes one job per HTTP request (all its questions share one image); the batcher
// pops batches of jobs with equal generation options. Bounded in jobs, so memory stays bounded:
// a push into a full queue fails at once (the adapter answers 503) instead of growing.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "infer/answerer.h"
#include "util/error.h"

namespace tailor {

using Clock = std::chrono::steady_clock;

struct AnswerJob {
  std::vector<AnswerRequest> questions;  // one per question; all hold the same image pointer
  GenerationOptions options;
  Clock::time_point enqueued;            // set by push
  Clock::time_point deadline;            // after this the client has gone (timeout): skip the work
  std::promise<std::vector<Answer>> answers;  // one per question, in order
};

struct QueueFull : Error {
  using Error::Error;
};
struct QueueClosed : Error {
  using Error::Error;
};
struct JobExpired : Error {
  using Error::Error;
};

bool same_options(const GenerationOptions& a, const GenerationOptions& b);

class RequestQueue {
 public:
  explicit RequestQueue(size_t capacity) : capacity_(capacity) {}

  // Enqueues the job and hands back its future. Throws QueueFull (capacity jobs waiting) or
  // QueueClosed (shutting down). Also ends one announce() of the caller.
  std::future<std::vector<Answer>> push(AnswerJob job, bool was_announced);

  // A request has arrived and will be pushed soon (its image is being decoded): the batcher waits
  // for it (up to max wait) instead of flushing a part-filled batch. Each announce() is ended by a
  // push(job, true) or a withdraw().
  void announce();
  void withdraw();

  // Batcher side. Blocks until a job is queued, then gathers jobs whose options equal the first
  // one's until they hold max_questions questions, max_wait has passed since the first was queued,
  // or no announced request is still on its way (so a lone request never waits for the timer).
  // The first job is always taken, even when it alone holds more than max_questions. Jobs whose
  // deadline has passed are failed with JobExpired and dropped. Returns empty once closed and drained.
  std::vector<AnswerJob> pop_batch(size_t max_questions, std::chrono::microseconds max_wait);

  // No more pushes; pop_batch still drains what is queued.
  void close();
  size_t depth() const;
  size_t capacity() const { return capacity_; }

 private:
  void drop_expired_locked(Clock::time_point now);

  const size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<AnswerJob> jobs_;
  size_t arriving_ = 0;
  bool closed_ = false;
};

// Ends an announce() unless the request was pushed (release()) first; for early returns and throws.
class Arrival {
 public:
  explicit Arrival(RequestQueue& queue) : queue_(&queue) { queue_->announce(); }
  ~Arrival() {
    if (queue_) queue_->withdraw();
  }
  Arrival(const Arrival&) = delete;
  Arrival& operator=(const Arrival&) = delete;
  std::future<std::vector<Answer>> push(AnswerJob job) {
    RequestQueue* q = queue_;
    queue_ = nullptr;  // push ends the announcement, also when it throws
    return q->push(std::move(job), true);
  }

 private:
  RequestQueue* queue_;
};

}  // namespace tailor
