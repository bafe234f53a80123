#include "util/torch_threads.h"

#include <ATen/Parallel.h>

#include <cstdlib>
#include <thread>

namespace tailor {

void init_torch_threads() {
  int n = static_cast<int>(std::thread::hardware_concurrency());
  if (const char* e = std::getenv("TAILOR_THREADS")) n = std::atoi(e);
  if (n < 1) n = 1;
  at::set_num_threads(n);
}

}  // namespace tailor
