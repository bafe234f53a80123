#include "util/parallel.h"

#include <algorithm>
#include <thread>
#include <vector>

namespace tailor {

int worker_count(int requested) {
  int n = requested > 0 ? requested : static_cast<int>(std::thread::hardware_concurrency());
  return std::max(1, std::min(n, 64));
}

void run_on_threads(int threads, const std::function<void()>& work) {
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
}

}  // namespace tailor
