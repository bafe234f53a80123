// tailor-test: base
// util/text: the CSV record reader (RFC 4180 records over a stream, quoted line breaks, TSV).
#include <gtest/gtest.h>

#include <sstream>

#include "util/text.h"

using namespace tailor;

namespace {

struct Record {
  int64_t line;
  bool ok;
  std::vector<std::string> fields;
};

std::vector<Record> records(const std::string& text, char sep, bool quoted_newlines, size_t max_bytes = 1 << 20) {
  std::istringstream in(text);
  CsvRecordReader r(in, sep, quoted_newlines, max_bytes);
  std::vector<Record> out;
  std::vector<std::string> f;
  bool ok = false;
  std::string why;
  while (r.next(&f, &ok, &why)) out.push_back({r.line_no(), ok, ok ? f : std::vector<std::string>{why}});
  return out;
}

}  // namespace

TEST(CsvRecordReader, QuotedLineBreaksSpanLinesAndLinesAreCounted) {
  auto r = records("\xEF\xBB\xBFid,text\r\n1,\"a\r\nb, \"\"c\"\"\"\r\n\r\n2,plain\n", ',', true);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].fields, (std::vector<std::string>{"id", "text"}));
  EXPECT_EQ(r[1].line, 2);
  EXPECT_EQ(r[1].fields, (std::vector<std::string>{"1", "a\nb, \"c\""}));
  EXPECT_EQ(r[2].line, 5);
  EXPECT_EQ(r[2].fields, (std::vector<std::string>{"2", "plain"}));
}

TEST(CsvRecordReader, PerLineModeKeepsAnOpenQuoteToItsLine) {
  auto r = records("1,\"open\n2,ok\n", ',', false);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_FALSE(r[0].ok);
  EXPECT_TRUE(r[1].ok);
}

TEST(CsvRecordReader, AnOpenQuoteIsBoundedAndTsvSplitsOnTabs) {
  auto r = records("1,\"never closed\n" + std::string(200, 'x') + "\n" + std::string(200, 'y') + "\n", ',', true, 100);
  ASSERT_GE(r.size(), 1u);
  EXPECT_FALSE(r[0].ok);
  EXPECT_NE(r[0].fields[0].find("still open"), std::string::npos) << r[0].fields[0];
  auto t = records("a\tb,c\t\"d\te\"\n", '\t', true);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].fields, (std::vector<std::string>{"a", "b,c", "d\te"}));
}
