#include "serve/queue.h"

namespace tailor {

bool same_options(const GenerationOptions& a, const GenerationOptions& b) {
  return a.max_new_tokens == b.max_new_tokens && a.min_new_tokens == b.min_new_tokens &&
         a.num_beams == b.num_beams && a.length_penalty == b.length_penalty && a.do_sample == b.do_sample &&
         a.temperature == b.temperature && a.top_p == b.top_p && a.seed == b.seed;
}

std::future<std::vector<Answer>> RequestQueue::push(AnswerJob job, bool was_announced) {
  std::future<std::vector<Answer>> future = job.answers.get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (was_announced && arriving_ > 0) --arriving_;
    if (closed_) {
      changed_.notify_all();
      throw QueueClosed("the server is shutting down");
    }
    if (jobs_.size() >= capacity_) {
      changed_.notify_all();
      throw QueueFull("the request queue is full (" + std::to_string(capacity_) + " requests waiting)");
    }
    job.enqueued = Clock::now();
    jobs_.push_back(std::move(job));
  }
  changed_.notify_all();
  return future;
}

void RequestQueue::announce() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++arriving_;
}

void RequestQueue::withdraw() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (arriving_ > 0) --arriving_;
  }
  changed_.notify_all();
}

void RequestQueue::close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  changed_.notify_all();
}

size_t RequestQueue::depth() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return jobs_.size();
}

void RequestQueue::drop_expired_locked(Clock::time_point now) {
  for (size_t i = 0; i < jobs_.size();) {
    if (jobs_[i].deadline != Clock::time_point{} && jobs_[i].deadline <= now) {
      jobs_[i].answers.set_exception(std::make_exception_ptr(JobExpired("timed out in the queue")));
      jobs_.erase(jobs_.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
}

std::vector<AnswerJob> RequestQueue::pop_batch(size_t max_questions, std::chrono::microseconds max_wait) {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] { return !jobs_.empty() || closed_; });
    drop_expired_locked(Clock::now());
    if (jobs_.empty()) {
      if (closed_) return {};
      continue;
    }

    // Wait for company while it is worth it: more questions may fill the batch.
    const Clock::time_point flush_at = jobs_.front().enqueued + max_wait;
    for (;;) {
      size_t questions = 0;
      for (const AnswerJob& j : jobs_)
        if (same_options(j.options, jobs_.front().options)) questions += j.questions.size();
      if (questions >= max_questions || arriving_ == 0 || closed_ || Clock::now() >= flush_at) break;
      changed_.wait_until(lock, flush_at);
    }
    drop_expired_locked(Clock::now());
    if (jobs_.empty()) continue;  // all expired while waiting

    // Take the first job, then every later job with equal options that still fits.
    std::vector<AnswerJob> batch;
    GenerationOptions options = jobs_.front().options;
    size_t questions = 0;
    for (size_t i = 0; i < jobs_.size();) {
      bool fits = batch.empty() || questions + jobs_[i].questions.size() <= max_questions;
      if (fits && same_options(jobs_[i].options, options)) {
        questions += jobs_[i].questions.size();
        batch.push_back(std::move(jobs_[i]));
        jobs_.erase(jobs_.begin() + static_cast<std::ptrdiff_t>(i));
        if (questions >= max_questions) break;
      } else {
        ++i;
      }
    }
    return batch;
  }
}

}  // namespace tailor
