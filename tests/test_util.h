// Shared test helpers: where the repo and ../shared are, scratch directories, running the CLI.
#pragma once
#include <string>
#include <vector>

// Builds without Cairo (TAILOR_WITH_CAIRO=OFF, e.g. the GPU machine) cannot draw synthetic photos.
#ifdef TAILOR_WITH_CAIRO
#define REQUIRE_CAIRO()
#else
#define REQUIRE_CAIRO() GTEST_SKIP() << "built without Cairo: tailor synth is not available"
#endif

namespace tailor::test {

std::string repo_root();
// ../shared/data/fashion-products; fails the calling test with a clear message when missing.
std::string fashion_catalog();
std::string shared_dir();
// A fresh empty directory under the build's temp area, removed when the process exits normally.
std::string temp_dir(const std::string& name);
struct CmdResult { int status; std::string output; };
// Runs a shell command, capturing stdout+stderr.
CmdResult run_cmd(const std::string& cmd);
std::string tailor_bin();
// A text file's lines, without their line ends (empty when the file is missing).
std::vector<std::string> file_lines(const std::string& path);

}  // namespace tailor::test
