// tailor-test: base
// prepare's outputs are replaced as one set (a new directory swapped in), what a killed run left is
// put right, a directory of other files is never replaced, and inputs must be regular files of
// bounded size.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "catalog/prepare.h"
#include "catalog/synth.h"
#include "test_util.h"
#include "util/error.h"
#include "util/fs.h"

using namespace tailor;
namespace fs = std::filesystem;

namespace {

const std::string& catalog() {
  static std::string dir;
  if (!dir.empty()) return dir;
  dir = test::temp_dir("prepare_output_catalog");
  SynthOptions o;
  o.products = 8;
  o.out_dir = dir;
  o.seed = 4;
  o.progress = false;
  synth_catalog(o);
  return dir;
}

PrepareSummary run(const std::string& out, uint64_t seed = 42) {
  PrepareOptions o;
  o.catalog_dir = catalog();
  o.out_dir = out;
  o.seed = seed;
  o.progress = false;
  o.threads = 1;
  return prepare_catalog(o);
}

}  // namespace

TEST(PrepareOutput, ReplacedAsOneSetAndLeftoversOfAKilledRunPutRight) {
  REQUIRE_CAIRO();
  const std::string out = join_path(test::temp_dir("prepare_output"), "data");
  run(out, 1);
  const std::string first = read_file(join_path(out, "train.jsonl"));
  // A killed run's temporary directory goes; the new set replaces the old one whole.
  make_dirs(out + ".tmp");
  write_file_atomic(join_path(out + ".tmp", ".tailor-prepare"), std::string("marker, written first"));
  write_file_atomic(join_path(out + ".tmp", "train.jsonl"), std::string("half-written"));
  run(out, 2);
  EXPECT_FALSE(fs::exists(out + ".tmp"));
  EXPECT_FALSE(fs::exists(out + ".old"));
  const std::string second = read_file(join_path(out, "train.jsonl"));
  EXPECT_NE(second, first);  // another seed, another split
  for (const char* f : {"val.jsonl", "vqa_train.csv", "vqa_test.csv", "tailor_task.json", "manifest.json"})
    EXPECT_TRUE(file_exists(join_path(out, f))) << f;
  // Killed between the two renames: only <out>.old is there. It is taken back, then replaced.
  fs::rename(out, out + ".old");
  run(out, 1);
  EXPECT_FALSE(fs::exists(out + ".old"));
  EXPECT_EQ(read_file(join_path(out, "train.jsonl")), first);
}

TEST(PrepareOutput, ADirectoryOfOtherFilesIsNeverReplaced) {
  REQUIRE_CAIRO();
  const std::string out = test::temp_dir("prepare_output_foreign");
  write_file_atomic(join_path(out, "notes.txt"), std::string("mine"));
  try {
    run(out);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("holds other files"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_file(join_path(out, "notes.txt")), "mine");
  // Nor is a user's <out>.tmp or <out>.old.
  const std::string data = join_path(out, "data");
  make_dirs(data + ".old");
  write_file_atomic(join_path(data + ".old", "notes.txt"), std::string("mine too"));
  EXPECT_THROW(run(data), Error);
  EXPECT_EQ(read_file(join_path(data + ".old", "notes.txt")), "mine too");
}

TEST(PrepareOutput, InputsMustBeRegularFilesOfBoundedSize) {
  REQUIRE_CAIRO();
  const std::string dir = test::temp_dir("prepare_output_inputs");
  const std::string fifo = join_path(dir, "products.csv");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  PrepareOptions o;
  o.catalog_dir = fifo;
  o.out_dir = join_path(dir, "out");
  o.progress = false;
  try {
    prepare_catalog(o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is not a regular file"), std::string::npos) << e.what();
  }
  // A photo over the size limit is skipped with the limit named.
  o.catalog_dir = catalog();
  o.download.max_bytes = 100;
  PrepareSummary s = prepare_catalog(o);
  ASSERT_FALSE(s.skipped.empty());
  EXPECT_EQ(s.skipped[0].reason, kSkipBadImage);
  EXPECT_NE(s.skipped[0].detail.find("more than the limit of 100"), std::string::npos) << s.skipped[0].detail;
}
