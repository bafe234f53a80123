#include "util/torch_threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <cstdlib>
#include <thread>

namespace tailor {

void init_torch_threads() {
  int n = static_cast<int>(std::thread::hardware_concurrency());
  if (const char* e = std::getenv("TAILOR_THREADS")) n = std::atoi(e);
  if (n < 1) n = 1;
  at::set_num_threads(n);
  // libtorch parallelises with OpenMP over its own threads; an OpenBLAS that also starts one thread
  // per core inside each of them oversubscribes the cores (measured: 6-10x slower training of the
  // tiny model on 2 cores). Keep BLAS single-threaded within libtorch's threads.
  using SetThreads = void (*)(int);
  if (auto f = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(1);
}

}  // namespace tailor
