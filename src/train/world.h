// Data-parallel training, the parts that need no libtorch: who this process is in the job (the
// torchrun environment: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and how each optimizer
// step's pairs are split across ranks. (`--nproc N`, which starts N local ranks: app/launch.h.)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tailor {

struct WorldInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  double timeout_s = 300;          // rendezvous and every collective; a dead or stuck rank ends the job after it
  int64_t bucket_bytes = 25 << 20; // gradient all-reduce bucket size (as DDP's bucket_cap_mb = 25)
  bool distributed() const { return world_size > 1; }
  bool is_main() const { return rank == 0; }
};

// The world from the environment: one process (rank 0 of 1) when WORLD_SIZE is unset. Malformed or
// inconsistent values are an Error naming the variable. TAILOR_DIST_TIMEOUT (seconds) and
// TAILOR_DIST_BUCKET_KB override the defaults above.
WorldInfo world_from_env();

// [begin, end) of a range of pairs.
struct Span {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

// Rank `rank`'s contiguous part of `all`: parts in rank order, sizes differing by at most one, together
// exactly `all`. Contiguous, so the questions of one photo (adjacent in the epoch order) stay together.
Span rank_part(Span all, int rank, int world_size);

// One optimizer step starting at position `pos` of an epoch of `n` pairs: the global micro-batches
// (grad_accum of them, of batch_size pairs each, fewer at the epoch's end), exactly what a single
// process consumes for that step. Each rank trains on rank_part() of each of them, so a step sees the
// same pairs whatever the world size.
std::vector<Span> step_batches(int64_t pos, int64_t n, int64_t batch_size, int64_t grad_accum);

// A free TCP port on 127.0.0.1 (bound once with port 0, then released).
int free_local_port();

}  // namespace tailor
