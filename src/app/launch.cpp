#include "app/launch.h"

#include "util/error.h"
#include "util/fs.h"

namespace tailor {

WorldInfo world_of(const DistributedOptions& o) {
  WorldInfo world = world_from_env();
  if (o.timeout_s > 0) world.timeout_s = o.timeout_s;
  return world;
}

bool launched_local_ranks(const DistributedOptions& o, const WorldInfo& world) {
  if (o.nproc <= 1) return false;
  if (world.distributed())
    throw Error("--nproc: this process is already rank " + std::to_string(world.rank) +
                " of a job (WORLD_SIZE is set); drop --nproc");
  launch_local_workers(o.nproc, without_nproc(own_command_line()));
  return true;
}

}  // namespace tailor
