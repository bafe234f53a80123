// Catalogs of other sources reach training through the tailor program: the original system's
// vqa_train.csv / vqa_test.csv (with its images) trains a tiny model; a product table with a custom
// task file (a new attribute written with aliases) is prepared, trained on and evaluated, and the task
// travels with the model as tailor_task.json.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "../train/train_data.h"
#include "catalog/dataset.h"

namespace tailor {
namespace {

using json = nlohmann::json;

TEST(CatalogTrain, OriginalSystemsVqaCsvTrains) {
  const test::TinySetup& tiny = test::tiny_setup();
  std::string dir = test::temp_dir("catalog_train_vqa");
  // The original system's layout: vqa_train.csv, vqa_test.csv and images/<id>.jpg in one directory.
  std::string vqa = dir + "/vqa";
  make_dirs(vqa);
  std::filesystem::create_symlink(tiny.catalog + "/images", vqa + "/images");
  for (const char* f : {"vqa_train.csv", "vqa_test.csv"}) write_file_atomic(vqa + "/" + f, read_file(tiny.data + "/" + f));
  auto prepared = test::run_cmd(test::tailor_bin() + " prepare --catalog " + vqa + " --out " + dir + "/data --quiet");
  ASSERT_EQ(prepared.status, 0) << prepared.output;
  EXPECT_EQ(json::parse(read_file(dir + "/data/manifest.json"))["format"], "vqa");
  // The same pairs as the catalog they came from, photos named through the vqa directory.
  std::vector<VqaPair> want = read_pairs(tiny.data + "/train.jsonl"), got = read_pairs(dir + "/data/train.jsonl");
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].id, want[i].id);
    EXPECT_EQ(got[i].answer, want[i].answer);
    EXPECT_EQ(got[i].image, vqa + "/images/" + want[i].id + ".jpg");
  }
  auto trained = test::run_cmd(test::tailor_bin() + " train --model " + tiny.model + " --data " + dir + "/data --out " +
                               dir + "/trained --epochs 1 --batch-size 64 --lr 1e-3 --seed 1");
  ASSERT_EQ(trained.status, 0) << trained.output;
  EXPECT_TRUE(file_exists(dir + "/trained/model/config.json"));
}

TEST(CatalogTrain, CustomTaskWithAliasesTrainsAndEvaluates) {
  REQUIRE_CAIRO();
  std::string dir = test::temp_dir("catalog_train_task");
  SynthOptions so;
  so.products = 16;
  so.out_dir = dir + "/catalog";
  so.seed = 11;
  so.threads = 1;
  so.progress = false;
  SynthSummary synth = synth_catalog(so);
  // The shop's own table: "sleeves" written in its words; "Half Sleeves" stands for Short Sleeves.
  std::string csv = "sku,photo,category,sleeves\n";
  int halves = 0;
  for (const auto& p : synth.products) {
    std::string sleeves = p.sleeve_length == "Short Sleeves" && halves++ % 2 == 0 ? "Half Sleeves" : p.sleeve_length;
    csv += p.id + "," + so.out_dir + "/images/" + p.id + ".jpg," + p.article_type + "," + sleeves + "\n";
  }
  ASSERT_GT(halves, 0);
  write_file_atomic(dir + "/shop.csv", csv);
  write_file_atomic(dir + "/task.json", std::string(R"({"attributes": [
    {"name": "Sleeve Type", "question": "What kind of sleeves does this top have?",
     "values": [{"value": "Short Sleeves", "aliases": ["Half Sleeves"]}, "Long Sleeves", "Sleeveless"],
     "article_types": ["Shirts", "Tshirts"]}]})"));
  auto prepared = test::run_cmd(test::tailor_bin() + " prepare --catalog " + dir + "/shop.csv --task " + dir +
                                "/task.json --id-column sku --image-column photo --type-column category --column "
                                "'Sleeve Type=sleeves' --out " + dir + "/data --quiet");
  ASSERT_EQ(prepared.status, 0) << prepared.output;
  std::vector<VqaPair> pairs = read_pairs(dir + "/data/train.jsonl");
  for (const auto& p : read_pairs(dir + "/data/val.jsonl")) pairs.push_back(p);
  ASSERT_EQ(pairs.size(), synth.products.size());
  for (const auto& p : pairs) {
    EXPECT_EQ(p.attribute, "Sleeve Type");
    EXPECT_NE(p.value, "Half Sleeves");  // normalised
    EXPECT_EQ(p.prompt, "Question: What kind of sleeves does this top have? Answer: ");
  }

  auto init = test::run_cmd(test::tailor_bin() + " init --preset tiny --seed 1 --task " + dir + "/task.json --out " + dir + "/model");
  ASSERT_EQ(init.status, 0) << init.output;
  auto trained = test::run_cmd(test::tailor_bin() + " train --model " + dir + "/model --data " + dir + "/data --out " +
                               dir + "/trained --epochs 1 --batch-size 64 --lr 1e-3 --seed 1");
  ASSERT_EQ(trained.status, 0) << trained.output;
  TaskInfo task = load_task_info(dir + "/trained/model");
  ASSERT_EQ(task.attributes.size(), 1u);
  EXPECT_EQ(task.attributes[0].name, "Sleeve Type");
  ASSERT_EQ(task.attributes[0].allowed.size(), 3u);
  EXPECT_EQ(task.attributes[0].allowed[0].aliases, (std::vector<std::string>{"Half Sleeves"}));
  EXPECT_EQ(task.attributes[0].article_types, (std::vector<std::string>{"Shirts", "Tshirts"}));
  EXPECT_FALSE(task.values["Sleeve Type"].empty());

  // Evaluated as-is and with the photos framed two other ways: a report per framing, same pairs.
  auto evaluated = test::run_cmd(test::tailor_bin() + " eval --model " + dir + "/trained/model --data " + dir +
                                 "/data --report " + dir + "/eval.json --shift portrait,other-source");
  ASSERT_EQ(evaluated.status, 0) << evaluated.output;
  json report = json::parse(read_file(dir + "/eval.json"));
  ASSERT_EQ(report["attributes"].size(), 1u);
  EXPECT_EQ(report["attributes"][0]["attribute"], "Sleeve Type");
  EXPECT_GT(report["attributes"][0]["pairs"].get<int64_t>(), 0);
  for (const char* framing : {"portrait", "other-source"}) {
    json shifted = json::parse(read_file(dir + "/eval_" + framing + ".json"));
    EXPECT_EQ(shifted["attributes"][0]["pairs"], report["attributes"][0]["pairs"]) << framing;
    EXPECT_NE(evaluated.output.find(std::string("photos framed as ") + framing), std::string::npos) << evaluated.output;
  }
  auto bad_shift = test::run_cmd(test::tailor_bin() + " eval --model " + dir + "/trained/model --data " + dir +
                                 "/data --shift portrait,sideways");
  EXPECT_NE(bad_shift.status, 0);
  EXPECT_NE(bad_shift.output.find("--shift: unknown framing \"sideways\""), std::string::npos) << bad_shift.output;

  // A bad task file stops prepare with its file, line and field named.
  write_file_atomic(dir + "/bad_task.json", std::string("{\"attributes\": [\n  {\"name\": \"Sleeve Type\",\n   \"question\": \"\"}]}"));
  auto bad = test::run_cmd(test::tailor_bin() + " prepare --catalog " + dir + "/shop.csv --task " + dir +
                           "/bad_task.json --out " + dir + "/bad --quiet");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("bad_task.json:3: attributes[0].question"), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace tailor
