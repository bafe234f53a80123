// tailor-test: base
// util/json_positions: the line of every value of a JSON text, by field path.
#include <gtest/gtest.h>

#include "util/json_positions.h"

using namespace tailor;

TEST(JsonPositions, EveryValueHasItsLine) {
  auto lines = json_value_lines("{\"a\": [1,\n  {\"b\": \"x\\\"]\",\n   \"c\": null}],\n \"d\": {\"e\": [\n[true]]}}");
  EXPECT_EQ(lines[""], 1);
  EXPECT_EQ(lines["a"], 1);
  EXPECT_EQ(lines["a[0]"], 1);
  EXPECT_EQ(lines["a[1]"], 2);
  EXPECT_EQ(lines["a[1].b"], 2);
  EXPECT_EQ(lines["a[1].c"], 3);
  EXPECT_EQ(lines["d"], 4);
  EXPECT_EQ(lines["d.e"], 4);
  EXPECT_EQ(lines["d.e[0]"], 5);
  EXPECT_EQ(lines["d.e[0][0]"], 5);
}
