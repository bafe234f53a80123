// The demo's catalog steps (app/demo.h) on their own: synthesize and prepare, through the step
// runner. (The whole demo runs in tests/cli/demo_test.cpp.)
#include <gtest/gtest.h>

#include <cstdio>

#include "app/demo.h"
#include "catalog/dataset.h"
#include "test_util.h"
#include "util/fs.h"

using namespace tailor;

TEST(Demo, SynthesizesAndPrepares) {
  REQUIRE_CAIRO();
  DemoOptions o;
  o.out_dir = test::temp_dir("demo");
  o.products = 30;
  o.progress = false;
  DemoContext ctx = make_demo_context(o);
  std::string log_path = join_path(o.out_dir, "log.txt");
  ctx.log = std::fopen(log_path.c_str(), "w");
  ASSERT_NE(ctx.log, nullptr);
  run_demo(ctx, demo_catalog_steps());
  std::fclose(ctx.log);
  EXPECT_EQ(ctx.synth.products.size(), 30u);
  EXPECT_EQ(ctx.prepare.products_train + ctx.prepare.products_val, 30);
  EXPECT_EQ(read_pairs(join_path(ctx.dataset_dir, "train.jsonl")).size(),
            static_cast<size_t>(ctx.prepare.pairs_train));
  std::string log = read_file(log_path);
  EXPECT_NE(log.find("[2/2] prepare: done"), std::string::npos) << log;
}
