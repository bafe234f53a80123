// tailor-test: base
// The one catalog reader (catalog/catalog_reader.h) on small catalogs written here: each rule of
// docs/catalog.md ("Reading a catalog") that prepare and describe now share.
#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <sstream>
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

// Every row of the catalog at `location` (bad ones too), read as prepare and describe read it.
struct ReadAll {
  std::unique_ptr<CatalogReader> reader;
  std::vector<CatalogRow> rows, bad;
};
ReadAll read_all(const std::string& location, const std::set<std::string>& types = {},
                 const std::vector<AttributeSpec>& attributes = kAttributes, const CatalogColumns& columns = {},
                 const std::string& format = "") {
  ReadAll r;
  CatalogSource s;
  s.location = location;
  s.format = format;
  s.columns = columns;
  r.reader = open_catalog(s, CatalogQueryAttributes{attributes, types});
  CatalogRow row;
  while (r.reader->next(&row)) (row.bad_reason.empty() ? r.rows : r.bad).push_back(row);
  return r;
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
  ReadAll csv = read_all(d);
  EXPECT_EQ(csv.reader->rows(), 6);
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
  EXPECT_EQ(csv.bad[0].bad_reason, kSkipMalformedCsvRow);
  EXPECT_NE(csv.bad[2].bad_detail.find("already listed"), std::string::npos) << csv.bad[2].bad_detail;
}

TEST(CatalogReader, WholeFileProblemsAreErrors) {
  std::string d = test::temp_dir("reader_none");
  EXPECT_THROW(read_all(d), Error);
  EXPECT_THROW(read_all(d, {}, kAttributes, {}, "kaggle"), Error);
  write_file_atomic(join_path(d, "styles.csv"), std::string("name,colour\nx,y\n"));
  EXPECT_THROW(read_all(d), Error);
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
  ReadAll csv = read_all(d);
  CatalogProduct a = csv.reader->product(csv.rows[0]);
  EXPECT_TRUE(a.problem.empty()) << a.problem_detail;
  EXPECT_EQ(a.article_type, "Shirts");
  using Values = std::vector<std::pair<size_t, std::string>>;
  EXPECT_EQ(a.values, (Values{{0, "Solid"}, {1, "Navy"}, {2, "Slim"}}));
  EXPECT_EQ(a.warnings.size(), 2u);
  CatalogProduct b = csv.reader->product(csv.rows[1]);
  EXPECT_EQ(b.article_type, "Shirts");
  EXPECT_EQ(b.values, (Values{{1, "Green"}}));
  EXPECT_EQ(b.missing, (std::vector<size_t>{0, 2}));
  for (const char* v : {"", "NA", "N/A", "na", "NULL", "null"}) EXPECT_TRUE(is_missing_value(v)) << v;
  EXPECT_FALSE(is_missing_value("None of the above"));

  // 3: no JSON: a problem, but the CSV's type still says whether it was asked for.
  ReadAll tshirts = read_all(d, {"Tshirts"});
  CatalogProduct c = tshirts.reader->product(tshirts.rows[2]);
  EXPECT_EQ(c.problem, kSkipMissingJson);
  EXPECT_EQ(c.article_type, "Shirts");
  EXPECT_FALSE(c.type_selected);
}

TEST(CatalogReader, BrokenJsonAndOtherTypes) {
  std::string d = catalog_with("reader_broken", "id,articleType\n1,Shirts\n2,Shirts\n3,Shirts\n");
  write_json(d, "1", "{\"data\": ");
  write_json(d, "2", R"({"data":{"articleAttributes":{"Pattern":7}}})");
  write_json(d, "3", R"({"data":{"articleType":{"typeName":"Watches"},"articleAttributes":"oops"}})");
  ReadAll csv = read_all(d);
  EXPECT_EQ(csv.reader->product(csv.rows[0]).problem, kSkipInvalidJson);
  CatalogProduct b = csv.reader->product(csv.rows[1]);
  EXPECT_EQ(b.problem, kSkipInvalidJson);
  EXPECT_NE(b.problem_detail.find("Pattern"), std::string::npos) << b.problem_detail;
  // Not of the wanted types: its attributes are not read, so their damage does not matter.
  ReadAll shirts = read_all(d, {"Shirts"});
  CatalogProduct c = shirts.reader->product(shirts.rows[2]);
  EXPECT_TRUE(c.problem.empty()) << c.problem_detail;
  EXPECT_FALSE(c.type_selected);
  EXPECT_EQ(c.article_type, "Watches");
}

TEST(CatalogReader, ImageIsTheJpgOrElseThePng) {
  std::string d = catalog_with("reader_images", "id\n1\n");
  std::string images = join_path(d, "images");
  ReadAll csv = read_all(d);
  auto image = [&] { return first_existing_image(csv.reader->product(csv.rows[0]).images); };
  EXPECT_EQ(image(), join_path(images, "1.jpg"));  // neither: the .jpg is named
  write_file_atomic(join_path(images, "1.png"), std::string("png"));
  EXPECT_EQ(image(), join_path(images, "1.png"));
  write_file_atomic(join_path(images, "1.jpg"), std::string("jpg"));
  EXPECT_EQ(image(), join_path(images, "1.jpg"));
}

// ---- product tables, imagefolder, vqa ------------------------------------------------------------

TEST(CatalogReader, CsvTableWithQuotedNewlinesAndDefaultColumnNames) {
  std::string d = test::temp_dir("reader_table_csv");
  std::string table = join_path(d, "products.csv");
  write_file_atomic(table, std::string("id,image_url,articleType,Pattern,Fit\r\n"
                                       "a1,img/a1.jpg,Shirts,\"Solid,\r\nplain\",Slim\r\n"  // lines 2-3
                                       "a2,/abs/a2.png,Tops,Striped,NA\r\n"                 // line 4
                                       "a3,,Shirts,N/A,Regular\r\n"                         // line 5
                                       "a1,x.jpg,Shirts,Solid,Slim\r\n"                     // line 6: id again
                                       "a4,\"x.jpg,Shirts\r\n"));                           // line 7: open quote
  ReadAll t = read_all(table, {"Shirts"});
  EXPECT_EQ(t.reader->format(), "csv");
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(t.rows[1].line_no, 4);
  CatalogProduct a = t.reader->product(t.rows[0]);
  using Values = std::vector<std::pair<size_t, std::string>>;
  EXPECT_EQ(a.values, (Values{{0, "Solid,\nplain"}, {2, "Slim"}}));
  EXPECT_EQ(a.missing, (std::vector<size_t>{1}));  // no baseColour column: no value
  EXPECT_EQ(a.images, (std::vector<std::string>{join_path(join_path(d, "img"), "a1.jpg")}));
  EXPECT_FALSE(t.reader->product(t.rows[1]).type_selected);
  EXPECT_TRUE(t.reader->product(t.rows[2]).images.empty());  // empty image: named as missing by prepare
  ASSERT_EQ(t.bad.size(), 2u);
  EXPECT_EQ(t.bad[0].where, table + ":6");
  EXPECT_NE(t.bad[0].bad_detail.find("already listed"), std::string::npos);
  EXPECT_EQ(t.bad[1].where, table + ":7");
  EXPECT_EQ(t.bad[1].bad_reason, kSkipMalformedCsvRow);
}

TEST(CatalogReader, TsvAndJsonLinesWithMappedColumns) {
  std::string d = test::temp_dir("reader_table_map");
  std::string tsv = join_path(d, "export.tsv");
  write_file_atomic(tsv, std::string("sku\tphoto\tback\tcategory\tpattern_name\n"
                                     "7\tf.jpg\tb.jpg\tShirts\tChecked\n"));
  CatalogColumns cols;
  cols.id = "sku";
  cols.images = {"photo", "back"};
  cols.article_type = "category";
  cols.attributes["Pattern"] = "pattern_name";
  ReadAll t = read_all(tsv, {"Shirts"}, kAttributes, cols);
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_EQ(t.rows[0].id, "7");
  CatalogProduct p = t.reader->product(t.rows[0]);
  EXPECT_EQ(p.images.size(), 2u);
  EXPECT_EQ(p.values, (std::vector<std::pair<size_t, std::string>>{{0, "Checked"}}));
  // A mapped column that the header lacks is an error naming the file and the column.
  cols.attributes["Fit"] = "fit_name";
  try {
    read_all(tsv, {}, kAttributes, cols);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("export.tsv:1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("fit_name"), std::string::npos) << e.what();
  }

  std::string jsonl = join_path(d, "products.jsonl");
  write_file_atomic(jsonl, std::string("{\"id\": 1, \"image\": [\"a.jpg\", \"b.jpg\"], \"Pattern\": \"Solid\", \"Fit\": null}\n"
                                       "\n"
                                       "{\"id\": 2, \"image\": \"c.jpg\", \"Pattern\": {\"x\": 1}}\n"  // line 3
                                       "{\"id\": 3, \"image\": \"c.jpg\"\n"                            // line 4
                                       "[1, 2]\n"                                                      // line 5
                                       "{\"image\": \"d.jpg\"}\n"                                      // line 6
                                       "{\"id\": \"4\", \"image\": \"e.jpg\", \"baseColour\": 12}\n"));
  ReadAll j = read_all(jsonl);
  ASSERT_EQ(j.rows.size(), 2u);
  CatalogProduct one = j.reader->product(j.rows[0]);
  EXPECT_EQ(one.images, (std::vector<std::string>{join_path(d, "a.jpg"), join_path(d, "b.jpg")}));
  EXPECT_EQ(one.values, (std::vector<std::pair<size_t, std::string>>{{0, "Solid"}}));
  EXPECT_EQ(j.reader->product(j.rows[1]).values, (std::vector<std::pair<size_t, std::string>>{{1, "12"}}));
  ASSERT_EQ(j.bad.size(), 4u);
  EXPECT_EQ(j.bad[0].where, jsonl + ":3");
  EXPECT_EQ(j.bad[0].bad_reason, kSkipMalformedRow);
  EXPECT_NE(j.bad[0].bad_detail.find("field \"Pattern\""), std::string::npos) << j.bad[0].bad_detail;
  EXPECT_NE(j.bad[1].bad_detail.find("invalid JSON"), std::string::npos) << j.bad[1].bad_detail;
  EXPECT_NE(j.bad[2].bad_detail.find("not a JSON object"), std::string::npos) << j.bad[2].bad_detail;
  EXPECT_NE(j.bad[3].bad_detail.find("field \"id\""), std::string::npos) << j.bad[3].bad_detail;
}

TEST(CatalogReader, SpecFileMapsColumnsAndFlagsWin) {
  std::string d = test::temp_dir("reader_spec");
  std::string spec = join_path(d, "spec.json");
  write_file_atomic(spec, std::string(R"({"format": "tsv", "columns": {"id": "sku", "image": ["a", "b"],
    "articleType": "category", "attributes": {"Pattern": "pat", "Fit": "fit"}}})"));
  CatalogSource s;
  s.columns.attributes["Fit"] = "fit_flag";
  apply_catalog_spec(spec, &s);
  EXPECT_EQ(s.format, "tsv");
  EXPECT_EQ(s.columns.id, "sku");
  EXPECT_EQ(s.columns.images, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(s.columns.article_type, "category");
  EXPECT_EQ(s.columns.attributes["Pattern"], "pat");
  EXPECT_EQ(s.columns.attributes["Fit"], "fit_flag");
  write_file_atomic(spec, std::string(R"({"columns": {"image": 3}})"));
  try {
    apply_catalog_spec(spec, &s);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("spec.json: field columns.image"), std::string::npos) << e.what();
  }
  write_file_atomic(spec, std::string(R"({"colums": {}})"));
  EXPECT_THROW(apply_catalog_spec(spec, &s), Error);
  EXPECT_EQ(parse_column_mapping("Sleeve Length = sleeve"), (std::pair<std::string, std::string>{"Sleeve Length", "sleeve"}));
  EXPECT_THROW(parse_column_mapping("Sleeve Length"), Error);
}

TEST(CatalogReader, ImageFolderAndVqaFilesAndTheFormatIsRecognised) {
  std::string d = test::temp_dir("reader_imagefolder");
  write_file_atomic(join_path(d, "metadata.csv"), std::string("file_name,Pattern\nshirts/12.jpg,Solid\n"));
  EXPECT_EQ(detect_catalog_format(d), "imagefolder");
  ReadAll f = read_all(d);
  ASSERT_EQ(f.rows.size(), 1u);
  EXPECT_EQ(f.rows[0].id, "12");  // no id column: the photo's name
  EXPECT_EQ(f.reader->product(f.rows[0]).images, (std::vector<std::string>{join_path(d, "shirts/12.jpg")}));

  std::string v = test::temp_dir("reader_vqa");
  write_file_atomic(join_path(v, "vqa_train.csv"),
                    std::string("id,Question,Answer\n"
                                "5,Which pattern?,Pattern: Solid\n"
                                "6,Which fit?,Slim\n"                   // no prefix: the question says Fit
                                "5,Which colour?,baseColour: Blue\n"
                                "5,Which pattern?,Pattern: Striped\n"   // line 5: contradicts line 2
                                "7,What?,Big\n"));                      // line 6: neither
  write_file_atomic(join_path(v, "vqa_test.csv"), std::string("id,Question,Answer\n8,x,Neck: Round Neck\n"));
  EXPECT_EQ(detect_catalog_format(v), "vqa");
  ReadAll q = read_all(v, {"Shirts"});  // no article types in vqa files: every product is taken
  ASSERT_EQ(q.rows.size(), 3u);
  EXPECT_EQ(q.rows[0].id, "5");
  CatalogProduct five = q.reader->product(q.rows[0]);
  EXPECT_TRUE(five.type_selected);
  using Values = std::vector<std::pair<size_t, std::string>>;
  EXPECT_EQ(five.values, (Values{{0, "Solid"}, {1, "Blue"}}));
  EXPECT_EQ(five.images.front(), join_path(join_path(v, "images"), "5.jpg"));
  EXPECT_EQ(q.reader->product(q.rows[1]).values, (Values{{2, "Slim"}}));
  EXPECT_TRUE(q.reader->product(q.rows[2]).values.empty());  // Neck: not asked for
  ASSERT_EQ(q.bad.size(), 2u);
  EXPECT_EQ(q.bad[0].where, join_path(v, "vqa_train.csv") + ":5");
  EXPECT_NE(q.bad[1].bad_detail.find("field \"Answer\""), std::string::npos) << q.bad[1].bad_detail;

  std::string t = test::temp_dir("reader_detect");
  write_file_atomic(join_path(t, "a.jsonl"), std::string("{}\n"));
  write_file_atomic(join_path(t, "a.tsv"), std::string("id\n"));
  write_file_atomic(join_path(t, "a.csv"), std::string("id,image\n"));
  write_file_atomic(join_path(t, "vqa.csv"), std::string("\xEF\xBB\xBFid,Question,Answer\n"));
  write_file_atomic(join_path(t, "a.txt"), std::string("id\n"));
  EXPECT_EQ(detect_catalog_format(join_path(t, "a.jsonl")), "jsonl");
  EXPECT_EQ(detect_catalog_format(join_path(t, "a.tsv")), "tsv");
  EXPECT_EQ(detect_catalog_format(join_path(t, "a.csv")), "csv");
  EXPECT_EQ(detect_catalog_format(join_path(t, "vqa.csv")), "vqa");
  EXPECT_THROW(detect_catalog_format(join_path(t, "a.txt")), Error);
  EXPECT_THROW(detect_catalog_format(t), Error);  // a directory with none of the known files
  EXPECT_THROW(detect_catalog_format(join_path(t, "none.csv")), Error);
  CatalogSource bad;
  bad.location = join_path(t, "a.csv");
  bad.format = "parquet";
  EXPECT_THROW(open_catalog(bad, {}), Error);
}

TEST(CatalogReader, TableParsersRunOverAStream) {
  // The parsers take bytes, not files (fuzz targets call them so): odd input gives bad rows or an Error.
  CatalogQueryAttributes q{kAttributes, {}};
  for (const char* format : {"csv", "tsv", "jsonl"}) {
    for (std::string bytes : {std::string(""), std::string("\"\n\"\n"), std::string("id,image\n\"1\"x,\n"),
                              std::string("{\"id\":\n"), std::string("id\timage\n1\t\x00\xff\n", 16)}) {
      try {
        auto r = open_table_stream(std::make_unique<std::istringstream>(bytes), "mem", format, "/", {}, q);
        CatalogRow row;
        while (r->next(&row))
          if (row.bad_reason.empty()) r->product(row);
      } catch (const Error&) {
      }
    }
  }
}
