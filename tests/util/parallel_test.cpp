// tailor-test: base
// parallel_for (util/parallel.h): every index runs exactly once on several threads, and an item's
// exception reaches the caller after which no new items start.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "util/parallel.h"

using namespace tailor;

TEST(ParallelFor, EveryIndexOnceOnSeveralThreads) {
  std::vector<std::atomic<int>> seen(1000);
  parallel_for(1000, 4, [&](int64_t i) { seen[i]++; });
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i].load(), 1) << "index " << i;
  parallel_for(0, 4, [&](int64_t) { FAIL() << "no items"; });
}

TEST(ParallelFor, FirstExceptionIsRethrownAndStopsNewItems) {
  std::atomic<int> ran{0};
  try {
    parallel_for(100, 1, [&](int64_t i) {
      ran++;
      if (i == 10) throw std::runtime_error("item 10 failed");
    });
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "item 10 failed");
  }
  EXPECT_EQ(ran.load(), 11);  // one thread: items 0..10, none after the failure
}
