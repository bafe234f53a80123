#include "test_util.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "util/runtime_env.h"

namespace fs = std::filesystem;

namespace tailor::test {

// Tests run libtorch too: give them the same BLAS/OpenMP settings as the program (see runtime_env.h).
static const bool runtime_env_ready = [] {
  tailor::ensure_runtime_env();
  return true;
}();

std::string repo_root() { return TAILOR_REPO_ROOT; }
std::string tailor_bin() { return TAILOR_BIN; }

std::vector<std::string> file_lines(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  std::string l;
  while (std::getline(in, l)) out.push_back(l);
  return out;
}

std::string shared_dir() {
  fs::path p = fs::path(repo_root()) / ".." / "shared";
  return fs::weakly_canonical(p).string();
}

std::string fashion_catalog() {
  fs::path p = fs::path(shared_dir()) / "data" / "fashion-products";
  if (!fs::exists(p / "styles.csv"))
    throw std::runtime_error("the real catalog is missing: expected " + p.string() +
                             "/styles.csv (../shared beside the repo)");
  return p.string();
}

std::string temp_dir(const std::string& name) {
  const char* base = std::getenv("TMPDIR");
  fs::path p = fs::path(base ? base : "/tmp") /
               ("tailor-test-" + std::to_string(::getpid())) / name;
  fs::remove_all(p);
  fs::create_directories(p);
  static bool registered = false;
  if (!registered) {
    registered = true;
    std::atexit([] {
      const char* b = std::getenv("TMPDIR");
      if (!std::getenv("TAILOR_KEEP_TEST_FILES")) {
        std::error_code ec;
        fs::remove_all(fs::path(b ? b : "/tmp") / ("tailor-test-" + std::to_string(::getpid())), ec);
      }
    });
  }
  return p.string();
}

CmdResult run_cmd(const std::string& cmd) {
  std::string full = cmd + " 2>&1";
  FILE* f = ::popen(full.c_str(), "r");
  if (!f) throw std::runtime_error("popen failed: " + cmd);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), n);
  int st = ::pclose(f);
  int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return {code, out};
}

}  // namespace tailor::test
