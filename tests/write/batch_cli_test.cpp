// tailor-test: base
// tailor-test: runs-tailor
// `tailor describe --batch` as a real process against the simulated services of batch_mocks.h:
// SIGKILL it while its job runs, start it again with the same arguments, and check that it picks up
// the same job (no second upload or job), joins its output, and that --retry-failed then describes
// the failed records on demand: every product exactly once. Bedrock (S3 + control plane, every
// request's SigV4 checked) and OpenAI. Also --estimate-only's arithmetic against a price table.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "batch_mocks.h"
#include "test_util.h"
#include "util/fs.h"

using namespace tailor;
using json = nlohmann::json;

static const char* kKeyId = "AKIDBATCHCLI00001";
static const char* kSecret = "cliBatchSecret/Key+abcdefABCDEF012345";
static const char* kOpenAIKey = "sk-batch-cli-key-98765";
static const int kProducts = 120;

static std::vector<std::string> lines_of(const std::string& path) { return test::file_lines(path); }

static std::string describe_cmd(const std::string& out, const std::string& extra) {
  return test::tailor_bin() + " describe --catalog " + test::fashion_catalog() +
         " --attributes-from catalog --article-types Shirts --limit " + std::to_string(kProducts) + " --output " + out +
         " --batch --batch-poll 0.02 --retries 3 -q " + extra;
}

static pid_t start(const std::string& cmd, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + cmd + " > " + log + " 2>&1").c_str(), (char*)nullptr);
    _exit(127);
  }
  return pid;
}

// Waits (up to 60 s) until `ready` holds, checked under the server's lock.
static bool wait_for(mock::Server& s, const std::function<bool()>& ready) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard<std::mutex> lock(s.mu);
      if (ready()) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

static void kill_and_reap(pid_t pid, const std::string& log) {
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << read_file(log);
}

// Every product of the run once, no half lines.
static std::set<std::string> ids_once(const std::string& out) {
  std::set<std::string> ids;
  for (const auto& l : lines_of(out)) {
    json j = json::parse(l);
    EXPECT_TRUE(ids.insert(j["id"].get<std::string>()).second) << "duplicate " << j["id"];
    EXPECT_EQ(j["description"].get<std::string>().rfind("Described: ", 0), 0u) << l;
  }
  return ids;
}

static int failing_records(int n) {
  int f = 0;
  for (int i = 1; i <= n; ++i) f += mock::record_fails(i);
  return f;
}

static void expect_no_secret(const std::string& text) {
  for (const char* s : {kKeyId, kSecret, kOpenAIKey}) EXPECT_EQ(text.find(s), std::string::npos) << text;
}

TEST(BatchCli, KilledBedrockRunPicksUpItsJobAndEndsWithEveryProductOnce) {
  mock::clear_env();
  setenv("AWS_ACCESS_KEY_ID", kKeyId, 1);
  setenv("AWS_SECRET_ACCESS_KEY", kSecret, 1);
  setenv("AWS_REGION", "us-west-2", 1);
  mock::S3 s3(kKeyId, kSecret, "us-west-2");
  mock::BedrockControl bedrock(s3, kKeyId, kSecret, "us-west-2");
  bedrock.in_progress_polls = 1000000;  // runs until the test lets it finish
  bedrock.throttle_every = 5;
  setenv("AWS_ENDPOINT_URL_S3", s3.server.url().c_str(), 1);
  setenv("AWS_ENDPOINT_URL_BEDROCK", bedrock.server.url().c_str(), 1);
  mock::Server runtime;  // Converse, for --retry-failed
  runtime.check = [](const httplib::Request& r) { return mock::verify_sigv4(r, kKeyId, kSecret, "us-west-2", "bedrock"); };
  runtime.respond = [](const httplib::Request& r) {
    std::string user = json::parse(r.body)["messages"][0]["content"][0]["text"];
    return mock::Reply{200, json{{"output", {{"message", {{"content", {{{"text", mock::description_for(user)}}}}}}}},
                                 {"usage", {{"inputTokens", 30}, {"outputTokens", 7}}}}.dump()};
  };
  std::string dir = test::temp_dir("batch-cli-bedrock");
  std::string out = join_path(dir, "d.jsonl");
  std::string cmd = describe_cmd(out, "--writer bedrock --endpoint-url " + runtime.url() +
                                          " --batch-s3 s3://shop-bucket/describe --batch-role-arn "
                                          "arn:aws:iam::123456789012:role/BedrockBatch --s3-path-style");
  std::string log = join_path(dir, "run1.log");
  pid_t pid = start(cmd, log);
  ASSERT_GT(pid, 0);
  // Kill it while the job is InProgress.
  ASSERT_TRUE(wait_for(bedrock.server, [&] { return !bedrock.jobs.empty() && bedrock.jobs.begin()->second.polls >= 5; }))
      << read_file(log);
  kill_and_reap(pid, log);
  std::string arn;
  {
    std::lock_guard<std::mutex> lock(bedrock.server.mu);
    arn = bedrock.jobs.begin()->second.arn;
    EXPECT_EQ(bedrock.jobs.begin()->second.status, "InProgress");
    bedrock.in_progress_polls = bedrock.jobs.begin()->second.polls + 3;
  }
  json state = json::parse(read_file(out + ".batch/state.json"));
  EXPECT_EQ(state["job"]["id"], arn);
  EXPECT_EQ(lines_of(out).size(), 0u);

  test::CmdResult r = test::run_cmd(cmd);
  int failing = failing_records(kProducts);
  EXPECT_EQ(r.status, 1) << r.output;  // the failed records are listed, exit 1
  EXPECT_NE(r.output.find("resuming Bedrock batch inference job " + arn), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--retry-failed"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("estimate: " + std::to_string(kProducts) + " requests"), std::string::npos) << r.output;
  // The job's token counts (the mock's usage.input_tokens 100 + n, output_tokens 50) at the repo's
  // batch price for Claude 3 Sonnet (docs/prices.json: $1.5 / $7.5 per million).
  long long in = 0, out_tokens = 0;
  for (int n = 1; n <= kProducts; ++n)
    if (!mock::record_fails(n)) in += 100 + n, out_tokens += 50;
  EXPECT_NE(r.output.find("tokens used (the API's counts, " + std::to_string(kProducts - failing) + " answers): " +
                          std::to_string(in) + " input, " + std::to_string(out_tokens) + " output"),
            std::string::npos)
      << r.output;
  char cost[64];
  std::snprintf(cost, sizeof cost, "cost of the tokens used: $%.4f at batch prices", in * 1.5 / 1e6 + out_tokens * 7.5 / 1e6);
  EXPECT_NE(r.output.find(cost), std::string::npos) << cost << "\n" << r.output;
  EXPECT_EQ(ids_once(out).size(), static_cast<size_t>(kProducts - failing));
  expect_no_secret(read_file(log) + r.output);

  r = test::run_cmd(cmd + " --retry-failed");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("at on-demand prices"), std::string::npos) << r.output;  // the retries ran on demand
  std::set<std::string> ids = ids_once(out);
  EXPECT_EQ(ids.size(), static_cast<size_t>(kProducts));
  EXPECT_EQ(runtime.count(), static_cast<size_t>(failing));
  std::lock_guard<std::mutex> lock(bedrock.server.mu);
  EXPECT_EQ(bedrock.creates, 1);
  EXPECT_EQ(bedrock.jobs.size(), 1u);
  EXPECT_TRUE(s3.server.problems.empty()) << s3.server.problems.front();
  EXPECT_TRUE(bedrock.server.problems.empty()) << bedrock.server.problems.front();
  EXPECT_TRUE(runtime.problems.empty()) << runtime.problems.front();
  expect_no_secret(r.output);
  mock::clear_env();
}

TEST(BatchCli, KilledOpenAIRunPicksUpItsBatchAndEndsWithEveryProductOnce) {
  mock::clear_env();
  setenv("OPENAI_API_KEY", kOpenAIKey, 1);
  mock::OpenAIBatches api(kOpenAIKey);
  api.in_progress_polls = 1000000;
  std::string dir = test::temp_dir("batch-cli-openai");
  std::string out = join_path(dir, "d.jsonl");
  std::string cmd = describe_cmd(out, "--writer openai --base-url " + api.server.url() + "/v1");
  std::string log = join_path(dir, "run1.log");
  pid_t pid = start(cmd, log);
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(wait_for(api.server, [&] { return !api.batches.empty() && api.batches.begin()->second.polls >= 5; }))
      << read_file(log);
  kill_and_reap(pid, log);
  {
    std::lock_guard<std::mutex> lock(api.server.mu);
    EXPECT_EQ(api.batches.begin()->second.status, "in_progress");
    api.in_progress_polls = api.batches.begin()->second.polls + 2;
  }
  api.server.respond = [&api](const httplib::Request& r) {
    if (r.path == "/v1/chat/completions") {
      std::string user = json::parse(r.body)["messages"][1]["content"];
      return mock::Reply{200, json{{"choices", {{{"message", {{"content", mock::description_for(user)}}}}}},
                                   {"usage", {{"prompt_tokens", 11}, {"completion_tokens", 3}}}}.dump()};
    }
    return api.handle(r);
  };
  test::CmdResult r = test::run_cmd(cmd);
  int failing = failing_records(kProducts);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("resuming OpenAI Batch API job batch_1"), std::string::npos) << r.output;
  EXPECT_EQ(ids_once(out).size(), static_cast<size_t>(kProducts - failing));
  r = test::run_cmd(cmd + " --retry-failed");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(ids_once(out).size(), static_cast<size_t>(kProducts));
  std::lock_guard<std::mutex> lock(api.server.mu);
  EXPECT_EQ(api.creates, 1);
  EXPECT_EQ(api.uploads, 1);
  EXPECT_TRUE(api.server.problems.empty()) << api.server.problems.front();
  expect_no_secret(read_file(log) + r.output);
  mock::clear_env();
}

TEST(BatchCli, EstimateOnlyPrintsTokensAndBothPricesAndCallsNothing) {
  mock::clear_env();  // no credentials: the estimate needs none
  std::string dir = test::temp_dir("batch-cli-estimate");
  std::string prices = join_path(dir, "prices.json");
  write_file_atomic(prices, R"({"read_on": "2026-11-30", "source": "test", "models": [
    {"writer": "bedrock", "model": "anthropic.claude-3-sonnet-20240229-v1:0", "input": 4.0, "output": 20.0, "batch_input": 2.0, "batch_output": 10.0}]})");
  test::CmdResult r = test::run_cmd(test::tailor_bin() + " describe --catalog " + test::fashion_catalog() +
                                    " --attributes-from catalog --article-types Shirts --limit 50 --writer bedrock"
                                    " --max-tokens 300 --estimate-only --prices " + prices + " -o " + join_path(dir, "d.jsonl"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("estimate: 50 requests"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("output tokens <= 15000"), std::string::npos) << r.output;
  size_t at = r.output.find("input tokens  ~");
  ASSERT_NE(at, std::string::npos) << r.output;
  long long in = std::stoll(r.output.substr(at + 15));
  // The prompts are the default system prompt and template around "Name: value, ..." (~100-200
  // characters of facts each), 4 characters a token.
  EXPECT_GT(in, 50 * 100);
  EXPECT_LT(in, 50 * 250);
  char want[200];
  std::snprintf(want, sizeof want, "on demand: input $%.4f, at most $%.4f", in * 4.0 / 1e6, in * 4.0 / 1e6 + 15000 * 20.0 / 1e6);
  EXPECT_NE(r.output.find(want), std::string::npos) << want << "\n" << r.output;
  std::snprintf(want, sizeof want, "batch:     input $%.4f, at most $%.4f", in * 2.0 / 1e6, in * 2.0 / 1e6 + 15000 * 10.0 / 1e6);
  EXPECT_NE(r.output.find(want), std::string::npos) << want << "\n" << r.output;
  EXPECT_FALSE(file_exists(join_path(dir, "d.jsonl")));
}
