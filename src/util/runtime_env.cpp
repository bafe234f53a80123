#include "util/runtime_env.h"

#include "util/fs.h"

#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace tailor {

void ensure_runtime_env() {
  if (std::getenv("TAILOR_RUNTIME_ENV")) return;
  setenv("TAILOR_RUNTIME_ENV", "1", 1);
  bool changed = false;
  if (!std::getenv("OMP_WAIT_POLICY")) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    changed = true;
  }
  if (!std::getenv("OPENBLAS_CORETYPE")) {
    __builtin_cpu_init();
    const char* core = nullptr;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
      core = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
      core = "Haswell";
    if (core) {
      setenv("OPENBLAS_CORETYPE", core, 1);
      changed = true;
    }
  }
  if (!changed) return;
  std::vector<std::string> args;
  try {
    args = own_command_line();
  } catch (...) {
    return;
  }
  if (args.empty()) return;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv("/proc/self/exe", argv.data());
  // execv failed: carry on with the libraries as they are.
}

}  // namespace tailor
