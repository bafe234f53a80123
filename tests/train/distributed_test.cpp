// Data-parallel training (train/world.h, train/distributed.h) with the real `tailor` program: Gloo
// ranks on 127.0.0.1 train the tiny model and must reproduce single-process training with the same
// global batch; a killed rank must end the others.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "app/launch.h"
#include "test_util.h"
#include "train/world.h"
#include "util/error.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace tailor;
using namespace tailor::test;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::vector<json> read_jsonl(const std::string& path) {
  std::vector<json> out;
  std::istringstream in(read_text(path));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

// Loss per optimizer step from train_log.jsonl (evaluation lines skipped).
std::vector<double> losses(const std::string& out_dir) {
  std::vector<double> l;
  for (const auto& j : read_jsonl(out_dir + "/train_log.jsonl"))
    if (j.contains("loss")) l.push_back(j["loss"].get<double>());
  return l;
}

void expect_same_curve(const std::vector<double>& single, const std::vector<double>& dist, double rel) {
  ASSERT_EQ(single.size(), dist.size());
  ASSERT_GT(single.size(), 10u);
  double worst = 0;
  for (size_t i = 0; i < single.size(); ++i) {
    double d = std::fabs(single[i] - dist[i]) / std::fabs(single[i]);
    worst = std::max(worst, d);
    EXPECT_LE(d, rel) << "step " << i + 1 << ": single " << single[i] << ", distributed " << dist[i];
  }
  std::printf("    %zu steps, largest relative difference %.3g\n", single.size(), worst);
}

// A rank of tailor started with the torchrun variables (none when world == 0); output to `log`.
pid_t spawn_rank(const std::vector<std::string>& args, int rank, int world, int port, const std::string& log,
                 const std::vector<std::string>& extra_env = {}) {
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) env_s.push_back(*e);
  if (world > 0) {
    env_s.push_back("RANK=" + std::to_string(rank));
    env_s.push_back("WORLD_SIZE=" + std::to_string(world));
    env_s.push_back("LOCAL_RANK=" + std::to_string(rank));
    env_s.push_back("MASTER_ADDR=127.0.0.1");
    env_s.push_back("MASTER_PORT=" + std::to_string(port));
  }
  env_s.push_back("TAILOR_THREADS=1");
  for (const auto& e : extra_env) env_s.push_back(e);
  std::vector<char*> argv, envp;
  std::string bin = tailor_bin();
  argv.push_back(const_cast<char*>(bin.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (auto& e : env_s) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execve(bin.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// Waits until `path` is a non-empty file; false when it is not there within 60 s or a process ended first.
bool wait_for_file(const std::string& path, const std::vector<pid_t>& pids) {
  auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
    if (fs::exists(path) && fs::file_size(path) > 0) return true;
    for (pid_t p : pids) {
      int st = 0;
      if (::waitpid(p, &st, WNOHANG) == p) return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += " '" + x + "'";
  return s;
}

class DistributedTrain : public ::testing::Test {
 protected:
  static std::string dir_;
  static void SetUpTestSuite() {
    dir_ = temp_dir("distributed");
    std::string t = tailor_bin();
    auto r = run_cmd(t + " init --preset tiny --out " + dir_ + "/model && " + t + " synth --products 30 --quiet --out " +
                     dir_ + "/catalog && " + t + " prepare --quiet --catalog " + dir_ + "/catalog --out " + dir_ + "/data");
    ASSERT_EQ(r.status, 0) << r.output;
  }
  // The training arguments shared by the single-process and the distributed runs.
  static std::vector<std::string> train_args(const std::string& out, const std::vector<std::string>& more,
                                             const std::string& epochs = "2", const std::string& timeout_s = "20") {
    std::vector<std::string> a = {"train", "--model", dir_ + "/model", "--data", dir_ + "/data", "--out", dir_ + "/" + out,
                                  "--lora-dropout", "0", "--epochs", epochs, "--seed", "5", "--dist-timeout", timeout_s};
    a.insert(a.end(), more.begin(), more.end());
    return a;
  }
  static void run_ok(const std::vector<std::string>& args, const std::string& env = "") {
    auto r = run_cmd(env + " TAILOR_THREADS=1 " + tailor_bin() + join(args));
    ASSERT_EQ(r.status, 0) << r.output;
  }
};
std::string DistributedTrain::dir_;

// Every training pair as "id/attribute", read straight from train.jsonl.
std::multiset<std::string> pair_keys(const std::string& data_dir) {
  std::multiset<std::string> k;
  for (const auto& j : read_jsonl(data_dir + "/train.jsonl"))
    k.insert(j["id"].get<std::string>() + "/" + j["attribute"].get<std::string>());
  return k;
}

}  // namespace

// ---- the sampler ------------------------------------------------------------------------------

TEST(Sampler, RankPartsCoverEveryStepExactlyOnce) {
  for (int64_t n : {1, 2, 7, 30, 144, 145})
    for (int64_t batch : {1, 3, 8, 16})
      for (int64_t accum : {1, 2, 3})
        for (int world : {1, 2, 3, 5}) {
          std::vector<int> seen(n, 0);
          int64_t pos = 0, steps = 0;
          while (pos < n) {
            std::vector<Span> global = step_batches(pos, n, batch, accum);
            ASSERT_FALSE(global.empty());
            ASSERT_LE(static_cast<int64_t>(global.size()), accum);
            for (const Span& g : global) {
              int64_t prev_end = g.begin, smallest = n, largest = 0;
              for (int r = 0; r < world; ++r) {
                Span p = rank_part(g, r, world);
                EXPECT_EQ(p.begin, prev_end) << "parts are contiguous, in rank order";
                prev_end = p.end;
                smallest = std::min(smallest, p.size());
                largest = std::max(largest, p.size());
                for (int64_t i = p.begin; i < p.end; ++i) seen[i]++;
              }
              EXPECT_EQ(prev_end, g.end);
              EXPECT_LE(largest - smallest, 1);
            }
            pos = global.back().end;
            ++steps;
          }
          EXPECT_EQ(steps, (n + batch * accum - 1) / (batch * accum)) << "steps per epoch as one process";
          for (int64_t i = 0; i < n; ++i)
            ASSERT_EQ(seen[i], 1) << "pair " << i << " (n=" << n << " batch=" << batch << " accum=" << accum
                                  << " world=" << world << ")";
        }
}

TEST(Sampler, WorldFromEnvironment) {
  auto clear = [] {
    for (const char* v : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                          "TAILOR_DIST_TIMEOUT", "TAILOR_DIST_BUCKET_KB"})
      ::unsetenv(v);
  };
  clear();
  WorldInfo w = world_from_env();
  EXPECT_FALSE(w.distributed());
  ::setenv("WORLD_SIZE", "4", 1);
  ::setenv("RANK", "2", 1);
  ::setenv("MASTER_ADDR", "10.1.2.3", 1);
  ::setenv("MASTER_PORT", "29511", 1);
  ::setenv("LOCAL_RANK", "0", 1);
  w = world_from_env();
  EXPECT_TRUE(w.distributed());
  EXPECT_EQ(w.rank, 2);
  EXPECT_EQ(w.world_size, 4);
  EXPECT_EQ(w.local_rank, 0);
  EXPECT_EQ(w.master_addr, "10.1.2.3");
  EXPECT_EQ(w.master_port, 29511);
  ::setenv("RANK", "4", 1);
  EXPECT_THROW(world_from_env(), Error);
  ::setenv("RANK", "two", 1);
  EXPECT_THROW(world_from_env(), Error);
  ::setenv("RANK", "1", 1);
  ::unsetenv("MASTER_PORT");
  EXPECT_THROW(world_from_env(), Error);
  clear();
  EXPECT_EQ(without_nproc({"tailor", "train", "--nproc", "3", "--out", "x", "--nproc=2"}),
            (std::vector<std::string>{"tailor", "train", "--out", "x"}));
}

// ---- training with the real program ------------------------------------------------------------

TEST_F(DistributedTrain, TwoRanksEqualOneProcessAndSeeEveryPairOncePerEpoch) {
  run_ok(train_args("single2", {"--batch-size", "8"}));
  std::string trace = dir_ + "/trace2";
  fs::create_directories(trace);
  run_ok(train_args("dist2", {"--batch-size", "8", "--nproc", "2"}), "TAILOR_SAMPLE_TRACE=" + trace);
  expect_same_curve(losses(dir_ + "/single2"), losses(dir_ + "/dist2"), 1e-5);

  // Every pair of train.jsonl exactly once per epoch, over both ranks' shards.
  std::multiset<std::string> all = pair_keys(dir_ + "/data");
  std::map<int64_t, std::multiset<std::string>> by_epoch;
  std::map<int, int64_t> per_rank;
  for (int r = 0; r < 2; ++r)
    for (const auto& j : read_jsonl(trace + "/rank" + std::to_string(r) + ".jsonl"))
      for (const auto& id : j["pairs"]) {
        by_epoch[j["epoch"].get<int64_t>()].insert(id.get<std::string>());
        per_rank[r]++;
      }
  ASSERT_EQ(by_epoch.size(), 2u);
  for (const auto& [epoch, seen] : by_epoch) EXPECT_EQ(seen, all) << "epoch " << epoch;
  EXPECT_GT(per_rank[0], 0);
  EXPECT_GT(per_rank[1], 0);

  // Rank 0 alone wrote: one log line per step, the same outputs as one process.
  std::vector<json> log = read_jsonl(dir_ + "/dist2/train_log.jsonl");
  std::set<int64_t> steps;
  for (const auto& j : log)
    if (j.contains("loss")) EXPECT_TRUE(steps.insert(j["step"].get<int64_t>()).second) << "step logged twice";
  for (const char* f : {"model/config.json", "adapter/adapter_model.safetensors", "checkpoint/state.json", "eval.json"})
    EXPECT_TRUE(fs::exists(dir_ + "/dist2/" + f)) << f;
  // Evaluation was split across the ranks and gathered: the same report as one process.
  json e1 = json::parse(read_text(dir_ + "/single2/eval.json")), e2 = json::parse(read_text(dir_ + "/dist2/eval.json"));
  EXPECT_EQ(e1["pairs"], e2["pairs"]);
  EXPECT_EQ(e1["predictions"], e2["predictions"]);
}

TEST_F(DistributedTrain, EvalSplitOverRanksGivesTheSameReport) {
  std::string t = tailor_bin(), model = dir_ + "/model", data = dir_ + "/data";
  // Free answers: their ids are exact; choice confidences differ in the last bits with the batching.
  auto one = run_cmd(t + " eval --answer free --model " + model + " --data " + data + " --report " + dir_ + "/eval1.json");
  ASSERT_EQ(one.status, 0) << one.output;
  auto three = run_cmd("TAILOR_THREADS=1 " + t + " eval --answer free --nproc 3 --model " + model + " --data " + data + " --report " +
                       dir_ + "/eval3.json");
  ASSERT_EQ(three.status, 0) << three.output;
  json a = json::parse(read_text(dir_ + "/eval1.json")), b = json::parse(read_text(dir_ + "/eval3.json"));
  EXPECT_EQ(a["pairs"].get<int64_t>(), static_cast<int64_t>(read_jsonl(data + "/val.jsonl").size()));
  EXPECT_EQ(a, b);
}

TEST_F(DistributedTrain, ThreeEnvRanksWithAccumulationAndSmallBucketsEqualOneProcess) {
  // 3 ranks from the torchrun variables; batches of 5 (uneven parts) x 2 accumulated; 4 KiB buckets,
  // so the gradients travel in several all-reduces started during the backward pass.
  std::vector<std::string> more = {"--batch-size", "5", "--grad-accum", "2"};
  run_ok(train_args("single3", more));
  int port = free_local_port();
  std::vector<pid_t> pids;
  for (int r = 0; r < 3; ++r)
    pids.push_back(spawn_rank(train_args("dist3", more), r, 3, port, dir_ + "/dist3_rank" + std::to_string(r) + ".log",
                              {"TAILOR_DIST_BUCKET_KB=4"}));
  for (int r = 0; r < 3; ++r)
    EXPECT_EQ(wait_exit(pids[r]), 0) << read_text(dir_ + "/dist3_rank" + std::to_string(r) + ".log");
  expect_same_curve(losses(dir_ + "/single3"), losses(dir_ + "/dist3"), 1e-5);
  // Overlap: some buckets' all-reduces started from gradient hooks, before backward returned.
  std::string out = read_text(dir_ + "/dist3_rank0.log");
  long long in_backward = -1, all = -1, buckets = -1;
  size_t at = out.find("all-reduced in ");
  ASSERT_NE(at, std::string::npos) << out;
  std::sscanf(out.c_str() + at, "all-reduced in %lld buckets", &buckets);
  at = out.find("data-parallel: ", at);
  ASSERT_NE(at, std::string::npos) << out;
  std::sscanf(out.c_str() + at, "data-parallel: %lld of %lld", &in_backward, &all);
  EXPECT_GT(buckets, 1);
  EXPECT_EQ(all, buckets * 30) << "every bucket once per step";
  EXPECT_GT(in_backward, 0);
  std::printf("    %lld buckets; %lld of %lld all-reduces started during backward\n", buckets, in_backward, all);
}

// The captured step (its fixed shapes run eagerly on the CPU; on a GPU the same calls are CUDA
// graphs with the all-reduce inside) on 2 ranks with accumulation and uneven parts, with and without
// the feature cache: the losses of the eager step in one process.
TEST_F(DistributedTrain, CapturedStepOnTwoRanksEqualsEagerOneProcess) {
  std::vector<std::string> more = {"--batch-size", "5", "--grad-accum", "2"};
  std::vector<std::string> eager = more, captured = more, uncached = more;
  eager.insert(eager.end(), {"--cuda-graph", "off"});
  run_ok(train_args("single_cap", eager, "1"));
  captured.insert(captured.end(), {"--cuda-graph", "on", "--nproc", "2"});
  run_ok(train_args("dist_cap", captured, "1"));
  expect_same_curve(losses(dir_ + "/single_cap"), losses(dir_ + "/dist_cap"), 1e-5);
  uncached.insert(uncached.end(), {"--cuda-graph", "on", "--cache", "off", "--nproc", "2"});
  run_ok(train_args("dist_cap_nocache", uncached, "1"));
  expect_same_curve(losses(dir_ + "/single_cap"), losses(dir_ + "/dist_cap_nocache"), 1e-5);
  json times;
  for (const auto& j : read_jsonl(dir_ + "/dist_cap/train_log.jsonl"))
    if (j.value("stage", "") == "times") times = j;
  ASSERT_FALSE(times.is_null()) << "no times line in train_log.jsonl";
  EXPECT_EQ(times["ranks"].get<int>(), 2);
  EXPECT_NE(times["step_kind"].get<std::string>().find("fixed shapes"), std::string::npos) << times.dump();
  EXPECT_GT(times["to_first_step_s"].get<double>(), 0);
}

TEST_F(DistributedTrain, ResumesWithAnotherWorldSize) {
  // 2 ranks checkpoint every 4 steps and are killed mid-run; 3 ranks resume; the whole curve must be
  // the single-process one.
  std::vector<std::string> more = {"--batch-size", "8", "--checkpoint-every", "4"};
  run_ok(train_args("single_r", more));
  int port = free_local_port();
  std::vector<std::string> args = train_args("resume", more);
  std::vector<std::string> longer = args;
  std::vector<pid_t> pids;
  for (int r = 0; r < 2; ++r) pids.push_back(spawn_rank(args, r, 2, port, dir_ + "/resume_rank" + std::to_string(r) + ".log"));
  std::string state = dir_ + "/resume/checkpoint/state.json";
  auto t0 = std::chrono::steady_clock::now();
  while (!fs::exists(state) && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  for (pid_t p : pids) ::kill(p, SIGKILL);
  for (pid_t p : pids) wait_exit(p);
  ASSERT_TRUE(fs::exists(state) || fs::exists(dir_ + "/resume/checkpoint.old/state.json"));
  std::vector<std::string> resume = args;
  resume.push_back("--resume");
  resume.push_back("--nproc");
  resume.push_back("3");
  run_ok(resume);
  expect_same_curve(losses(dir_ + "/single_r"), losses(dir_ + "/resume"), 1e-5);
}

TEST_F(DistributedTrain, RanksWithDifferentOptionsStopWithAnError) {
  int port = free_local_port();
  std::vector<pid_t> pids;
  for (int r = 0; r < 2; ++r)
    pids.push_back(spawn_rank(train_args("mismatch", {"--batch-size", std::to_string(4 + r)}), r, 2, port,
                              dir_ + "/mismatch_rank" + std::to_string(r) + ".log"));
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(wait_exit(pids[r]), 1);
    std::string out = read_text(dir_ + "/mismatch_rank" + std::to_string(r) + ".log");
    EXPECT_NE(out.find("rank 1's training options differ from rank 0's"), std::string::npos) << out;
  }
  EXPECT_FALSE(fs::exists(dir_ + "/mismatch/train_log.jsonl"));
}

// With either step: the eager one's bucketed all-reduces and the captured one's all-reduce inside it.
TEST_F(DistributedTrain, KilledRankEndsEveryRankWithinTheTimeout) {
  const int timeout_s = 20;  // train_args' --dist-timeout
  for (std::string step : {"off", "on"}) {
    SCOPED_TRACE("--cuda-graph " + step);
    std::string name = "killed_" + step;
    std::vector<std::string> args = train_args(name, {"--batch-size", "4", "--cuda-graph", step}, "500");
    int port = free_local_port();
    std::vector<pid_t> pids;
    for (int r = 0; r < 3; ++r) pids.push_back(spawn_rank(args, r, 3, port, dir_ + "/" + name + "_rank" + std::to_string(r) + ".log"));
    ASSERT_TRUE(wait_for_file(dir_ + "/" + name + "/train_log.jsonl", pids)) << read_text(dir_ + "/" + name + "_rank0.log");
    ::kill(pids[1], SIGKILL);
    auto killed_at = std::chrono::steady_clock::now();
    int s0 = wait_exit(pids[0]), s2 = wait_exit(pids[2]);
    double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
    wait_exit(pids[1]);
    EXPECT_EQ(s0, 1);
    EXPECT_EQ(s2, 1);
    EXPECT_LT(took, timeout_s + 5.0);
    std::printf("    --cuda-graph %s: ranks 0 and 2 ended %.2f s after rank 1 was killed\n", step.c_str(), took);
    for (int r : {0, 2}) {
      std::string out = read_text(dir_ + "/" + name + "_rank" + std::to_string(r) + ".log");
      EXPECT_NE(out.find("tailor: error: distributed: rank " + std::to_string(r) + " of 3:"), std::string::npos) << out;
      EXPECT_NE(out.find("failed"), std::string::npos) << out;
    }
  }
}

TEST_F(DistributedTrain, HungRankEndsEveryRankAfterTheTimeout) {
  // A rank that stops answering (SIGSTOP) keeps its sockets open: only the timeout can tell.
  const double timeout_s = 3;
  std::vector<std::string> args = train_args("hung", {"--batch-size", "4"}, "500", "3");
  int port = free_local_port();
  std::vector<pid_t> pids;
  for (int r = 0; r < 2; ++r) pids.push_back(spawn_rank(args, r, 2, port, dir_ + "/hung_rank" + std::to_string(r) + ".log"));
  ASSERT_TRUE(wait_for_file(dir_ + "/hung/train_log.jsonl", pids)) << read_text(dir_ + "/hung_rank0.log");
  ::kill(pids[1], SIGSTOP);
  auto stopped_at = std::chrono::steady_clock::now();
  int s0 = wait_exit(pids[0]);
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - stopped_at).count();
  ::kill(pids[1], SIGKILL);
  wait_exit(pids[1]);
  EXPECT_EQ(s0, 1);
  EXPECT_GE(took, timeout_s - 0.5);
  EXPECT_LT(took, timeout_s + 5.0);
  std::printf("    rank 0 ended %.2f s after rank 1 hung (timeout %.0f s)\n", took, timeout_s);
  std::string out = read_text(dir_ + "/hung_rank0.log");
  EXPECT_NE(out.find("tailor: error: distributed: rank 0 of 2:"), std::string::npos) << out;
}

TEST_F(DistributedTrain, LauncherEndsTheOtherRanksWhenOneIsKilled) {
  std::vector<std::string> args = train_args("launched", {"--batch-size", "4", "--nproc", "2"}, "500");
  pid_t launcher = spawn_rank(args, 0, 0, 0, dir_ + "/launcher.log");
  ASSERT_TRUE(wait_for_file(dir_ + "/launched/train_log.jsonl", {launcher})) << read_text(dir_ + "/launcher.log");
  // The launcher's children: processes whose parent is the launcher.
  std::vector<pid_t> children;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat = read_text(e.path().string() + "/stat");
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == launcher) children.push_back(std::stoi(name));
  }
  ASSERT_EQ(children.size(), 2u) << read_text(dir_ + "/launcher.log");
  ::kill(children[1], SIGKILL);
  auto killed_at = std::chrono::steady_clock::now();
  int status = wait_exit(launcher);
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  EXPECT_EQ(status, 1);
  EXPECT_LT(took, 15.0);
  for (pid_t c : children) EXPECT_NE(::kill(c, 0), 0) << "rank pid " << c << " still runs";
  std::string out = read_text(dir_ + "/launcher.log");
  EXPECT_NE(out.find("was killed by signal 9"), std::string::npos) << out;
  EXPECT_NE(out.find("the other ranks were stopped"), std::string::npos) << out;
}
