// A few threads pulling work from a shared counter: how many to use, and running them.
#pragma once
#include <cstdint>
#include <functional>

namespace tailor {

// `requested` > 0 is taken as is (capped at 64); 0 means one per core.
int worker_count(int requested);
// Runs `work` on `threads` threads (the caller's included) and waits for all of them.
void run_on_threads(int threads, const std::function<void()>& work);
// Calls item(i) for every i in [0, n), the threads taking indices from a shared counter. If an item
// throws, no further items start and the first exception is rethrown here once all threads are done.
void parallel_for(int64_t n, int threads, const std::function<void(int64_t)>& item);

}  // namespace tailor
