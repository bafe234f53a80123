#include "app/training_job.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "app/prepare_run.h"
#include "util/error.h"
#include "util/fs.h"

namespace tailor {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string job_root() {
  const char* r = std::getenv("TAILOR_SAGEMAKER_ROOT");  // tests only: a fake /opt/ml
  return r && *r ? r : "/opt/ml";
}

// A channel's directory: SM_CHANNEL_<NAME>, else input/data/<name>; "" when neither exists.
std::string channel(const std::string& root, const std::string& name) {
  std::string upper;
  for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const char* env = std::getenv(("SM_CHANNEL_" + upper).c_str());
  std::string dir = env && *env ? env : join_path(join_path(root, "input/data"), name);
  return fs::is_directory(dir) ? dir : "";
}

// Moves `from` into `to` (an existing directory keeps its other entries); across file systems, copies.
void move_into(const std::string& from, const std::string& to) {
  make_dirs(to);
  for (const auto& e : fs::directory_iterator(from)) {
    fs::path dst = fs::path(to) / e.path().filename();
    std::error_code ec;
    if (fs::exists(dst)) remove_tree(dst.string());
    fs::rename(e.path(), dst, ec);
    if (ec) fs::copy(e.path(), dst, fs::copy_options::recursive);
  }
}

}  // namespace

bool training_job_present() { return file_exists(join_path(job_root(), "input/config/hyperparameters.json")); }

TrainingJob open_training_job() {
  TrainingJob job;
  job.root = job_root();
  const std::string hp_path = join_path(job.root, "input/config/hyperparameters.json");
  json hp = json::parse(read_file(hp_path), nullptr, false);
  if (hp.is_discarded() || !hp.is_object()) throw Error(hp_path + ": not a JSON object");
  std::string model_dir, article_types;
  std::vector<std::string> flags;
  for (const auto& [key, value] : hp.items()) {
    if (key.rfind("sagemaker_", 0) == 0) continue;
    // SageMaker passes every value as a string; a number or boolean written by hand is taken too.
    if (!value.is_string() && !value.is_number() && !value.is_boolean())
      throw Error(hp_path + ": hyperparameter \"" + key + "\" must be a string, number or boolean");
    std::string v = value.is_string() ? value.get<std::string>() : value.dump();
    std::string flag = key;
    for (char& c : flag)
      if (c == '_') c = '-';
    if (flag == "model") {
      model_dir = v;
      continue;
    }
    if (flag == "article-types") {  // for preparing a catalog channel (prepare's --article-types)
      article_types = v;
      continue;
    }
    // The ranks that --nproc starts run this again (their command line is `tailor train` too): they
    // are ranks already.
    if (flag == "nproc" && std::getenv("WORLD_SIZE")) continue;
    if (flag == "data" || flag == "out" || flag == "resume")
      throw Error(hp_path + ": hyperparameter \"" + key + "\" is the job's own (the train channel, " + job.root +
                  "/checkpoints, a restart)");
    flags.push_back("--" + flag + "=" + v);  // flags too: CLI11 reads --full=true / --full=false
  }
  if (model_dir.empty()) model_dir = channel(job.root, "model");
  if (model_dir.empty())
    throw Error("no base model: give the job a \"model\" channel (" + job.root +
                "/input/data/model, an HF-layout model directory) or a \"model\" hyperparameter");
  std::string train = channel(job.root, "train");
  if (train.empty()) throw Error("no training data: give the job a \"train\" channel (" + job.root + "/input/data/train)");
  std::string data = train;
  if (!file_exists(join_path(train, "train.jsonl"))) {
    // A catalog: prepared once (prepare's outputs appear whole, so a finished one is reused).
    data = join_path(job.root, "output/data/prepared");
    if (!file_exists(join_path(data, "train.jsonl"))) {
      std::printf("training job: preparing the catalog in %s into %s\n", train.c_str(), data.c_str());
      PrepareRunOptions p;
      p.catalog.catalog = train;
      if (!article_types.empty()) p.article_types = article_types;
      p.out = data;
      p.quiet = true;
      run_prepare(p);
    }
  }
  job.out_dir = join_path(job.root, "checkpoints/run");
  job.train_args = {"--model", model_dir, "--data", data, "--out", job.out_dir, "--log-lines"};
  if (fs::is_directory(join_path(job.out_dir, "checkpoint")) || fs::is_directory(join_path(job.out_dir, "checkpoint.old")) ||
      file_exists(join_path(job.out_dir, "pretrain/image_side.safetensors")))
    job.train_args.push_back("--resume");  // a restarted job
  job.train_args.insert(job.train_args.end(), flags.begin(), flags.end());
  return job;
}

void finish_training_job(const TrainingJob& job) {
  move_into(join_path(job.out_dir, "model"), join_path(job.root, "model"));
  if (fs::is_directory(join_path(job.out_dir, "adapter")))
    move_into(join_path(job.out_dir, "adapter"), join_path(job.root, "model/adapter"));
  std::string data = join_path(job.root, "output/data");
  make_dirs(data);
  for (const char* f : {"eval.json", "train_log.jsonl"})
    if (file_exists(join_path(job.out_dir, f))) fs::copy_file(join_path(job.out_dir, f), join_path(data, f), fs::copy_options::overwrite_existing);
  std::printf("training job: model in %s/model\n", job.root.c_str());
}

void write_job_failure(const std::string& reason) {
  if (std::getenv("WORLD_SIZE")) return;  // a rank that --nproc started: the launcher reports the job's end
  try {
    std::string dir = join_path(job_root(), "output");
    make_dirs(dir);
    write_file_atomic(join_path(dir, "failure"), reason + "\n");
  } catch (const std::exception&) {
    // The job fails either way; its log has the reason.
  }
}

}  // namespace tailor
