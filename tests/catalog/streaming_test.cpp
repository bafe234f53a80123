// tailor-test: base
// A 1,000,000-row product table streams through prepare: the process's peak memory grows by far
// less than the rows would take if they were held (measured against a 100,000-row run in the same
// process), and every row is counted.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <fstream>

#include "catalog/prepare.h"
#include "test_util.h"
#include "util/fs.h"

using namespace tailor;

namespace {

int64_t peak_rss_bytes() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;
}

// n rows of socks (not a selected type: no photo is read, no pair made), written in pieces.
std::string write_table(const std::string& dir, int64_t n) {
  std::string path = join_path(dir, "products_" + std::to_string(n) + ".csv");
  std::ofstream out(path, std::ios::binary);
  out << "id,image,articleType,baseColour,Pattern,Fit\n";
  std::string chunk;
  for (int64_t i = 0; i < n; ++i) {
    chunk += "sku-" + std::to_string(i) + ",images/" + std::to_string(i) + ".jpg,Socks,\"Navy, dark\",Solid,Regular\n";
    if (chunk.size() > (1 << 20)) {
      out << chunk;
      chunk.clear();
    }
  }
  out << chunk;
  return path;
}

PrepareSummary run(const std::string& table, const std::string& out) {
  PrepareOptions o;
  o.catalog_dir = table;
  o.out_dir = out;
  o.progress = false;
  o.threads = 2;
  return prepare_catalog(o);
}

}  // namespace

TEST(Streaming, AMillionRowTableStreamsInBoundedMemory) {
  const std::string dir = test::temp_dir("streaming");
  const std::string small = write_table(dir, 100000), large = write_table(dir, 1000000);
  PrepareSummary s = run(small, join_path(dir, "out_small"));
  EXPECT_EQ(s.csv_rows, 100000);
  const int64_t after_small = peak_rss_bytes();
  PrepareSummary l = run(large, join_path(dir, "out_large"));
  EXPECT_EQ(l.csv_rows, 1000000);
  EXPECT_EQ(l.products_other_type, 1000000);
  const int64_t growth = peak_rss_bytes() - after_small;
  // Held rows would take > 300 MB (a row's map of six columns alone is ~400 bytes); streamed, the
  // growth is the duplicate-id table (16 bytes a row) and allocator noise.
  std::printf("peak RSS after 100k rows %.1f MB, growth for 1M rows %.1f MB\n", after_small / 1e6, growth / 1e6);
  EXPECT_LT(growth, 48 * 1000 * 1000);
  remove_tree(small);
  remove_tree(large);
}
