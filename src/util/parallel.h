// A few threads pulling work from a shared counter: how many to use, and running them.
#pragma once
#include <functional>

namespace tailor {

// `requested` > 0 is taken as is (capped at 64); 0 means one per core.
int worker_count(int requested);
// Runs `work` on `threads` threads (the caller's included) and waits for all of them.
void run_on_threads(int threads, const std::function<void()>& work);

}  // namespace tailor
