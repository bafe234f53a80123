// tailor-test: base
// tailor-test: runs-tailor
// `tailor describe` as a real process: SIGKILL it mid-run, run it again, and check that nothing is
// lost, duplicated or half-written; and that no secret (AWS keys, session token, Bedrock API key,
// OpenAI key) appears in the output or logs of succeeding and failing runs. Writers talk to mock
// servers on 127.0.0.1 only.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "mock_server.h"
#include "test_util.h"
#include "util/fs.h"

using namespace tailor;

static std::vector<std::string> lines_of(const std::string& path) { return test::file_lines(path); }

// The first n Shirts ids, straight from styles.csv.
static std::vector<std::string> first_shirt_ids(size_t n) {
  std::vector<std::string> ids;
  auto lines = lines_of(join_path(test::fashion_catalog(), "styles.csv"));
  for (size_t i = 1; i < lines.size() && ids.size() < n; ++i) {
    std::string l = lines[i];
    std::vector<std::string> f;
    size_t s = 0;
    for (size_t c; (c = l.find(',', s)) != std::string::npos; s = c + 1) f.push_back(l.substr(s, c - s));
    if (f.size() > 4 && f[4] == "Shirts") ids.push_back(f[0]);
  }
  return ids;
}

static std::string chat_reply(const std::string& text) {
  return nlohmann::json{{"choices", {{{"message", {{"role", "assistant"}, {"content", text}}}}}}}.dump();
}

static std::string describe_cmd(const std::string& out, const std::string& extra) {
  return test::tailor_bin() + " describe --catalog " + test::fashion_catalog() +
         " --attributes-from catalog --article-types Shirts --limit 40 --output " + out + " " + extra;
}

TEST(DescribeCli, KilledRunResumesWithoutLossDuplicatesOrHalfLines) {
  mock::clear_env();
  setenv("OPENAI_API_KEY", "sk-resume-test-key", 1);
  mock::Server llm;
  llm.script = {{200, chat_reply("A shirt worth wearing."), {}, 40}};  // 40 ms per description
  std::string dir = test::temp_dir("cli-resume");
  std::string out = join_path(dir, "d.jsonl");
  std::string log = join_path(dir, "run1.log");
  std::string cmd = describe_cmd(out, "--writer openai --base-url " + llm.url() + "/v1 --concurrency 2");

  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + cmd + " > " + log + " 2>&1").c_str(), (char*)nullptr);
    _exit(127);
  }
  // Kill it once some products are written, well before the end.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (lines_of(out).size() < 8 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << read_file(log);
  std::string after_kill = read_file(out);
  ASSERT_FALSE(after_kill.empty());
  EXPECT_EQ(after_kill.back(), '\n');  // whole lines only
  auto killed_lines = lines_of(out);
  ASSERT_GE(killed_lines.size(), 8u);
  ASSERT_LT(killed_lines.size(), 40u) << "the run finished before it was killed; the test proves nothing";
  for (const auto& l : killed_lines) EXPECT_FALSE(nlohmann::json::parse(l, nullptr, false).is_discarded()) << l;
  size_t requests_before = llm.count();

  test::CmdResult r = test::run_cmd(cmd);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find(std::to_string(killed_lines.size()) + " skipped"), std::string::npos) << r.output;
  auto final_lines = lines_of(out);
  std::vector<std::string> want = first_shirt_ids(40);
  ASSERT_EQ(final_lines.size(), want.size());
  std::set<std::string> ids;
  for (const auto& l : final_lines) {
    auto j = nlohmann::json::parse(l);
    EXPECT_TRUE(ids.insert(j["id"].get<std::string>()).second) << "duplicate " << j["id"];
    EXPECT_EQ(j["description"], "A shirt worth wearing.");
    EXPECT_EQ(j["writer"], "openai");
  }
  EXPECT_EQ(ids, std::set<std::string>(want.begin(), want.end()));
  // Only products not yet written were asked for again (plus at most the 2 in flight at the kill).
  EXPECT_EQ(llm.count() - requests_before, 40 - killed_lines.size());
  EXPECT_LE(requests_before, killed_lines.size() + 2);

  // A torn last line (a crash inside a write) is dropped, reported and redone.
  std::string text = read_file(out);
  size_t cut = text.rfind('\n', text.size() - 2) + 1;
  std::string last_id = nlohmann::json::parse(text.substr(cut))["id"];
  write_file_atomic(out, text.substr(0, cut) + text.substr(cut, 30));
  r = test::run_cmd(cmd + " --csv " + join_path(dir, "d.csv"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("dropped a partial last line"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("1 written, 39 skipped"), std::string::npos) << r.output;
  EXPECT_EQ(lines_of(out).size(), 40u);
  EXPECT_EQ(nlohmann::json::parse(lines_of(out).back())["id"], last_id);
  EXPECT_EQ(lines_of(join_path(dir, "d.csv")).size(), 41u);
  mock::clear_env();
}

TEST(DescribeCli, SecondRunOnTheSameOutputIsRefusedWhileTheFirstRuns) {
  mock::clear_env();
  setenv("OPENAI_API_KEY", "sk-lock-test-key", 1);
  mock::Server llm;
  // 150 ms per description, one at a time: the first run lasts ~6 s, long enough for the second to
  // start and reach the lock on a loaded machine.
  llm.script = {{200, chat_reply("A shirt worth wearing."), {}, 150}};
  std::string dir = test::temp_dir("cli-lock");
  std::string out = join_path(dir, "d.jsonl");
  std::string log = join_path(dir, "first.log");
  std::string cmd = describe_cmd(out, "--writer openai --base-url " + llm.url() + "/v1 --concurrency 1");
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + cmd + " > " + log + " 2>&1").c_str(), (char*)nullptr);
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (lines_of(out).size() < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_GE(lines_of(out).size(), 2u) << read_file(log);
  test::CmdResult second = test::run_cmd(cmd);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_file(log);
  EXPECT_NE(second.status, 0) << second.output;
  EXPECT_NE(second.output.find("another tailor describe is writing " + out), std::string::npos) << second.output;
  EXPECT_NE(second.output.find("(pid " + std::to_string(pid) + ")"), std::string::npos) << second.output;
  // The first run wrote every product once; the second wrote nothing.
  std::set<std::string> ids;
  for (const auto& l : lines_of(out)) EXPECT_TRUE(ids.insert(nlohmann::json::parse(l)["id"].get<std::string>()).second) << l;
  EXPECT_EQ(ids.size(), 40u);
  EXPECT_EQ(llm.count(), 40u);
  // describe -o on another kind of file (prepare's pairs) is refused and leaves it alone.
  std::string pairs = join_path(dir, "train.jsonl");
  std::string text = R"({"id":"15970","image":"i.jpg","attribute":"a","question":"q","prompt":"p","answer":"x","value":"v"})" "\n";
  write_file_atomic(pairs, text);
  test::CmdResult foreign = test::run_cmd(describe_cmd(pairs, "--writer offline"));
  EXPECT_NE(foreign.status, 0) << foreign.output;
  EXPECT_NE(foreign.output.find("train.jsonl:1: not a describe record"), std::string::npos) << foreign.output;
  EXPECT_EQ(read_file(pairs), text);
  mock::clear_env();
}

TEST(DescribeCli, BadFlagsSayWhatIsWrong) {
  test::CmdResult r = test::run_cmd(test::tailor_bin() + " describe --catalog /nonexistent/cat --output /tmp/x.jsonl");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--attributes-from catalog or --model"), std::string::npos) << r.output;
  r = test::run_cmd(test::tailor_bin() + " describe --catalog /nonexistent/cat --attributes-from catalog -o " +
                    join_path(test::temp_dir("bad"), "o.jsonl"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("--catalog /nonexistent/cat: no such file or directory"), std::string::npos) << r.output;
  r = test::run_cmd(test::tailor_bin() + " describe --catalog " + test::fashion_catalog() +
                    " --attributes-from catalog --writer poet -o " + join_path(test::temp_dir("bad2"), "o.jsonl"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("unknown writer \"poet\""), std::string::npos) << r.output;
}

// --- secrets ---------------------------------------------------------------------------------

static const char* kSecrets[] = {"AKIDLEAKCHECK7777", "leakCheckSecretKey/+abc0123456789XYZ", "LeakCheckSessionToken//zz==",
                                 "ABSKleakCheckBedrockApiKey42", "sk-leakcheck-openai-key-999"};

static void set_all_secrets() {
  mock::clear_env();
  setenv("AWS_ACCESS_KEY_ID", kSecrets[0], 1);
  setenv("AWS_SECRET_ACCESS_KEY", kSecrets[1], 1);
  setenv("AWS_SESSION_TOKEN", kSecrets[2], 1);
  setenv("OPENAI_API_KEY", kSecrets[4], 1);
  setenv("AWS_REGION", "us-east-1", 1);
}

static void expect_clean(const std::string& what, const std::string& text) {
  for (const char* s : kSecrets) EXPECT_EQ(text.find(s), std::string::npos) << what << " leaks " << s << ":\n" << text;
}

struct DescribeRun {
  std::string output, files;
  int status;
};

static DescribeRun run_describe(const std::string& name, const std::string& writer_flags) {
  std::string dir = test::temp_dir("secrets-" + name);
  std::string out = join_path(dir, "d.jsonl"), csv = join_path(dir, "d.csv");
  test::CmdResult r = test::run_cmd(test::tailor_bin() + " describe --catalog " + test::fashion_catalog() +
                                    " --attributes-from catalog --article-types Shirts --limit 3 --retries 2 -o " + out +
                                    " --csv " + csv + " " + writer_flags);
  DescribeRun run{r.output, "", r.status};
  if (file_exists(out)) run.files += read_file(out);
  if (file_exists(csv)) run.files += read_file(csv);
  return run;
}

TEST(DescribeCli, NoSecretInAnyOutputOfBedrockRuns) {
  set_all_secrets();
  // Failing mocks play a hostile endpoint that echoes back every secret the process holds.
  std::string echo_set;  // all but the Bedrock API key, which is set later
  for (int i : {0, 1, 2, 4}) echo_set += std::string(kSecrets[i]) + " ";
  std::string echo_all = echo_set + kSecrets[3] + " ";

  mock::Server ok;
  ok.script = {{200, R"({"content":[{"type":"text","text":"Signed and fine."}]})"}};
  ok.check = [](const httplib::Request& r) {
    return mock::verify_sigv4(r, kSecrets[0], kSecrets[1], "us-east-1", "bedrock");
  };
  // InvokeModel's answer shape (the Converse default has its own tests in bedrock_writer_test.cpp).
  DescribeRun r = run_describe("bedrock-ok", "--writer bedrock --bedrock-api invoke --endpoint-url " + ok.url());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.files.find("Signed and fine."), std::string::npos);
  EXPECT_TRUE(ok.problems.empty()) << ok.problems[0];
  expect_clean("bedrock success", r.output + r.files);

  mock::Server denied;
  denied.script = {{403, R"({"message":"You don't have access to the model. )" + echo_set + R"("})",
                    {{"x-amzn-ErrorType", "AccessDeniedException"}}}};
  r = run_describe("bedrock-denied", "--writer bedrock --endpoint-url " + denied.url());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("access denied"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("3 failed"), std::string::npos) << r.output;
  expect_clean("bedrock access denied", r.output + r.files);

  mock::Server throttled;
  throttled.script = {{429, R"({"message":"Too many requests )" + echo_set + R"("})",
                       {{"x-amzn-ErrorType", "ThrottlingException"}}}};
  r = run_describe("bedrock-throttled", "--writer bedrock --endpoint-url " + throttled.url());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("retrying"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("after 3 attempts"), std::string::npos) << r.output;
  expect_clean("bedrock throttled", r.output + r.files);

  setenv("AWS_BEARER_TOKEN_BEDROCK", kSecrets[3], 1);
  mock::Server bearer;
  bearer.script = {{401, R"({"message":"Invalid API key )" + echo_all + R"("})"}};
  r = run_describe("bedrock-bearer", "--writer bedrock --endpoint-url " + bearer.url());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("AWS_BEARER_TOKEN_BEDROCK"), std::string::npos) << r.output;
  expect_clean("bedrock api key rejected", r.output + r.files);
  mock::clear_env();
}

TEST(DescribeCli, NoSecretInAnyOutputOfOpenAIRuns) {
  set_all_secrets();
  setenv("AWS_BEARER_TOKEN_BEDROCK", kSecrets[3], 1);
  std::string echo_all;  // the failing mock echoes back every secret the process holds
  for (const char* s : kSecrets) echo_all += std::string(s) + " ";

  mock::Server oai;
  oai.script = {{200, chat_reply("Fine from openai.")}};
  DescribeRun r = run_describe("openai-ok", "--writer openai --base-url " + oai.url() + "/v1");
  EXPECT_EQ(r.status, 0) << r.output;
  expect_clean("openai success", r.output + r.files);

  mock::Server oai_bad;
  oai_bad.script = {{401, R"({"error":{"message":"Incorrect API key provided: )" + echo_all + R"("}})"}};
  r = run_describe("openai-401", "--writer openai --base-url " + oai_bad.url() + "/v1");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("API key was rejected"), std::string::npos) << r.output;
  expect_clean("openai key rejected", r.output + r.files);

  int closed_port;
  {
    mock::Server tmp;
    closed_port = tmp.port;
  }
  r = run_describe("openai-refused", "--writer openai --base-url http://127.0.0.1:" + std::to_string(closed_port) + "/v1");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("cannot connect"), std::string::npos) << r.output;
  expect_clean("openai connection refused", r.output + r.files);
  mock::clear_env();
}
