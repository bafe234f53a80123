// tailor-test: base
// `tailor package`: the archive a model directory becomes is read back by GNU tar (the independent
// reader): every file at the archive's root with its bytes, nested directories, a name over ustar's
// 100 bytes (a pax record), a linked file stored as the file it points to; gzip -t accepts the
// stream; the same directory gives the same bytes; a directory that is not a model is refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "test_util.h"
#include "util/fs.h"

namespace fs = std::filesystem;
using namespace tailor;
using test::run_cmd;

namespace {

std::string make_model(const std::string& dir) {
  make_dirs(dir + "/adapter");
  write_file_atomic(dir + "/config.json", "{\"model_type\": \"blip-2\"}\n");
  write_file_atomic(dir + "/spiece.model", std::string("\x0a\x05piece\x00\xff", 9));
  std::string weights(200000, '\0');
  for (size_t i = 0; i < weights.size(); ++i) weights[i] = static_cast<char>((i * 7919) % 251);
  write_file_atomic(dir + "/model.safetensors", weights);
  write_file_atomic(dir + "/adapter/adapter_config.json", "{\"r\": 8}\n");
  std::string long_name = dir + "/adapter/" + std::string(120, 'n') + ".json";
  write_file_atomic(long_name, "{}\n");
  write_file_atomic(dir + "/../elsewhere.txt", "linked\n");
  fs::create_symlink(fs::absolute(dir + "/../elsewhere.txt"), dir + "/tailor_task.json");
  return dir;
}

}  // namespace

TEST(Package, GnuTarReadsBackEveryFile) {
  std::string root = test::temp_dir("package");
  std::string model = make_model(root + "/model");
  auto r = run_cmd(test::tailor_bin() + " package --model " + model + " -o " + root + "/model.tar.gz");
  ASSERT_EQ(r.status, 0) << r.output;
  auto check = run_cmd("gzip -t " + root + "/model.tar.gz && mkdir -p " + root + "/x && tar -xzf " + root +
                       "/model.tar.gz -C " + root + "/x && tar -tzf " + root + "/model.tar.gz");
  ASSERT_EQ(check.status, 0) << check.output;
  EXPECT_NE(check.output.find("config.json\n"), std::string::npos) << check.output;
  EXPECT_NE(check.output.find("adapter/\n"), std::string::npos) << check.output;
  for (const char* f : {"config.json", "spiece.model", "model.safetensors", "adapter/adapter_config.json"})
    EXPECT_TRUE(read_file(root + "/x/" + f) == read_file(model + "/" + f)) << f;
  std::string long_rel = "adapter/" + std::string(120, 'n') + ".json";
  EXPECT_EQ(read_file(root + "/x/" + long_rel), "{}\n");
  EXPECT_FALSE(fs::is_symlink(root + "/x/tailor_task.json"));
  EXPECT_EQ(read_file(root + "/x/tailor_task.json"), "linked\n");
  // Deterministic.
  auto again = run_cmd(test::tailor_bin() + " package --model " + model + " -o " + root + "/again.tar.gz");
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_TRUE(read_file(root + "/model.tar.gz") == read_file(root + "/again.tar.gz"));
}

TEST(Package, RefusesWhatIsNotAModel) {
  std::string root = test::temp_dir("package_bad");
  make_dirs(root + "/empty");
  auto r = run_cmd(test::tailor_bin() + " package --model " + root + "/empty -o " + root + "/m.tar.gz");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("has no config.json"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(root + "/m.tar.gz"));
}
