// tailor-test: base
// The one catalog reader (catalog/catalog_reader.h) on small catalogs written here: each rule of
// docs/catalog.md ("Reading a catalog") that prepare and describe now share.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "catalog/catalog_reader.h"
#include "test_util.h"
#include "util/error.h"
#include "util/fs.h"

using namespace tailor;

namespace {

const std::vector<AttributeSpec> kAttributes = {{"Pattern", "Which pattern?"}, {"baseColour", "Which colour?"},
                                                 {"Fit", "Which fit?"}};

std::string catalog_with(const std::string& name, const std::string& csv) {
  std::string d = test::temp_dir(name);
  make_dirs(join_path(d, "styles"));
  make_dirs(join_path(d, "images"));
  write_file_atomic(join_path(d, "styles.csv"), csv);
  return d;
}

void write_json(const std::string& catalog, const std::string& id, const std::string& text) {
  write_file_atomic(join_path(join_path(catalog, "styles"), id + ".json"), text);
}

}  // namespace

TEST(CatalogReader, BadRowsAreListedWithTheirLine) {
  std::string d = catalog_with("reader_rows",
                               "\xEF\xBB\xBFid,articleType,baseColour\r\n"
                               "1,Shirts,Blue\r\n"
                               "2,Shirts\r\n"             // line 3: too few fields
                               "x3,Shirts,Red\r\n"        // line 4: not a number
                               "1,Tshirts,Red\r\n"        // line 5: id seen on line 2
                               "4,\"Shirts,Red\r\n"       // line 6: open quote
                               "\r\n"
                               "5,\"Tops, loose\",Red\r\n");
  StylesCsv csv = read_styles_csv(d);
  EXPECT_EQ(csv.data_rows, 6);
  ASSERT_EQ(csv.rows.size(), 2u);
  EXPECT_EQ(csv.rows[0].id, "1");
  EXPECT_EQ(csv.rows[0].column("baseColour"), "Blue");
  EXPECT_EQ(csv.rows[1].column("articleType"), "Tops, loose");
  EXPECT_EQ(csv.rows[1].line_no, 8);
  ASSERT_EQ(csv.bad.size(), 4u);
  std::vector<int64_t> lines;
  for (const auto& b : csv.bad) lines.push_back(b.line_no);
  EXPECT_EQ(lines, (std::vector<int64_t>{3, 4, 5, 6}));
  EXPECT_NE(csv.bad[0].where.find("styles.csv:3"), std::string::npos) << csv.bad[0].where;
  EXPECT_NE(csv.bad[2].detail.find("already listed"), std::string::npos) << csv.bad[2].detail;
}

TEST(CatalogReader, WholeFileProblemsAreErrors) {
  std::string d = test::temp_dir("reader_none");
  EXPECT_THROW(read_styles_csv(d), Error);
  write_file_atomic(join_path(d, "styles.csv"), std::string("name,colour\nx,y\n"));
  EXPECT_THROW(read_styles_csv(d), Error);
}

TEST(CatalogReader, JsonFirstThenTheCsvAndOneSetOfMissingValues) {
  std::string d = catalog_with("reader_values",
                               "id,articleType,baseColour,Fit\n"
                               "1,Tops,Blue,Slim\n"
                               "2,Shirts,Green,N/A\n"
                               "3,Shirts,Red,Regular\n");
  // 1: the JSON's type and colour win (with warnings); Fit only in the CSV.
  write_json(d, "1", R"({"data":{"articleType":{"typeName":"Shirts"},"baseColour":"Navy",
                         "articleAttributes":{"Pattern":"Solid"}}})");
  // 2: no type or colour in the JSON: the CSV's; N/A, null and NA are no value.
  write_json(d, "2", R"({"data":{"articleAttributes":{"Pattern":"null","Fit":"NA"}}})");
  StylesCsv csv = read_styles_csv(d);
  CatalogProduct a = read_catalog_product(d, csv.rows[0], {}, kAttributes);
  EXPECT_TRUE(a.problem.empty()) << a.problem_detail;
  EXPECT_EQ(a.article_type, "Shirts");
  using Values = std::vector<std::pair<size_t, std::string>>;
  EXPECT_EQ(a.values, (Values{{0, "Solid"}, {1, "Navy"}, {2, "Slim"}}));
  EXPECT_EQ(a.warnings.size(), 2u);
  CatalogProduct b = read_catalog_product(d, csv.rows[1], {}, kAttributes);
  EXPECT_EQ(b.article_type, "Shirts");
  EXPECT_EQ(b.values, (Values{{1, "Green"}}));
  EXPECT_EQ(b.missing, (std::vector<size_t>{0, 2}));
  for (const char* v : {"", "NA", "N/A", "na", "NULL", "null"}) EXPECT_TRUE(is_missing_value(v)) << v;
  EXPECT_FALSE(is_missing_value("None of the above"));

  // 3: no JSON: a problem, but the CSV's type still says whether it was asked for.
  CatalogProduct c = read_catalog_product(d, csv.rows[2], {"Tshirts"}, kAttributes);
  EXPECT_EQ(c.problem, kSkipMissingJson);
  EXPECT_EQ(c.article_type, "Shirts");
  EXPECT_FALSE(c.type_selected);
}

TEST(CatalogReader, BrokenJsonAndOtherTypes) {
  std::string d = catalog_with("reader_broken", "id,articleType\n1,Shirts\n2,Shirts\n3,Shirts\n");
  write_json(d, "1", "{\"data\": ");
  write_json(d, "2", R"({"data":{"articleAttributes":{"Pattern":7}}})");
  write_json(d, "3", R"({"data":{"articleType":{"typeName":"Watches"},"articleAttributes":"oops"}})");
  StylesCsv csv = read_styles_csv(d);
  EXPECT_EQ(read_catalog_product(d, csv.rows[0], {}, kAttributes).problem, kSkipInvalidJson);
  CatalogProduct b = read_catalog_product(d, csv.rows[1], {}, kAttributes);
  EXPECT_EQ(b.problem, kSkipInvalidJson);
  EXPECT_NE(b.problem_detail.find("Pattern"), std::string::npos) << b.problem_detail;
  // Not of the wanted types: its attributes are not read, so their damage does not matter.
  CatalogProduct c = read_catalog_product(d, csv.rows[2], {"Shirts"}, kAttributes);
  EXPECT_TRUE(c.problem.empty()) << c.problem_detail;
  EXPECT_FALSE(c.type_selected);
  EXPECT_EQ(c.article_type, "Watches");
}

TEST(CatalogReader, ImageIsTheJpgOrElseThePng) {
  std::string d = catalog_with("reader_images", "id\n1\n");
  std::string images = join_path(d, "images");
  EXPECT_EQ(catalog_image_path(d, "1"), join_path(images, "1.jpg"));  // neither: the .jpg is named
  write_file_atomic(join_path(images, "1.png"), std::string("png"));
  EXPECT_EQ(catalog_image_path(d, "1"), join_path(images, "1.png"));
  write_file_atomic(join_path(images, "1.jpg"), std::string("jpg"));
  EXPECT_EQ(catalog_image_path(d, "1"), join_path(images, "1.jpg"));
}
