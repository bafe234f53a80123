#include "train/world.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "util/error.h"
#include "util/fs.h"

namespace tailor {

namespace {

// An integer environment variable, or `fallback` when unset. Anything but a whole number is an Error.
int64_t env_int(const char* name, int64_t fallback, bool* present = nullptr) {
  const char* v = std::getenv(name);
  if (present) *present = v && *v;
  if (!v || !*v) return fallback;
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(v, &end, 10);
  if (errno != 0 || *end != '\0') throw Error(std::string("environment variable ") + name + "=\"" + v + "\" is not a whole number");
  return x;
}

}  // namespace

WorldInfo world_from_env() {
  WorldInfo w;
  bool has_world = false, has_rank = false;
  w.world_size = static_cast<int>(env_int("WORLD_SIZE", 1, &has_world));
  w.rank = static_cast<int>(env_int("RANK", 0, &has_rank));
  if (w.world_size < 1) throw Error("WORLD_SIZE=" + std::to_string(w.world_size) + ": must be >= 1");
  if (has_world && w.world_size > 1 && !has_rank) throw Error("WORLD_SIZE is set but RANK is not (torchrun sets both)");
  if (w.rank < 0 || w.rank >= w.world_size)
    throw Error("RANK=" + std::to_string(w.rank) + " is outside 0.." + std::to_string(w.world_size - 1) +
                " (WORLD_SIZE=" + std::to_string(w.world_size) + ")");
  w.local_rank = static_cast<int>(env_int("LOCAL_RANK", w.rank, nullptr));
  w.local_world_size = static_cast<int>(env_int("LOCAL_WORLD_SIZE", w.world_size, nullptr));
  if (w.local_rank < 0) throw Error("LOCAL_RANK=" + std::to_string(w.local_rank) + ": must be >= 0");
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) w.master_addr = a;
  bool has_port = false;
  int64_t port = env_int("MASTER_PORT", w.master_port, &has_port);
  if (port < 1 || port > 65535) throw Error("MASTER_PORT=" + std::to_string(port) + ": not a TCP port");
  w.master_port = static_cast<int>(port);
  if (w.world_size > 1 && (!has_port || !std::getenv("MASTER_ADDR")))
    throw Error("WORLD_SIZE=" + std::to_string(w.world_size) + " needs MASTER_ADDR and MASTER_PORT (rank 0's address)");
  int64_t t = env_int("TAILOR_DIST_TIMEOUT", static_cast<int64_t>(w.timeout_s), nullptr);
  if (t < 1) throw Error("TAILOR_DIST_TIMEOUT must be >= 1 second");
  w.timeout_s = static_cast<double>(t);
  int64_t kb = env_int("TAILOR_DIST_BUCKET_KB", w.bucket_bytes / 1024, nullptr);
  if (kb < 1) throw Error("TAILOR_DIST_BUCKET_KB must be >= 1");
  w.bucket_bytes = kb * 1024;
  return w;
}

Span rank_part(Span all, int rank, int world_size) {
  int64_t n = all.size(), W = world_size, r = rank;
  // The first n % W ranks get one more.
  int64_t base = n / W, extra = n % W;
  int64_t begin = all.begin + r * base + std::min(r, extra);
  int64_t size = base + (r < extra ? 1 : 0);
  return {begin, begin + size};
}

std::vector<Span> step_batches(int64_t pos, int64_t n, int64_t batch_size, int64_t grad_accum) {
  std::vector<Span> out;
  for (int64_t a = 0; a < grad_accum && pos < n; ++a) {
    int64_t end = std::min(n, pos + batch_size);
    out.push_back({pos, end});
    pos = end;
  }
  return out;
}

int free_local_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error(std::string("free_local_port: socket: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    int e = errno;
    ::close(fd);
    throw Error(std::string("free_local_port: bind 127.0.0.1:0: ") + std::strerror(e));
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace tailor
