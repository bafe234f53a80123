// tailor-test: base
// The review database and exports without HTTP: importing describe's output (bad lines named by
// file:line and field, missing photos, re-import keeps decisions), the queue's order and filters,
// versions refusing stale changes, and the exports (corrections read back by read_pairs).
#include <gtest/gtest.h>

#include "app/review_export.h"
#include "app/review_store.h"
#include "catalog/dataset.h"
#include "review_fixture.h"

namespace tailor {
namespace {

std::vector<std::string> ids_of(const std::vector<ReviewProduct>& products) {
  std::vector<std::string> ids;
  for (const auto& p : products) ids.push_back(p.id);
  return ids;
}

TEST(ReviewStore, ImportsDescribeOutputWithNamesPhotosAndConfidence) {
  auto f = test::make_review_files("review_store_import");
  ReviewStore store(f.db);
  ImportSummary s = store.import_describe(f.describe, {f.catalog, ""});
  EXPECT_EQ(s.lines, 5);
  EXPECT_EQ(s.added, 5);
  ASSERT_EQ(s.missing_photos.size(), 1u);
  EXPECT_NE(s.missing_photos[0].find("no photo for product 105"), std::string::npos);
  auto p = store.product("101");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->name, "Blue Oxford Shirt");
  EXPECT_EQ(p->article_type, "Shirts");
  EXPECT_EQ(p->attributes.size(), 4u);
  EXPECT_EQ(p->attributes[0].name, "Sleeve Length");  // describe's order kept
  EXPECT_DOUBLE_EQ(*p->min_confidence, 0.55);
  EXPECT_FALSE(p->attributes[3].confidence);  // articleType has none
  EXPECT_EQ(store.product("102")->name, test::kScriptName);
  EXPECT_FALSE(store.product("104")->min_confidence);
  EXPECT_EQ(store.attribute_names(), (std::vector<std::string>{"Sleeve Length", "Fit", "baseColour", "articleType"}));
  EXPECT_EQ(store.values_seen()["Fit"], (std::vector<std::string>{"Regular Fit", "Slim Fit"}));
  EXPECT_EQ(store.article_types(), (std::vector<std::string>{"Shirts", "Tshirts"}));

  // Again (e.g. after more describe output): nothing added twice, decisions kept.
  store.apply({"101", 1, "ann", {}, std::nullopt, "approved", "approve"});
  ImportSummary again = store.import_describe(f.describe, {f.catalog, ""});
  EXPECT_EQ(again.added, 0);
  EXPECT_EQ(again.already_there, 5);
  EXPECT_EQ(store.product("101")->status, "approved");
}

TEST(ReviewStore, ABadDescribeLineIsNamedByFileLineAndField) {
  auto f = test::make_review_files("review_store_bad");
  auto expect_error = [&](const std::string& line, const std::string& what) {
    std::string path = join_path(f.dir, "bad.jsonl");
    write_file_atomic(path, std::string(R"({"id":"1","attributes":{"Fit":"Slim Fit"},"description":"ok"})") + "\n\n" + line + "\n");
    ReviewStore store(join_path(f.dir, "bad.sqlite"));
    try {
      store.import_describe(path, {f.catalog, ""});
      ADD_FAILURE() << "no error for " << line;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path + ":3: " + what), std::string::npos) << e.what();
    }
    EXPECT_TRUE(store.all_products().empty()) << "a file with a bad line is not imported in part";
  };
  expect_error("{\"id\":\"2\",", "not valid JSON");
  expect_error("[1]", "not a JSON object");
  expect_error(R"({"attributes":{},"description":""})", "field \"id\" is missing");
  expect_error(R"({"id":2,"attributes":{},"description":""})", "field \"id\" must be a string");
  expect_error(R"({"id":"2","description":""})", "field \"attributes\" must be an object");
  expect_error(R"({"id":"2","attributes":{"Fit":3},"description":""})", "field \"attributes.Fit\" must be a string");
  expect_error(R"({"id":"2","attributes":{"Fit":"x"}})", "field \"description\" is missing");
  expect_error(R"({"id":"2","attributes":{"Fit":"x"},"description":"","confidence":{"Fit":1.5}})",
               "field \"confidence.Fit\" must be a number in [0, 1]");
  expect_error(R"({"id":"1","attributes":{"Fit":"x"},"description":""})", "field \"id\": product 1 appears twice");
}

TEST(ReviewStore, QueueIsLowestConfidenceFirstThenDescribeOrder) {
  auto f = test::make_review_files("review_store_queue");
  ReviewStore store(f.db);
  store.import_describe(f.describe, {f.catalog, ""});
  EXPECT_EQ(ids_of(store.queue({})), (std::vector<std::string>{"102", "101", "103", "104", "105"}));
  QueueFilter shirts;
  shirts.article_type = "Shirts";
  EXPECT_EQ(ids_of(store.queue(shirts)), (std::vector<std::string>{"101", "103", "105"}));
  QueueFilter low_fit;
  low_fit.attribute = "Fit";
  low_fit.max_confidence = 0.6;
  EXPECT_EQ(ids_of(store.queue(low_fit)), (std::vector<std::string>{"101"}));
  QueueFilter low_any;
  low_any.max_confidence = 0.75;
  EXPECT_EQ(ids_of(store.queue(low_any)), (std::vector<std::string>{"102", "101", "103"}));

  store.apply({"102", 1, "ann", {}, std::nullopt, "skipped", "skip"});
  EXPECT_EQ(ids_of(store.queue({})), (std::vector<std::string>{"101", "103", "104", "105"}));
  QueueFilter skipped;
  skipped.status = "skipped";
  EXPECT_EQ(ids_of(store.queue(skipped)), (std::vector<std::string>{"102"}));
  QueueFilter all;
  all.status = "all";
  EXPECT_EQ(store.queue_ids(all).size(), 5u);
  ReviewCounts c = store.counts();
  EXPECT_EQ(c.left(), 5);  // a skipped product is still left
  EXPECT_EQ(c.done(), 0);
}

TEST(ReviewStore, AChangeFromAnOldVersionIsRefusedNamingWhoChangedIt) {
  auto f = test::make_review_files("review_store_versions");
  ReviewStore store(f.db);
  store.import_describe(f.describe, {f.catalog, ""});
  ReviewProduct saved = store.apply({"103", 1, "ann", {{"Fit", "Slim Fit"}}, std::string("New text."), "", "save"});
  EXPECT_EQ(saved.version, 2);
  EXPECT_TRUE(saved.changed_attributes());
  try {
    store.apply({"103", 1, "ben", {{"Fit", "Regular Fit"}}, std::nullopt, "approved", "approve"});
    ADD_FAILURE() << "a stale change was applied";
  } catch (const ConflictError& e) {
    EXPECT_NE(std::string(e.what()).find("product 103 was changed by ann"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("version 2, your page showed version 1"), std::string::npos) << e.what();
  }
  auto p = store.product("103");
  EXPECT_EQ(p->attributes[1].value, "Slim Fit");
  EXPECT_EQ(p->attributes[1].predicted, "Regular Fit");
  EXPECT_EQ(p->description, "New text.");
  EXPECT_EQ(p->original_description, "A green linen shirt.");
  EXPECT_THROW(store.apply({"103", 2, "ben", {{"Colour", "Red"}}, std::nullopt, "", "save"}), Error);
  EXPECT_THROW(store.apply({"nope", 1, "ben", {}, std::nullopt, "", "save"}), Error);
  // A second connection (another `tailor review` on the same file) sees the committed state.
  ReviewStore other(f.db);
  EXPECT_EQ(other.product("103")->version, 2);
}

TEST(ReviewExport, ApprovedProductsAndCorrectedAttributesAsPrepareWritesPairs) {
  auto f = test::make_review_files("review_export");
  ReviewStore store(f.db);
  store.import_describe(f.describe, {f.catalog, ""});
  store.apply({"101", 1, "ann", {{"Fit", "Regular Fit"}}, std::string("Fixed, \"quoted\"."), "approved", "approve"});
  store.apply({"102", 1, "ann", {{"Sleeve Length", "Long Sleeves"}}, std::nullopt, "rejected", "reject"});
  store.apply({"103", 1, "ann", {}, std::nullopt, "approved", "approve"});
  store.apply({"105", 1, "ann", {{"Fit", "Slim Fit"}}, std::nullopt, "approved", "approve"});  // no photo

  std::string dir = join_path(f.dir, "export");
  ExportSummary s = write_review_exports(store, dir, default_attributes());
  EXPECT_EQ(s.approved, 3);
  EXPECT_EQ(s.corrections, 1);  // 101's fit; 102 is rejected, 103 unchanged, 105 has no photo
  std::string jsonl = read_file(join_path(dir, "approved.jsonl"));
  EXPECT_EQ(std::count(jsonl.begin(), jsonl.end(), '\n'), 3);
  EXPECT_NE(jsonl.find(R"("id":"101","name":"Blue Oxford Shirt","attributes":{"Sleeve Length":"Long Sleeves","Fit":"Regular Fit")"),
            std::string::npos) << jsonl;
  std::string csv = read_file(join_path(dir, "approved.csv"));
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "id,name,Sleeve Length,Fit,baseColour,articleType,description,reviewer,reviewed_at");
  EXPECT_NE(csv.find("101,Blue Oxford Shirt,Long Sleeves,Regular Fit,Blue,Shirts,\"Fixed, \"\"quoted\"\".\",ann,"), std::string::npos) << csv;

  std::vector<VqaPair> pairs = read_pairs(join_path(dir, "corrections.jsonl"));
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_EQ(pairs[0].id, "101");
  EXPECT_EQ(pairs[0].attribute, "Fit");
  EXPECT_EQ(pairs[0].value, "Regular Fit");
  EXPECT_EQ(pairs[0].answer, "Fit: Regular Fit");
  EXPECT_EQ(pairs[0].question, "What is the Fit of the shirt in this picture?");
  EXPECT_EQ(pairs[0].prompt, wrap_prompt(pairs[0].question));
  EXPECT_EQ(pairs[0].image[0], '/');
  EXPECT_TRUE(file_exists(pairs[0].image));
}

TEST(ReviewExport, MergedCorrectionsReplaceTheSameProductAndAttributeAndAddTheRest) {
  auto pair = [](const std::string& id, const std::string& attribute, const std::string& value) {
    VqaPair p;
    p.id = id;
    p.attribute = attribute;
    p.value = value;
    return p;
  };
  std::vector<VqaPair> pairs = {pair("1", "Fit", "Slim Fit"), pair("1", "Neck", "Round"), pair("2", "Fit", "Regular Fit")};
  merge_pairs(pairs, {pair("1", "Neck", "V Neck"), pair("3", "Fit", "Slim Fit")});
  ASSERT_EQ(pairs.size(), 4u);
  EXPECT_EQ(pairs[1].value, "V Neck");  // replaced where it was
  EXPECT_EQ(pairs[3].id, "3");          // added at the end
}

}  // namespace
}  // namespace tailor
