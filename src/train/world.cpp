#include "train/world.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "util/error.h"
#include "util/fs.h"

extern char** environ;

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


std::vector<std::string> without_nproc(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--nproc") {
      ++i;  // and its value
      continue;
    }
    if (args[i].rfind("--nproc=", 0) == 0) continue;
    out.push_back(args[i]);
  }
  return out;
}

namespace {

volatile sig_atomic_t g_forward_signal = 0;
void on_signal(int sig) { g_forward_signal = sig; }

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
                                  strsignal(WTERMSIG(status)) + ")";
  return "stopped";
}

}  // namespace

void launch_local_workers(int nproc, const std::vector<std::string>& args, double grace_s) {
  if (nproc < 1) throw Error("--nproc must be >= 1");
  if (args.empty()) throw Error("launch_local_workers: no program arguments");
  std::string port = std::getenv("MASTER_PORT") && *std::getenv("MASTER_PORT") ? std::getenv("MASTER_PORT")
                                                                                : std::to_string(free_local_port());
  // Everything the children need is built before fork: only async-signal-safe calls happen after it.
  std::vector<std::string> keep_env;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    std::string key = kv.substr(0, kv.find('='));
    if (key == "RANK" || key == "WORLD_SIZE" || key == "LOCAL_RANK" || key == "LOCAL_WORLD_SIZE" ||
        key == "MASTER_ADDR" || key == "MASTER_PORT")
      continue;
    keep_env.push_back(kv);
  }
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::vector<std::string>> envs(nproc);
  std::vector<std::vector<char*>> envps(nproc);
  for (int r = 0; r < nproc; ++r) {
    envs[r] = keep_env;
    envs[r].push_back("RANK=" + std::to_string(r));
    envs[r].push_back("LOCAL_RANK=" + std::to_string(r));
    envs[r].push_back("WORLD_SIZE=" + std::to_string(nproc));
    envs[r].push_back("LOCAL_WORLD_SIZE=" + std::to_string(nproc));
    envs[r].push_back("MASTER_ADDR=127.0.0.1");
    envs[r].push_back("MASTER_PORT=" + port);
    // The ranks share this host's cores: each gets its part for libtorch's threads, unless told.
    if (!std::getenv("TAILOR_THREADS"))
      envs[r].push_back("TAILOR_THREADS=" + std::to_string(std::max(1u, std::thread::hardware_concurrency() / nproc)));
    for (auto& s : envs[r]) envps[r].push_back(const_cast<char*>(s.c_str()));
    envps[r].push_back(nullptr);
  }
  struct sigaction sa {}, old_int {}, old_term {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  g_forward_signal = 0;
  std::fflush(nullptr);

  pid_t parent = ::getpid();
  std::vector<pid_t> pids(nproc, -1);
  for (int r = 0; r < nproc; ++r) {
    pid_t pid = ::fork();
    if (pid < 0) {
      for (pid_t p : pids)
        if (p > 0) ::kill(p, SIGKILL);
      throw Error(std::string("--nproc: fork: ") + std::strerror(errno));
    }
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a killed launcher takes its workers along
      if (::getppid() != parent) ::_exit(127);
      signal(SIGINT, SIG_DFL);
      signal(SIGTERM, SIG_DFL);
      ::execve("/proc/self/exe", argv.data(), envps[r].data());
      ::_exit(127);
    }
    pids[r] = pid;
  }

  // Wait; the first failure (or a signal to us) ends the others.
  std::vector<bool> running(nproc, true);
  int alive = nproc;
  std::string failure;
  bool ending = false;
  auto ending_since = std::chrono::steady_clock::now();
  bool killed_hard = false;
  while (alive > 0) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      int r = static_cast<int>(std::find(pids.begin(), pids.end(), pid) - pids.begin());
      if (r < nproc && running[r]) {
        running[r] = false;
        --alive;
        bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!ok && failure.empty() && !ending)
          failure = "rank " + std::to_string(r) + " of " + std::to_string(nproc) + " (pid " + std::to_string(pid) + ") " +
                    describe_status(status);
        if (!ok && !ending) {
          ending = true;
          ending_since = std::chrono::steady_clock::now();
          for (int o = 0; o < nproc; ++o)
            if (running[o]) ::kill(pids[o], SIGTERM);
        }
      }
      continue;
    }
    if (pid < 0 && errno != EINTR && errno != ECHILD) break;
    if (g_forward_signal && !ending) {
      failure = std::string("interrupted by signal ") + std::to_string(g_forward_signal);
      ending = true;
      ending_since = std::chrono::steady_clock::now();
      for (int o = 0; o < nproc; ++o)
        if (running[o]) ::kill(pids[o], g_forward_signal);
    }
    if (ending && !killed_hard &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - ending_since).count() > grace_s) {
      killed_hard = true;
      for (int o = 0; o < nproc; ++o)
        if (running[o]) ::kill(pids[o], SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  if (!failure.empty())
    throw Error("--nproc " + std::to_string(nproc) + ": " + failure + "; the other ranks were stopped");
}

}  // namespace tailor
