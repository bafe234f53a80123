// The reviewers' corrections flow back into training: a synthetic catalog is described, reviewed
// (attributes corrected and approved through the review database), exported with
// `tailor review --export`, and `tailor train --extra-pairs` trains on the catalog's pairs plus the
// corrections: a correction of a training product replaces its pair, one of a validation product
// is added, and the run's sample trace shows the added pair trained on.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "../train/train_data.h"
#include "app/review_store.h"
#include "catalog/dataset.h"
#include "write/describe.h"

namespace tailor {
namespace {

// Another value of the attribute among the catalog's pairs.
std::string other_value(const std::vector<VqaPair>& pairs, const std::string& attribute, const std::string& value) {
  for (const auto& p : pairs)
    if (p.attribute == attribute && p.value != value) return p.value;
  return value + " (corrected)";
}

TEST(ReviewTrain, ExportedCorrectionsTrainWithTheCatalogPairs) {
  const test::TinySetup& tiny = test::tiny_setup();
  std::string dir = test::temp_dir("review_train");
  std::vector<VqaPair> train = read_pairs(tiny.data + "/train.jsonl");
  std::vector<VqaPair> val = read_pairs(tiny.data + "/val.jsonl");
  ASSERT_FALSE(train.empty());
  ASSERT_FALSE(val.empty());

  // describe (catalog attributes, offline writer) over every product.
  std::string described = dir + "/descriptions.jsonl";
  auto writer = make_writer(WriterConfig{});
  DescribeOptions d;
  d.output_jsonl = described;
  d.show_progress = false;
  d.log = [](const std::string&) {};
  describe_products(read_catalog_products(CatalogSource{tiny.catalog}, CatalogQuery{}), *writer, nullptr, d);

  // Review: correct one attribute of a training product and one of a validation product, approve both.
  std::string db = dir + "/review.sqlite";
  const VqaPair& in_train = train.front();
  const VqaPair& in_val = val.front();
  {
    ReviewStore store(db);
    store.import_describe(described, {tiny.catalog, ""});
    for (const VqaPair* p : {&in_train, &in_val}) {
      auto product = store.product(p->id);
      ASSERT_TRUE(product) << p->id;
      std::string corrected = other_value(train, p->attribute, p->value);
      store.apply({p->id, product->version, "reviewer", {{p->attribute, corrected}}, std::nullopt, "approved", "approve"});
    }
  }
  auto exported = test::run_cmd(test::tailor_bin() + " review --describe " + described + " --db " + db + " --catalog " +
                                tiny.catalog + " --export " + dir + "/export");
  ASSERT_EQ(exported.status, 0) << exported.output;
  EXPECT_NE(exported.output.find("exported 2 approved products and 2 corrected attributes"), std::string::npos)
      << exported.output;
  std::string corrections = dir + "/export/corrections.jsonl";
  std::vector<VqaPair> pairs = read_pairs(corrections);
  ASSERT_EQ(pairs.size(), 2u);
  std::vector<VqaPair> merged = train;
  merge_pairs(merged, pairs);
  ASSERT_EQ(merged.size(), train.size() + 1);  // the training product's pair replaced, the other added

  std::string out = dir + "/trained";
  std::string trace = dir + "/trace";
  make_dirs(trace);
  auto trained = test::run_cmd("TAILOR_SAMPLE_TRACE=" + trace + " " + test::tailor_bin() + " train --model " + tiny.model +
                               " --data " + tiny.data + " --extra-pairs " + corrections + " --out " + out +
                               " --epochs 1 --batch-size 64 --lr 1e-3 --seed 1");
  ASSERT_EQ(trained.status, 0) << trained.output;
  EXPECT_NE(trained.output.find("on " + std::to_string(merged.size()) + " pairs"), std::string::npos) << trained.output;
  EXPECT_TRUE(file_exists(out + "/model/config.json"));
  std::string seen = read_file(trace + "/rank0.jsonl");
  EXPECT_NE(seen.find("\"" + in_val.id + "/" + in_val.attribute + "\""), std::string::npos)
      << "the validation product's correction was not trained on: " << seen;

  // A broken pairs file is named with its line.
  write_file_atomic(dir + "/bad.jsonl", "{\"id\":\"1\"}\n");
  auto bad = test::run_cmd(test::tailor_bin() + " train --model " + tiny.model + " --data " + tiny.data +
                           " --extra-pairs " + dir + "/bad.jsonl --out " + dir + "/bad-out --epochs 1");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find(dir + "/bad.jsonl:1"), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace tailor
