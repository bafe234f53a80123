// `tailor serve` end to end: the real binary, the real tiny model (`tailor init --preset tiny`),
// HTTP on loopback, SIGTERM. (Not a base test: it needs the tailor binary built.)
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "core/attributes.h"
#include "serve/base64.h"
#include "test_util.h"
#include "util/fs.h"
#include "write/writer.h"

namespace tailor {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

struct Process {
  pid_t pid = -1;
  std::string log;  // its stderr
};

// Starts `tailor serve <args>` with stderr into a file; the server picks a free port (--port 0).
Process start_serve(const std::string& args, const std::string& dir) {
  Process p;
  p.log = dir + "/serve.log";
  std::string cmd = "exec " + test::tailor_bin() + " serve " + args + " 2>" + p.log + " >/dev/null";
  p.pid = fork();
  if (p.pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return p;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Waits for the "listening on http://host:PORT" line; -1 if the process ended first.
int wait_port(const Process& p) {
  std::regex re("listening on http://[^:]+:([0-9]+)");
  for (int i = 0; i < 600; ++i) {
    std::smatch m;
    std::string log = slurp(p.log);
    if (std::regex_search(log, m, re)) return std::stoi(m[1]);
    int status;
    if (waitpid(p.pid, &status, WNOHANG) == p.pid) return -1;
    std::this_thread::sleep_for(50ms);
  }
  return -1;
}

int wait_exit(pid_t pid) {
  for (int i = 0; i < 600; ++i) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(50ms);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -1;
}

TEST(ServeCli, TinyModelEndToEndAndSigtermFinishesInFlight) {
  std::string dir = test::temp_dir("serve_cli");
  std::string model = dir + "/model";
  auto init = test::run_cmd(test::tailor_bin() + " init --preset tiny --out " + model);
  ASSERT_EQ(init.status, 0) << init.output;
  TaskInfo task = load_task_info(model);  // what the model directory says it was trained on

  Process p = start_serve("--model " + model + " --port 0 --max-wait-ms 20 --writer offline", dir);
  int port = wait_port(p);
  ASSERT_GT(port, 0) << slurp(p.log);
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(60, 0);
  bool ready = false;
  for (int i = 0; i < 600 && !ready; ++i) {
    auto r = c.Get("/ping");
    ready = r && r->status == 200;
    if (!ready) std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(ready) << slurp(p.log);

  // No prompt: every attribute of the model directory comes back, in its order (a few tokens each,
  // to keep the test fast; raw image bodies are covered by server_test).
  std::string jpeg = read_file(test::fashion_catalog() + "/images/10000.jpg");
  std::string image = encode_base64(reinterpret_cast<const uint8_t*>(jpeg.data()), jpeg.size());
  auto r = c.Post("/invocations", json{{"image", image}, {"parameters", {{"max_new_tokens", 3}}}}.dump(),
                  "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  nlohmann::ordered_json all = nlohmann::ordered_json::parse(r->body);
  ASSERT_EQ(all.size(), task.attributes.size() + 1) << r->body;
  size_t i = 0;
  for (auto it = all.begin(); it != all.end() && i < task.attributes.size(); ++it, ++i)
    EXPECT_EQ(it.key(), task.attributes[i].name);
  for (const auto& a : task.attributes) {
    EXPECT_TRUE(all[a.name].is_string()) << a.name;
    EXPECT_TRUE(all["generated_text"][a.name].is_string()) << a.name;
  }

  // /describe with the offline writer: the description is the writer's text for the attributes
  // the server reports (known ones kept, the rest predicted).
  r = c.Post("/describe",
             json{{"image", image}, {"attributes", {{"Brand", "Acme"}}}, {"parameters", {{"max_new_tokens", 3}}}}.dump(),
             "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json described = json::parse(r->body);
  EXPECT_EQ(described["attributes"]["Brand"], "Acme");
  ProductAttributes list;
  for (auto it = described["attributes"].begin(); it != described["attributes"].end(); ++it)
    list.push_back({it.key(), it.value().get<std::string>()});  // json objects iterate sorted, as std::map
  EXPECT_EQ(list.size(), task.attributes.size() + 1);
  EXPECT_EQ(described.value("description", ""), offline_description(list));

  // Requests in flight when SIGTERM arrives still get their answers; then the process exits 0.
  // Forced to 16 tokens so they stay in flight long enough to be seen in /metrics.
  const AttributeSpec& sleeve = task.attributes.at(0);
  std::string body = json{{"image", image},
                          {"prompt", sleeve.question},
                          {"parameters", {{"max_new_tokens", 16}, {"min_new_tokens", 16}}}}
                         .dump();
  std::vector<int> statuses(4, -1);
  std::vector<std::string> bodies(4);
  std::vector<std::thread> clients;
  for (int k = 0; k < 4; ++k)
    clients.emplace_back([&, k] {
      httplib::Client ck("127.0.0.1", port);
      ck.set_read_timeout(60, 0);
      auto rk = ck.Post("/invocations", body, "application/json");
      if (rk) {
        statuses[k] = rk->status;
        bodies[k] = rk->body;
      }
    });
  // Wait until the server holds all four (the metrics request is the fifth in flight).
  double in_flight = 0;
  for (int i = 0; i < 10000 && in_flight < 5; ++i) {
    auto m = c.Get("/metrics");
    std::string text = m ? m->body : "";
    size_t at = text.find("\ntailor_requests_in_flight ");
    in_flight = at == std::string::npos ? 0 : std::atof(text.c_str() + at + 27);
    if (in_flight < 5) std::this_thread::sleep_for(2ms);
  }
  EXPECT_GE(in_flight, 5) << "the four requests were never in flight together";
  kill(p.pid, SIGTERM);
  for (auto& t : clients) t.join();
  int code = wait_exit(p.pid);
  std::string log = slurp(p.log);
  EXPECT_EQ(code, 0) << log;
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(statuses[k], 200) << k << " " << log;
    if (statuses[k] == 200) EXPECT_TRUE(json::parse(bodies[k])[sleeve.name].is_string()) << bodies[k];
  }
  EXPECT_NE(log.find("SIGTERM, finishing requests in flight"), std::string::npos) << log;
  // One JSON log line per request: ping(s), all attributes, describe, the four prompts.
  int invocations = 0;  // (the /metrics polls are logged too)
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] != '{') continue;
    json j = json::parse(line);
    if (j["path"] == "/invocations") {
      ++invocations;
      EXPECT_EQ(j["status"], 200);
    }
  }
  EXPECT_EQ(invocations, 5) << log;
}

TEST(ServeCli, MissingModelExitsWithClearError) {
  std::string dir = test::temp_dir("serve_cli_missing");
  Process p = start_serve("--model " + dir + "/no-such-model --port 0", dir);
  int code = wait_exit(p.pid);
  std::string log = slurp(p.log);
  EXPECT_NE(code, 0) << log;
  EXPECT_NE(log.find("cannot load the model " + dir + "/no-such-model"), std::string::npos) << log;
}

TEST(ServeCli, BadSettingsFailAtStart) {
  auto r = test::run_cmd("SAGEMAKER_BIND_TO_PORT=http " + test::tailor_bin() + " serve --model /nonexistent");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("SAGEMAKER_BIND_TO_PORT=\"http\" is not a port number"), std::string::npos) << r.output;
  r = test::run_cmd("env -u TAILOR_TEST_UNSET_KEY " + test::tailor_bin() +
                    " serve --model /nonexistent --port 0 --writer openai --api-key-env TAILOR_TEST_UNSET_KEY");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("TAILOR_TEST_UNSET_KEY"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace tailor
