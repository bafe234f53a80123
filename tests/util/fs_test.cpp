// tailor-test: base
#include <gtest/gtest.h>

#include <filesystem>

#include "test_util.h"
#include "util/error.h"
#include "util/fs.h"

using namespace tailor;

TEST(Fs, AtomicWriteReplacesWholeFileAndLeavesNoTemp) {
  std::string d = test::temp_dir("fs");
  std::string p = join_path(d, "a.txt");
  write_file_atomic(p, std::string("first"));
  write_file_atomic(p, std::string("second version"));
  EXPECT_EQ(read_file(p), "second version");
  int n = 0;
  for (auto& e : std::filesystem::directory_iterator(d)) { (void)e; ++n; }
  EXPECT_EQ(n, 1);
}

TEST(Fs, ReadMissingFileNamesThePath) {
  try {
    read_file("/nonexistent/dir/x.bin");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/x.bin"), std::string::npos);
  }
}

TEST(Fs, AppendLineDurableKeepsLines) {
  std::string p = join_path(test::temp_dir("fs2"), "l.jsonl");
  append_line_durable(p, "{\"a\":1}");
  append_line_durable(p, "{\"a\":2}");
  EXPECT_EQ(read_file(p), "{\"a\":1}\n{\"a\":2}\n");
}

TEST(Fs, RemoveTreeRemovesNestedDirectoriesWithoutFollowingLinks) {
  namespace sfs = std::filesystem;
  std::string d = test::temp_dir("fs_remove");
  std::string keep = join_path(d, "outside.txt");
  write_file_atomic(keep, std::string("must survive"));
  std::string tree = join_path(d, "tree");
  make_dirs(join_path(tree, "a/b/c"));
  write_file_atomic(join_path(tree, "top.bin"), std::string(1000, 'x'));
  write_file_atomic(join_path(tree, "a/b/c/deep.txt"), std::string("deep"));
  sfs::create_symlink(keep, join_path(tree, "a/link-to-outside"));
  sfs::create_directory_symlink(d, join_path(tree, "a/b/link-to-parent"));
  remove_tree(tree);
  EXPECT_FALSE(sfs::exists(tree));
  EXPECT_EQ(read_file(keep), "must survive");  // links are removed, never followed
  remove_tree(tree);  // already gone: nothing to do
  remove_tree(keep);  // a plain file
  EXPECT_FALSE(sfs::exists(keep));
}
