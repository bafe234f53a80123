// Kill-and-resume: the real `tailor train` (LoRA dropout > 0, so the random state matters, across an
// epoch boundary with its evaluation) is killed with SIGKILL five times — right after a checkpoint
// step, while checkpoints are being written, at random moments — and resumed each time. The final adapter, merged model and the log's per-step losses must equal those of an
// uninterrupted run, and after every kill the checkpoint on disk must be complete.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "model/config.h"
#include "model/safetensors.h"
#include "test_util.h"
#include "train_data.h"
#include "util/fs.h"

using namespace tailor;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const int64_t kSteps = 12;
const char* const kPretrainLine = "\"stage\":\"pretrain\"";

std::vector<std::string> train_args(const std::string& out) {
  const auto& t = test::tiny_setup();
  return {"train", "--model", t.model, "--data", t.data, "--out", out, "--batch-size", "8", "--epochs", "3",
          "--max-steps", std::to_string(kSteps), "--checkpoint-every", "2", "--lora-dropout", "0.3", "--lr", "2e-3",
          "--seed", "5"};
}

// Starts `tailor ARGS` with stdout+stderr appended to log_path.
pid_t spawn(const std::vector<std::string>& args, const std::string& log_path) {
  std::string bin = test::tailor_bin();
  std::vector<std::string> all = {bin};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

int wait_status(pid_t pid) {
  int st = 0;
  ::waitpid(pid, &st, 0);
  return st;
}

// Step lines in train_log.jsonl: (step, loss), in file order.
std::vector<std::pair<int64_t, double>> step_losses(const std::string& out) {
  std::vector<std::pair<int64_t, double>> v;
  std::string path = out + "/train_log.jsonl";
  if (!file_exists(path)) return v;
  std::string text = read_file(path);
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) break;
    json j = json::parse(text.substr(start, end - start), nullptr, false);
    start = end + 1;
    if (!j.is_discarded() && j.contains("loss") && j.contains("step")) v.push_back({j["step"].get<int64_t>(), j["loss"].get<double>()});
  }
  return v;
}

// Waits until the log holds `steps` step lines, then SIGKILLs the run `fraction` of a step later,
// so the kill lands inside the next step (or its checkpoint) on any machine. The step time is the
// shortest seen between two consecutive step lines (not the first line of a run: that includes the
// start-up). Fails the test when the run ended by itself first (too fast to interrupt).
void kill_after_step(pid_t pid, const std::string& out, int64_t steps, double fraction) {
  using clock = std::chrono::steady_clock;
  static std::chrono::duration<double> step_time{0};
  int64_t seen = -1;
  int increments = 0;
  clock::time_point last_change = clock::now();
  while (true) {
    int64_t now_seen = static_cast<int64_t>(step_losses(out).size());
    if (now_seen != seen) {
      increments = seen >= 0 && now_seen == seen + 1 ? increments + 1 : 0;
      std::chrono::duration<double> d = clock::now() - last_change;
      if (increments >= 2 && (step_time.count() == 0 || d < step_time)) step_time = d;
      last_change = clock::now();
      seen = now_seen;
    }
    if (seen >= steps) break;
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == pid) {
      ADD_FAILURE() << "the run ended (status " << st << ") before step " << steps;
      return;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  if (fraction > 0) std::this_thread::sleep_for(step_time * fraction);
  ::kill(pid, SIGKILL);
  int st = wait_status(pid);
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "status " << st;
  EXPECT_LT(static_cast<int64_t>(step_losses(out).size()), kSteps) << "killed after the end";
}

// The checkpoint a resume would use is complete: state.json parses, the tensors file validates.
int64_t checkpoint_step(const std::string& out) {
  std::string dir = out + "/checkpoint";
  if (!fs::exists(dir)) dir += ".old";
  EXPECT_TRUE(fs::exists(dir)) << "no checkpoint in " << out;
  json s = json::parse(read_file(dir + "/state.json"));
  Checkpoint ck = Checkpoint::open(dir + "/trainable.safetensors");  // throws on a torn file
  EXPECT_FALSE(ck.names().empty());
  EXPECT_TRUE(fs::exists(dir + "/optimizer.safetensors"));
  return s["step"].get<int64_t>();
}

}  // namespace

TEST(Resume, KilledRunsResumeToTheSameResult) {
  Progress::quiet = true;
  std::string root = test::temp_dir("resume");
  std::string a = root + "/uninterrupted", b = root + "/killed";

  // The uninterrupted reference.
  int st = wait_status(spawn(train_args(a), root + "/a.log"));
  std::string a_log = read_file(root + "/a.log");
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << a_log;
  ASSERT_EQ(static_cast<int64_t>(step_losses(a).size()), kSteps);
  // `tailor train` prints the trainable count: r*(in+out) over the T5 q/v linears of the config.
  Blip2Config cfg = load_blip2_config(test::tiny_setup().model);
  int64_t lora = 8 * (cfg.text.d_model + cfg.text.num_heads * cfg.text.d_kv) *
                 (2 * cfg.text.num_layers + 4 * cfg.text.num_decoder_layers);
  EXPECT_NE(a_log.find(std::to_string(lora) + " trainable parameters"), std::string::npos) << a_log;

  // Killed five times, resumed five times: right after a checkpoint step, while checkpoints 6 and 8
  // are being written (their step lines come just before them), and at random moments.
  std::random_device rd;
  double delay1 = (rd() % 1000) / 1000.0, delay2 = (rd() % 1000) / 1000.0;
  std::printf("random kills: %.3f of a step after step 5, %.3f after step 9 was logged\n", delay1, delay2);
  std::vector<std::string> resume = train_args(b);
  resume.push_back("--resume");
  kill_after_step(spawn(train_args(b), root + "/b.log"), b, 3, 0);
  EXPECT_EQ(checkpoint_step(b), 2);
  kill_after_step(spawn(resume, root + "/b.log"), b, 5, delay1);
  int64_t at = checkpoint_step(b);
  EXPECT_TRUE(at == 4 || at == 6) << at;  // a long delay reaches the next checkpoint
  kill_after_step(spawn(resume, root + "/b.log"), b, 6, 0);
  at = checkpoint_step(b);
  EXPECT_TRUE(at == 4 || at == 6) << at;
  kill_after_step(spawn(resume, root + "/b.log"), b, 8, 0);
  at = checkpoint_step(b);
  EXPECT_TRUE(at == 6 || at == 8) << at;
  kill_after_step(spawn(resume, root + "/b.log"), b, 9, delay2);
  at = checkpoint_step(b);
  EXPECT_TRUE(at == 8 || at == 10) << at;
  st = wait_status(spawn(resume, root + "/b.log"));
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_file(root + "/b.log");
  EXPECT_NE(read_file(root + "/b.log").find("resumed at step " + std::to_string(at)), std::string::npos);

  // Same losses, step by step (the log was trimmed to the checkpoint at each resume).
  auto la = step_losses(a), lb = step_losses(b);
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i) {
    EXPECT_EQ(lb[i].first, static_cast<int64_t>(i + 1));
    EXPECT_EQ(la[i].second, lb[i].second) << "step " << i + 1;
  }
  // Each epoch's evaluation is logged once, with the same numbers.
  EXPECT_EQ(test::log_lines_with(a, "eval_accuracy").size(), 2u);  // epochs end at steps 6 and 12
  EXPECT_EQ(test::log_lines_with(a, "eval_accuracy"), test::log_lines_with(b, "eval_accuracy"));
  // Same trained weights, byte for byte: the adapter and the merged model.
  EXPECT_TRUE(read_file(a + "/adapter/adapter_model.safetensors") == read_file(b + "/adapter/adapter_model.safetensors"));
  EXPECT_TRUE(read_file(a + "/model/model.safetensors") == read_file(b + "/model/model.safetensors"));
  EXPECT_TRUE(read_file(a + "/checkpoint/trainable.safetensors") == read_file(b + "/checkpoint/trainable.safetensors"));
  EXPECT_FALSE(fs::exists(b + "/checkpoint.tmp"));
  EXPECT_FALSE(fs::exists(b + "/checkpoint.old"));

  // Leftovers of a kill during the swap (a half-removed checkpoint.old, a half-written .tmp) do not
  // stop the next resume or its checkpoint.
  make_dirs(b + "/checkpoint.old");
  write_file_atomic(b + "/checkpoint.old/state.json", "{\"step\": ");
  make_dirs(b + "/checkpoint.tmp");
  write_file_atomic(b + "/checkpoint.tmp/trainable.safetensors", "junk");
  st = wait_status(spawn(resume, root + "/d.log"));
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_file(root + "/d.log");
  EXPECT_EQ(checkpoint_step(b), kSteps);
  EXPECT_FALSE(fs::exists(b + "/checkpoint.old"));
  EXPECT_TRUE(read_file(a + "/adapter/adapter_model.safetensors") == read_file(b + "/adapter/adapter_model.safetensors"));

  // Resuming with other options is refused, naming the option.
  std::vector<std::string> other = resume;
  other[std::find(other.begin(), other.end(), "--lr") - other.begin() + 1] = "0.5";
  st = wait_status(spawn(other, root + "/c.log"));
  EXPECT_FALSE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  std::string c_log = read_file(root + "/c.log");
  EXPECT_NE(c_log.find("--resume"), std::string::npos) << c_log;
  EXPECT_NE(c_log.find("lr"), std::string::npos) << c_log;

  // A checkpoint without the optimizer's state (a tailor before the flat optimizer wrote optimizer.pt)
  // is refused, naming the missing file.
  fs::remove(b + "/checkpoint/optimizer.safetensors");
  st = wait_status(spawn(resume, root + "/d.log"));
  EXPECT_FALSE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  std::string d_log = read_file(root + "/d.log");
  EXPECT_NE(d_log.find(b + "/checkpoint/optimizer.safetensors is missing"), std::string::npos) << d_log;

  // A --cuda-graph value other than auto, on, off is refused before anything runs.
  std::vector<std::string> graph = train_args(root + "/graph");
  graph.push_back("--cuda-graph");
  graph.push_back("always");
  st = wait_status(spawn(graph, root + "/e.log"));
  EXPECT_FALSE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  std::string e_log = read_file(root + "/e.log");
  EXPECT_NE(e_log.find("--cuda-graph must be auto, on or off, not \"always\""), std::string::npos) << e_log;
  EXPECT_FALSE(fs::exists(root + "/graph/checkpoint"));
}

// From scratch with image-side pre-training (--pretrain-epochs): killed during the pre-training
// (nothing to resume from but a restart of it) and again during the language model's steps, the
// run ends as the uninterrupted one: same pre-training log, same step losses, same model bytes.
TEST(Resume, KilledDuringPretrainingResumesToTheSameResult) {
  Progress::quiet = true;
  std::string root = test::temp_dir("resume_pretrain");
  std::string a = root + "/uninterrupted", b = root + "/killed";
  const auto& t = test::tiny_setup();
  auto args = [&](const std::string& out) {
    return std::vector<std::string>{"train", "--model", t.model, "--data", t.data, "--out", out, "--full",
                                    "--freeze", "vision,qformer", "--pretrain-epochs", "6", "--pretrain-batch-size", "2",
                                    "--batch-size", "8", "--epochs", "3", "--max-steps", std::to_string(kSteps),
                                    "--checkpoint-every", "2", "--lr", "2e-3", "--seed", "5"};
  };
  int st = wait_status(spawn(args(a), root + "/a.log"));
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_file(root + "/a.log");
  ASSERT_EQ(test::log_lines_with(a, kPretrainLine).size(), 6u);

  // Kill 1: as soon as the first pre-training epoch is logged.
  pid_t pid = spawn(args(b), root + "/b.log");
  while (test::log_lines_with(b, kPretrainLine).empty()) {
    int s2 = 0;
    ASSERT_NE(::waitpid(pid, &s2, WNOHANG), pid) << "the run ended before it could be killed: " << read_file(root + "/b.log");
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  ::kill(pid, SIGKILL);
  wait_status(pid);
  EXPECT_FALSE(fs::exists(b + "/pretrain/image_side.safetensors")) << "killed after the pre-training ended";
  EXPECT_FALSE(fs::exists(b + "/checkpoint"));
  // Kill 2: during the steps, after the first checkpoint.
  std::vector<std::string> resume = args(b);
  resume.push_back("--resume");
  kill_after_step(spawn(resume, root + "/b.log"), b, 3, 0);
  EXPECT_EQ(checkpoint_step(b), 2);
  st = wait_status(spawn(resume, root + "/b.log"));
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_file(root + "/b.log");

  EXPECT_EQ(test::log_lines_with(a, kPretrainLine), test::log_lines_with(b, kPretrainLine));
  auto la = step_losses(a), lb = step_losses(b);
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i) EXPECT_EQ(la[i].second, lb[i].second) << "step " << i + 1;
  EXPECT_TRUE(read_file(a + "/model/model.safetensors") == read_file(b + "/model/model.safetensors"));
  EXPECT_TRUE(read_file(a + "/pretrain/image_side.safetensors") == read_file(b + "/pretrain/image_side.safetensors"));
}
