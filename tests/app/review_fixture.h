// Test support for `tailor review`: a five-product catalog (photos, styles.csv with names, one of
// them a <script> tag), the describe output over it (three with confidence, two without, one
// without a photo), and the review server running in a child process (so it can be SIGKILLed).
#pragma once
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "app/review_server.h"
#include "catalog/images.h"
#include "serve/test_images.h"
#include "test_util.h"
#include "util/fs.h"

namespace tailor::test {

inline const char* const kScriptName = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">";

struct ReviewFiles {
  std::string dir, catalog, describe, db;
};


// Queue order by lowest confidence: 102 (0.30), 101 (0.55), 103 (0.72), then 104, 105 (no confidence).
inline ReviewFiles make_review_files(const std::string& name) {
  ReviewFiles f;
  f.dir = temp_dir(name);
  f.catalog = join_path(f.dir, "catalog");
  make_dirs(join_path(f.catalog, "images"));
  std::string csv = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName\n";
  csv += "101,Men,Apparel,Topwear,Shirts,Blue,Fall,2012,Casual,Blue Oxford Shirt\n";
  csv += "102,Men,Apparel,Topwear,Tshirts,Red,Summer,2012,Casual,\"" + std::regex_replace(std::string(kScriptName), std::regex("\""), "\"\"") + "\"\n";
  csv += "103,Men,Apparel,Topwear,Shirts,Green,Summer,2012,Casual,Green Linen Shirt\n";
  csv += "104,Men,Apparel,Topwear,Tshirts,Black,Summer,2012,Casual,Black Tee\n";
  csv += "105,Men,Apparel,Topwear,Shirts,White,Summer,2012,Formal,White Dress Shirt\n";
  write_file_atomic(join_path(f.catalog, "styles.csv"), csv);
  const uint8_t colours[4][3] = {{40, 70, 200}, {200, 30, 30}, {30, 160, 60}, {20, 20, 20}};
  for (int i = 0; i < 4; ++i) {  // 105 has no photo
    auto jpeg = encode_jpeg(solid_image(96, 96, colours[i][0], colours[i][1], colours[i][2]));
    write_file_atomic(join_path(join_path(f.catalog, "images"), std::to_string(101 + i) + ".jpg"), jpeg.data(), jpeg.size());
  }
  std::string lines;
  lines += R"({"id":"101","attributes":{"Sleeve Length":"Long Sleeves","Fit":"Slim Fit","baseColour":"Blue","articleType":"Shirts"},"confidence":{"Sleeve Length":0.91,"Fit":0.55,"baseColour":0.97},"description":"A blue slim shirt.","writer":"offline","model":"offline-v1","attributes_from":"tiny"})" "\n";
  lines += R"({"id":"102","attributes":{"Sleeve Length":"Short Sleeves","Fit":"Regular Fit","baseColour":"Red","articleType":"Tshirts"},"confidence":{"Sleeve Length":0.30,"Fit":0.8,"baseColour":0.9},"description":"Made for <script>window.__pwned=3</script> days.","writer":"offline","model":"offline-v1","attributes_from":"tiny"})" "\n";
  lines += R"({"id":"103","attributes":{"Sleeve Length":"Short Sleeves","Fit":"Regular Fit","baseColour":"Green","articleType":"Shirts"},"confidence":{"Sleeve Length":0.72,"Fit":0.8,"baseColour":0.99},"description":"A green linen shirt.","writer":"offline","model":"offline-v1","attributes_from":"tiny"})" "\n";
  lines += R"({"id":"104","attributes":{"Sleeve Length":"Short Sleeves","Fit":"Regular Fit","baseColour":"Black","articleType":"Tshirts"},"description":"A black tee.","writer":"offline","model":"offline-v1","attributes_from":"catalog"})" "\n";
  lines += R"({"id":"105","attributes":{"Sleeve Length":"Long Sleeves","Fit":"Regular Fit","baseColour":"White","articleType":"Shirts"},"description":"A white dress shirt.","writer":"offline","model":"offline-v1","attributes_from":"catalog"})" "\n";
  f.describe = join_path(f.dir, "descriptions.jsonl");
  write_file_atomic(f.describe, lines);
  f.db = join_path(f.dir, "review.sqlite");
  return f;
}

inline std::string slurp_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// `tailor review` (run_review, as the CLI calls it) in a child process on a free port.
class ReviewProcess {
 public:
  ReviewProcess(const ReviewFiles& f, const std::string& auth_token = "", const std::string& train_log = "") {
    log_ = join_path(f.dir, "review-" + std::to_string(++starts()) + ".log");
    pid_ = fork();
    if (pid_ == 0) {
      ReviewOptions o;
      o.describe_path = f.describe;
      o.db_path = f.db;
      o.photos.catalog_dir = f.catalog;
      o.port = 0;
      o.auth_token = auth_token;
      o.train_log = train_log;
      std::string log = log_;
      o.log = [log](const std::string& line) {
        std::ofstream out(log, std::ios::app);
        out << line << "\n";
      };
      try {
        run_review(o);
      } catch (const std::exception& e) {
        o.log(std::string("error: ") + e.what());
        _exit(1);
      }
      _exit(0);
    }
    std::regex re("listening on http://[^:]+:([0-9]+)");
    for (int i = 0; i < 1000 && port_ < 0; ++i) {
      std::smatch m;
      std::string text = slurp_file(log_);
      if (std::regex_search(text, m, re)) port_ = std::stoi(m[1]);
      else if (waitpid(pid_, nullptr, WNOHANG) == pid_) throw std::runtime_error("tailor review exited: " + text);
      else std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (port_ < 0) throw std::runtime_error("tailor review did not start: " + slurp_file(log_));
  }
  ~ReviewProcess() { stop(SIGTERM); }

  // Ends the server: SIGTERM (graceful) or SIGKILL (nothing runs after it).
  void stop(int signal_number) {
    if (pid_ <= 0) return;
    kill(pid_, signal_number);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  int port() const { return port_; }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  std::string log() const { return slurp_file(log_); }

 private:
  static int& starts() {
    static int n = 0;
    return n;
  }
  pid_t pid_ = -1;
  int port_ = -1;
  std::string log_;
};

// The version a product page shows (its hidden form field).
inline int64_t page_version(const std::string& html) {
  std::smatch m;
  if (!std::regex_search(html, m, std::regex("name=\"version\" value=\"([0-9]+)\""))) return -1;
  return std::stoll(m[1]);
}

}  // namespace tailor::test
