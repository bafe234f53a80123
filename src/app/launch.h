// Who this process is in a data-parallel job, and `--nproc N`: the options `tailor train` and
// `tailor eval` share, and the local launcher that starts N ranks of this program.
#pragma once
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

}  // namespace tailor
