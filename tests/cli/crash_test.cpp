// tailor-test: base
// A crash names itself (util/crash.h): the real program, sent SIGSEGV while it works, prints the
// signal and a stack trace to stderr and still dies of SIGSEGV (so its exit status is as without
// the handler).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "test_util.h"
#include "util/fs.h"

using namespace tailor;

TEST(Crash, FatalSignalPrintsStackAndKeepsTheSignal) {
#ifndef TAILOR_WITH_CAIRO
  GTEST_SKIP() << "built without Cairo: the test keeps tailor busy with tailor synth";
#endif
  std::string dir = test::temp_dir("crash");
  std::string err = dir + "/stderr.txt";
  std::string bin = test::tailor_bin();
  // Something that runs for a while: synthesizing a large catalog (the handler is installed first
  // thing in main, after the runtime-environment re-exec, which keeps the pid).
  std::string out = dir + "/catalog";
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 2);
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::execl(bin.c_str(), bin.c_str(), "synth", "--products", "200000", "--threads", "1", "--out", out.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ASSERT_GT(pid, 0);
  // Wait until synth has made its output directory (so main has long installed the handler), not a
  // fixed time: on a loaded machine the program may not have started yet after a second or two.
  for (int i = 0; i < 600 && !std::filesystem::exists(out); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(std::filesystem::exists(out)) << "tailor synth did not start within 60 s\n" << read_file(err);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ::kill(pid, SIGSEGV);
  int st = 0;
  ::waitpid(pid, &st, 0);
  std::string text = read_file(err);
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV) << "status " << st << "\n" << text;
  EXPECT_NE(text.find("tailor: fatal signal 11 (Segmentation fault)"), std::string::npos) << text;
  EXPECT_NE(text.find("stack:"), std::string::npos) << text;
  EXPECT_NE(text.find("libc.so"), std::string::npos) << text;  // the frames are named by library
}
