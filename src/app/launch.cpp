#include "app/launch.h"

#include <signal.h>
#include <sys/prctl.h>
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

WorldInfo world_of(const DistributedOptions& o) {
  WorldInfo world = world_from_env();
  if (o.timeout_s > 0) world.timeout_s = o.timeout_s;
  return world;
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

bool launched_local_ranks(const DistributedOptions& o, const WorldInfo& world) {
  if (o.nproc <= 1) return false;
  if (world.distributed())
    throw Error("--nproc: this process is already rank " + std::to_string(world.rank) +
                " of a job (WORLD_SIZE is set); drop --nproc");
  launch_local_workers(o.nproc, without_nproc(own_command_line()));
  return true;
}

}  // namespace tailor
