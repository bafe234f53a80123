// `tailor train` as a SageMaker training job (app/training_job.h), run as the container runs it —
// the binary with the single argument `train` — against a fake /opt/ml (TAILOR_SAGEMAKER_ROOT): from
// a raw catalog and from prepared pairs it trains exactly what `tailor prepare` + `tailor train` with
// the same flags train; killed after a checkpoint and started again (a managed-spot restart) it
// resumes to the same bytes, and so does one stopped by SIGTERM; a bad hyperparameter or a missing
// channel fails with the reason in output/failure.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "test_util.h"
#include "util/fs.h"

namespace fs = std::filesystem;
using namespace tailor;
using test::run_cmd;
using test::tailor_bin;

namespace {

// A job root with the tiny model in the model channel and `train` (a directory to copy) in the train channel.
std::string make_root(const std::string& name, const std::string& model, const std::string& train,
                      const std::string& hyperparameters) {
  std::string root = test::temp_dir(name);
  make_dirs(root + "/input/config");
  make_dirs(root + "/input/data");
  fs::copy(model, root + "/input/data/model", fs::copy_options::recursive);
  fs::copy(train, root + "/input/data/train", fs::copy_options::recursive);
  write_file_atomic(root + "/input/config/hyperparameters.json", hyperparameters);
  return root;
}

test::CmdResult run_job(const std::string& root) {
  return run_cmd("TAILOR_SAGEMAKER_ROOT=" + root + " TAILOR_THREADS=1 " + tailor_bin() + " train");
}

// Every value a string, as SageMaker writes them.
const char* kHyperparameters =
    R"({"epochs": "3", "batch_size": "8", "lora_dropout": "0", "seed": "3", "checkpoint_every": "2", "full": "false",
        "sagemaker_job_name": "ignored"})";

class TrainingJobTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    REQUIRE_CAIRO();
    dir_ = test::temp_dir("training_job");
    std::string t = tailor_bin();
    auto r = run_cmd(t + " init --preset tiny --out " + dir_ + "/model && " + t + " synth --products 30 --quiet --out " +
                     dir_ + "/catalog && " + t + " prepare --quiet --catalog " + dir_ + "/catalog --out " + dir_ +
                     "/data && TAILOR_THREADS=1 " + t + " train --model " + dir_ + "/model --data " + dir_ + "/data --out " +
                     dir_ + "/plain --epochs 3 --batch-size 8 --lora-dropout 0 --seed 3 --checkpoint-every 2");
    ASSERT_EQ(r.status, 0) << r.output;
  }
  void SetUp() override { REQUIRE_CAIRO(); }
  static std::string dir_;
};
std::string TrainingJobTest::dir_;

}  // namespace

TEST_F(TrainingJobTest, FromACatalogTrainsWhatPrepareAndTrainDo) {
  std::string root = make_root("job_catalog", dir_ + "/model", dir_ + "/catalog", kHyperparameters);
  auto r = run_job(root);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("preparing the catalog"), std::string::npos) << r.output;
  // Metric lines for SageMaker's regexes: "step i/n Loss: x" per step, "epoch e Epoch Loss: x" per epoch.
  auto count = [&](const std::string& what) {
    size_t n = 0;
    for (size_t at = r.output.find(what); at != std::string::npos; at = r.output.find(what, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count(" Loss: "), count("\nstep ") + 3) << r.output;
  EXPECT_EQ(count("Epoch Loss: "), 3u) << r.output;
  EXPECT_GT(count("\nstep "), 30u) << r.output;
  for (const char* f : {"config.json", "model.safetensors", "spiece.model", "tailor_task.json", "adapter/adapter_model.safetensors"})
    EXPECT_TRUE(fs::exists(root + "/model/" + f)) << f;
  EXPECT_TRUE(fs::exists(root + "/output/data/train_log.jsonl"));
  EXPECT_TRUE(fs::exists(root + "/output/data/eval.json"));
  EXPECT_FALSE(fs::exists(root + "/output/failure"));
  // The same pairs as `tailor prepare` of the same catalog (its photos at the channel's path).
  std::string pairs = read_file(root + "/output/data/prepared/train.jsonl"), from = root + "/input/data/train/";
  for (size_t at = pairs.find(from); at != std::string::npos; at = pairs.find(from, at))
    pairs.replace(at, from.size(), dir_ + "/catalog/");
  EXPECT_TRUE(pairs == read_file(dir_ + "/data/train.jsonl"));
  EXPECT_TRUE(read_file(root + "/model/adapter/adapter_model.safetensors") ==
              read_file(dir_ + "/plain/adapter/adapter_model.safetensors"));
  EXPECT_TRUE(read_file(root + "/model/model.safetensors") == read_file(dir_ + "/plain/model/model.safetensors"));
}

TEST_F(TrainingJobTest, FromPreparedPairsAndAfterARestart) {
  std::string root = make_root("job_pairs", dir_ + "/model", dir_ + "/data", kHyperparameters);
  // Started, killed once its first checkpoint is there (a spot interruption), started again.
  std::string pid_file = root + "/pid";
  auto bg = run_cmd("(TAILOR_SAGEMAKER_ROOT=" + root + " TAILOR_THREADS=1 " + tailor_bin() +
                    " train > " + root + "/first.log 2>&1 & echo $! > " + pid_file + ")");
  ASSERT_EQ(bg.status, 0) << bg.output;
  pid_t pid = static_cast<pid_t>(std::stol(read_file(pid_file)));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(root + "/checkpoints/run/checkpoint/state.json") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(fs::exists(root + "/checkpoints/run/checkpoint/state.json")) << read_file(root + "/first.log");
  ::kill(pid, SIGKILL);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(fs::exists(root + "/model/model.safetensors")) << "killed before the end";
  auto r = run_job(root);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("resumed at step"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("preparing the catalog"), std::string::npos) << "prepared pairs are used as they are";
  EXPECT_TRUE(read_file(root + "/model/adapter/adapter_model.safetensors") ==
              read_file(dir_ + "/plain/adapter/adapter_model.safetensors"));
}

// SageMaker stops a job (StopTrainingJob, a spot interruption) with SIGTERM: the step under way ends,
// a checkpoint is written and the reason goes to output/failure; the job started again resumes from
// that checkpoint to the bytes of an uninterrupted run.
TEST_F(TrainingJobTest, SigtermCheckpointsAndTheRestartResumes) {
  // No checkpoint of its own before the end: the one found after the stop is SIGTERM's.
  std::string hyper = kHyperparameters;
  hyper.replace(hyper.find(R"("checkpoint_every": "2")"), 23, R"("checkpoint_every": "1000")");
  std::string root = make_root("job_sigterm", dir_ + "/model", dir_ + "/data", hyper);
  // SIGTERM once the first step's line is in the run's log; the shell reports the exit status.
  auto r = run_cmd("TAILOR_SAGEMAKER_ROOT=" + root + " TAILOR_THREADS=1 " + tailor_bin() + " train > " + root +
                   "/first.log 2>&1 & pid=$!; while ! grep -qs samples_per_second " + root +
                   "/checkpoints/run/train_log.jsonl; do sleep 0.01; done; kill -TERM $pid; wait $pid; echo status=$?");
  std::string first = read_file(root + "/first.log");
  EXPECT_NE(r.output.find("status=1"), std::string::npos) << r.output << first;
  EXPECT_NE(first.find("SIGTERM: stopped after step"), std::string::npos) << first;
  EXPECT_NE(read_file(root + "/output/failure").find("SIGTERM: stopped after step"), std::string::npos);
  EXPECT_TRUE(fs::exists(root + "/checkpoints/run/checkpoint/state.json"));
  EXPECT_FALSE(fs::exists(root + "/model/model.safetensors")) << "stopped before the end";
  r = run_job(root);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("resumed at step"), std::string::npos) << r.output;
  EXPECT_TRUE(read_file(root + "/model/adapter/adapter_model.safetensors") ==
              read_file(dir_ + "/plain/adapter/adapter_model.safetensors"));
}

TEST_F(TrainingJobTest, FailuresWriteTheirReason) {
  std::string root = make_root("job_bad_key", dir_ + "/model", dir_ + "/data", R"({"epochs": "1", "learning_rate_typo": "1"})");
  auto r = run_job(root);
  EXPECT_NE(r.status, 0);
  std::string failure = read_file(root + "/output/failure");
  EXPECT_NE(failure.find("--learning-rate-typo"), std::string::npos) << failure;

  std::string no_model = make_root("job_no_model", dir_ + "/model", dir_ + "/data", R"({"epochs": "1"})");
  remove_tree(no_model + "/input/data/model");
  r = run_job(no_model);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(read_file(no_model + "/output/failure").find("\"model\" channel"), std::string::npos);

  std::string bad_value = make_root("job_bad_value", dir_ + "/model", dir_ + "/data", R"({"batch_size": "eight"})");
  r = run_job(bad_value);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(read_file(bad_value + "/output/failure").find("batch-size"), std::string::npos);
}

// The `nproc` hyperparameter: the ranks it starts run `tailor train` as the job too; the launcher
// alone finishes it.
TEST_F(TrainingJobTest, TwoRanksOnOneInstance) {
  std::string root = make_root("job_nproc", dir_ + "/model", dir_ + "/data",
                               R"({"epochs": "1", "batch_size": "8", "lora_dropout": "0", "nproc": "2"})");
  auto r = run_job(root);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("data-parallel: 2 ranks"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(root + "/model/adapter/adapter_model.safetensors"));
  EXPECT_FALSE(fs::exists(root + "/output/failure"));
}
