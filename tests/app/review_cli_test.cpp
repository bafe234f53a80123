// tailor-test: base
// tailor-test: runs-tailor
// `tailor review` as the program: serves the page on a free port, stops on SIGTERM with status 0;
// refuses a login variable that is not set, and a malformed describe line, naming them; the browser
// tests fail (not skip) without chromium.
#include <gtest/gtest.h>
#include <httplib.h>

#include "review_fixture.h"

namespace tailor {
namespace {

TEST(ReviewCli, ServesThePageAndStopsOnSigterm) {
  auto f = test::make_review_files("review_cli_serve");
  std::string log = join_path(f.dir, "cli.log");
  std::string cmd = "exec " + test::tailor_bin() + " review --describe " + f.describe + " --catalog " + f.catalog +
                    " --port 0 2>" + log;
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  std::regex re("listening on http://[^:]+:([0-9]+)");
  int port = -1;
  for (int i = 0; i < 1500 && port < 0; ++i) {
    std::smatch m;
    std::string text = test::slurp_file(log);
    if (std::regex_search(text, m, re)) port = std::stoi(m[1]);
    else std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GT(port, 0) << test::slurp_file(log);
  httplib::Client http("127.0.0.1", port);
  auto page = http.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->body.find("Blue Oxford Shirt"), std::string::npos);
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << test::slurp_file(log);
  EXPECT_TRUE(file_exists(f.describe + ".review.sqlite")) << "the default database sits beside the describe output";
  EXPECT_NE(test::slurp_file(log).find("SIGTERM, stopping"), std::string::npos);
}

TEST(ReviewCli, BadInputsAreNamed) {
  auto f = test::make_review_files("review_cli_bad");
  auto r = test::run_cmd("env -u TAILOR_NO_SUCH_VAR " + test::tailor_bin() + " review --describe " + f.describe +
                         " --auth-token-env TAILOR_NO_SUCH_VAR");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("--auth-token-env TAILOR_NO_SUCH_VAR: the variable is not set or empty"), std::string::npos) << r.output;
  write_file_atomic(f.describe, read_file(f.describe) + "{\"id\":\"9\",\"attributes\":{\"Fit\":\"x\"},\"description\":7}\n");
  r = test::run_cmd(test::tailor_bin() + " review --describe " + f.describe + " --catalog " + f.catalog + " --export " + f.dir);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find(f.describe + ":6: field \"description\" must be a string"), std::string::npos) << r.output;
}

// The browser tests with no chromium to be found: they fail, saying what to install (never a skip).
TEST(ReviewCli, BrowserTestsFailWhenChromiumIsMissing) {
  std::string tests = test::tailor_bin().substr(0, test::tailor_bin().rfind('/')) + "/test_app_review_page";
  ASSERT_TRUE(file_exists(tests)) << tests << " is not built";
  auto r = test::run_cmd("TAILOR_CHROMIUM=/nonexistent/chromium " + tests + " --gtest_filter=ReviewBrowser.PhotoMissingIsSaidOnThePage");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("chromium not found"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("FAILED"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("SKIPPED"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace tailor
