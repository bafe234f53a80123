// The catalog commands through the real program: flags, printed summary, exit status.
#include <gtest/gtest.h>

#include <filesystem>

#include "catalog/dataset.h"
#include "test_util.h"
#include "util/fs.h"

using namespace tailor;
namespace fs = std::filesystem;

namespace {
test::CmdResult tailor_cmd(const std::string& args) { return test::run_cmd(test::tailor_bin() + " " + args); }
}  // namespace

TEST(CatalogCli, SynthThenPrepareReportsSkipsAndFailsOnlyWhenNothingIsLeft) {
  REQUIRE_CAIRO();
  std::string cat = test::temp_dir("cli_cat"), out = test::temp_dir("cli_out");
  auto r = tailor_cmd("synth --products 20 --seed 2 --quiet --out " + cat);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("synth: 20 products"), std::string::npos) << r.output;

  fs::remove(fs::path(cat) / "images" / "100003.jpg");
  r = tailor_cmd("prepare --quiet --catalog " + cat + " --out " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find(cat + "/images/100003.jpg: missing image"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("missing image 1"), std::string::npos) << r.output;
  EXPECT_TRUE(file_exists(join_path(out, "manifest.json")));

  for (const auto& e : fs::directory_iterator(fs::path(cat) / "images")) fs::remove(e.path());
  r = tailor_cmd("prepare --quiet --catalog " + cat + " --out " + out);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("nothing usable"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("missing image 20"), std::string::npos) << r.output;
}

TEST(CatalogCli, PrepareOptions) {
  REQUIRE_CAIRO();
  std::string cat = test::temp_dir("cli_opt_cat"), out = test::temp_dir("cli_opt_out");
  ASSERT_EQ(tailor_cmd("synth --products 30 --quiet --out " + cat).status, 0);
  // Beside, not inside, --out: prepare replaces its output directory as a whole.
  std::string templates = join_path(test::temp_dir("cli_opt_task"), "templates.json");
  write_file_atomic(templates, std::string(R"({"Pattern": "Which pattern is this?", "baseColour": "Which colour?"})"));
  auto r = tailor_cmd("prepare --quiet --catalog " + cat + " --out " + out + " --templates " + templates +
                      " --attributes Pattern --val-fraction 0.5 --seed 3 --threads 1");
  ASSERT_EQ(r.status, 0) << r.output;
  std::vector<VqaPair> train = read_pairs(join_path(out, "train.jsonl"));
  std::vector<VqaPair> val = read_pairs(join_path(out, "val.jsonl"));
  EXPECT_EQ(train.size(), 15u);
  EXPECT_EQ(val.size(), 15u);
  for (const auto& p : train) {
    EXPECT_EQ(p.attribute, "Pattern");
    EXPECT_EQ(p.prompt, "Question: Which pattern is this? Answer: ");
  }
  r = tailor_cmd("prepare --quiet --catalog " + cat + " --out " + out + " --attributes Bogus");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("unknown attribute \"Bogus\""), std::string::npos) << r.output;
  r = tailor_cmd("prepare --quiet --catalog " + cat + " --out " + out + " --article-types Jeans");
  EXPECT_EQ(r.status, 1) << r.output;  // nothing of that type: nothing usable
  r = tailor_cmd("prepare --catalog /nonexistent/catalog --out " + out);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("--catalog /nonexistent/catalog: no such file or directory"), std::string::npos) << r.output;
  // A table with mapped columns, through the flags.
  std::string table = join_path(test::temp_dir("cli_opt_table"), "shop.tsv");
  write_file_atomic(table, "sku\tphoto\tkind\tpattern\n100000\t" + cat + "/images/100000.jpg\tShirts\tSolid\n");
  r = tailor_cmd("prepare --quiet --catalog " + table + " --id-column sku --image-column photo --type-column kind "
                 "--column Pattern=pattern --attributes Pattern --val-fraction 0 --out " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read_pairs(join_path(out, "train.jsonl")).size(), 1u);
  // A directory of other files is not replaced.
  r = tailor_cmd("prepare --quiet --catalog " + cat + " --out " + test::repo_root() + "/docs");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("holds other files"), std::string::npos) << r.output;
  r = tailor_cmd("prepare --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.output.find("--article-types"), std::string::npos);
}

TEST(CatalogCli, DemoRunsOffline) {
  REQUIRE_CAIRO();
  std::string out = test::temp_dir("cli_demo");
  auto r = tailor_cmd("demo --quiet --products 24 --out " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("demo: finished"), std::string::npos) << r.output;
  EXPECT_TRUE(file_exists(join_path(out, "dataset/train.jsonl")));
  EXPECT_TRUE(file_exists(join_path(out, "catalog/images/100023.jpg")));
}
