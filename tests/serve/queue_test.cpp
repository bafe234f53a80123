// tailor-test: base
#include <gtest/gtest.h>

#include <thread>

#include "serve/queue.h"

namespace tailor {

using namespace std::chrono_literals;

static AnswerJob job_with(size_t questions, int max_new_tokens = 20) {
  AnswerJob j;
  auto image = std::make_shared<ImageRGB>();
  for (size_t i = 0; i < questions; ++i) j.questions.push_back({image, "q" + std::to_string(i)});
  j.options.max_new_tokens = max_new_tokens;
  return j;
}

static double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

TEST(RequestQueue, FullQueueRefusesAndClosedQueueDrains) {
  RequestQueue q(2);
  auto f1 = q.push(job_with(1), false);
  auto f2 = q.push(job_with(1), false);
  EXPECT_THROW(q.push(job_with(1), false), QueueFull);
  EXPECT_EQ(q.depth(), 2u);
  q.close();
  EXPECT_THROW(q.push(job_with(1), false), QueueClosed);
  std::vector<AnswerJob> batch = q.pop_batch(8, 0us);
  EXPECT_EQ(batch.size(), 2u);  // still drained after close
  EXPECT_TRUE(q.pop_batch(8, 0us).empty());
}

TEST(RequestQueue, LoneJobDoesNotWaitForTheTimer) {
  RequestQueue q(8);
  q.push(job_with(1), false);
  Clock::time_point t0 = Clock::now();
  std::vector<AnswerJob> batch = q.pop_batch(32, std::chrono::microseconds(2s));
  EXPECT_EQ(batch.size(), 1u);
  EXPECT_LT(seconds_since(t0), 1.0);  // far below the 2 s max wait: nothing else was on its way
}

TEST(RequestQueue, WaitsForAnnouncedArrivalThenFlushesOnMaxWait) {
  RequestQueue q(8);
  q.push(job_with(1), false);
  q.announce();  // a second request is being decoded
  std::thread late([&] {
    std::this_thread::sleep_for(50ms);
    q.push(job_with(1), true);
  });
  std::vector<AnswerJob> batch = q.pop_batch(32, std::chrono::microseconds(5s));
  late.join();
  EXPECT_EQ(batch.size(), 2u);  // waited for the announced one

  // An announced request that never comes: the batch goes after max wait.
  q.push(job_with(1), false);
  q.announce();
  Clock::time_point t0 = Clock::now();
  batch = q.pop_batch(32, std::chrono::microseconds(100ms));
  double waited = seconds_since(t0);
  EXPECT_EQ(batch.size(), 1u);
  EXPECT_GE(waited, 0.09);
  q.withdraw();
}

TEST(RequestQueue, GroupsEqualOptionsAndRespectsMaxBatch) {
  RequestQueue q(16);
  q.push(job_with(3, 20), false);
  q.push(job_with(2, 10), false);  // other options: waits for its own batch
  q.push(job_with(3, 20), false);
  q.push(job_with(3, 20), false);  // would make 9 > 8
  q.push(job_with(2, 20), false);  // fits: 3 + 3 + 2 = 8
  std::vector<AnswerJob> b1 = q.pop_batch(8, 0us);
  ASSERT_EQ(b1.size(), 3u);
  size_t n = 0;
  for (auto& j : b1) {
    EXPECT_EQ(j.options.max_new_tokens, 20);
    n += j.questions.size();
  }
  EXPECT_EQ(n, 8u);
  std::vector<AnswerJob> b2 = q.pop_batch(8, 0us);  // queue order: the 10-token job is first now
  ASSERT_EQ(b2.size(), 1u);
  EXPECT_EQ(b2[0].options.max_new_tokens, 10);
  std::vector<AnswerJob> b3 = q.pop_batch(8, 0us);
  ASSERT_EQ(b3.size(), 1u);
  EXPECT_EQ(b3[0].questions.size(), 3u);
  // A single job larger than max_batch is still taken (the batcher splits the model calls).
  q.push(job_with(12), false);
  EXPECT_EQ(q.pop_batch(8, 0us).at(0).questions.size(), 12u);
}

TEST(RequestQueue, ExpiredJobsAreFailedNotBatched) {
  RequestQueue q(4);
  AnswerJob old = job_with(1);
  old.deadline = Clock::now() - 1ms;
  auto f_old = q.push(std::move(old), false);
  auto f_new = q.push(job_with(1), false);
  std::vector<AnswerJob> batch = q.pop_batch(8, 0us);
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_THROW(f_old.get(), JobExpired);
  batch[0].answers.set_value({Answer{"ok"}});
  EXPECT_EQ(f_new.get().at(0).text, "ok");
}

}  // namespace tailor
