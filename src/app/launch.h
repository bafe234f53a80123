// Who this process is in a data-parallel job, and `--nproc N`: the options `tailor train` and
// `tailor eval` share, and the local launcher that starts N ranks of this program.
#pragma once
#include <string>
#include <vector>

#include "train/world.h"

namespace tailor {

struct DistributedOptions {
  int nproc = 0;          // > 1: start this many local ranks (else the torchrun variables say who we are)
  double timeout_s = 0;   // > 0: seconds to wait for the other ranks (else WorldInfo's default)
};

// The world from the environment (train/world.h), with the timeout of `o`.
WorldInfo world_of(const DistributedOptions& o);

// With --nproc N > 1: starts N local ranks of this program with the same command line (less
// --nproc), waits for them and returns true; the caller has nothing left to do. Otherwise false.
// Throws Error when this process is already a rank of a job.
bool launched_local_ranks(const DistributedOptions& o, const WorldInfo& world);

// `args` without `--nproc N` / `--nproc=N`.
std::vector<std::string> without_nproc(const std::vector<std::string>& args);

// Runs `nproc` copies of this program (/proc/self/exe) with `args` (args[0] is the program name) and the
// torchrun variables set (MASTER_ADDR 127.0.0.1, MASTER_PORT from the environment or a free port).
// Output goes straight to this process's stdout/stderr. When one copy fails (non-zero exit or a
// signal), the others get SIGTERM, then SIGKILL after `grace_s`; SIGINT/SIGTERM to this process are
// passed on. Returns 0 when all succeed; otherwise throws Error naming the first rank that failed.
void launch_local_workers(int nproc, const std::vector<std::string>& args, double grace_s = 10);

}  // namespace tailor
