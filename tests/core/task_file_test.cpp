// tailor-test: base
// Task files (core/attributes.h): the default task is today's eight attributes byte for byte; allowed
// values with aliases and article types round-trip through tailor_task.json; bad files are errors
// naming file, line and field.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/attributes.h"
#include "test_util.h"
#include "util/error.h"
#include "util/fs.h"

using namespace tailor;

namespace {

std::string error_of(const std::string& path) {
  try {
    load_attribute_specs(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(TaskFile, DefaultTaskIsTodaysEightAttributesByteForByte) {
  std::string d = test::temp_dir("task_default");
  TaskInfo info;
  info.attributes = default_attributes();
  save_task_info(d, info);
  // The file as written before task files had values: {name, question} per attribute, then values.
  nlohmann::json j;
  j["attributes"] = nlohmann::json::array();
  const char* const names[] = {"Fabric", "Fit", "Collar", "Pattern", "Neck", "Sleeve Length", "Sleeve Styling", "baseColour"};
  const char* const questions[] = {
      "What is the fabric of the shirt in this picture?",        "What is the Fit of the shirt in this picture?",
      "What is the collar of the shirt in this picture?",        "What is the pattern of the shirt in this picture?",
      "What is the neck type of the shirt in this picture?",     "What is the sleeve length of the shirt in this picture?",
      "What is the sleeve styling of the shirt in this picture?", "What is the colour of the shirt in this picture?"};
  for (int i = 0; i < 8; ++i) j["attributes"].push_back({{"name", names[i]}, {"question", questions[i]}});
  j["values"] = nlohmann::json::object();
  EXPECT_EQ(read_file(join_path(d, "tailor_task.json")), j.dump(2) + "\n");
  TaskInfo back = load_task_info(d);
  ASSERT_EQ(back.attributes.size(), 8u);
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(back.attributes[i].name, names[i]);
    EXPECT_EQ(back.attributes[i].question, questions[i]);
    EXPECT_TRUE(back.attributes[i].allowed.empty());
  }
}

TEST(TaskFile, AllowedValuesAliasesAndArticleTypesRoundTrip) {
  std::string d = test::temp_dir("task_custom");
  std::string path = join_path(d, "task.json");
  write_file_atomic(path, std::string(R"({"attributes": [
  {"name": "Sleeve Length", "question": "How long are the sleeves?",
   "values": [{"value": "Short Sleeves", "aliases": ["Half Sleeves", "short"]}, "Long Sleeves", "Sleeveless"],
   "article_types": ["Shirts", "Tshirts"]},
  {"name": "Closure", "question": "How does it close?"}
]})"));
  std::vector<AttributeSpec> task = load_attribute_specs(path);
  ASSERT_EQ(task.size(), 2u);
  const AttributeSpec& sleeve = task[0];
  EXPECT_EQ(normalize_value(sleeve, "Half Sleeves"), "Short Sleeves");
  EXPECT_EQ(normalize_value(sleeve, "  half   SLEEVES "), "Short Sleeves");
  EXPECT_EQ(normalize_value(sleeve, "long sleeves"), "Long Sleeves");
  EXPECT_EQ(normalize_value(sleeve, "Cap Sleeves"), "");  // not allowed
  EXPECT_EQ(normalize_value(task[1], " Zip "), "Zip");     // no allowed values: as written
  EXPECT_TRUE(applies_to(sleeve, "Shirts"));
  EXPECT_FALSE(applies_to(sleeve, "Watches"));
  EXPECT_TRUE(applies_to(sleeve, ""));  // a source without article types
  EXPECT_TRUE(applies_to(task[1], "Watches"));

  TaskInfo info;
  info.attributes = task;
  save_task_info(d, info);
  TaskInfo back = load_task_info(d);
  ASSERT_EQ(back.attributes.size(), 2u);
  ASSERT_EQ(back.attributes[0].allowed.size(), 3u);
  EXPECT_EQ(back.attributes[0].allowed[0].aliases, (std::vector<std::string>{"Half Sleeves", "short"}));
  EXPECT_EQ(back.attributes[0].article_types, (std::vector<std::string>{"Shirts", "Tshirts"}));
  EXPECT_EQ(normalize_value(back.attributes[0], "half sleeves"), "Short Sleeves");
}

TEST(TaskFile, BadTaskFilesNameFileLineAndField) {
  std::string d = test::temp_dir("task_bad");
  std::string path = join_path(d, "task.json");
  struct Case {
    std::string text, want;
  };
  const std::vector<Case> cases = {
      {"{\"attributes\": [\n  {\"name\": \"A\", \"question\": \"q?\"},\n  {\"name\": \"B\",\n   \"question\": 7}\n]}",
       "task.json:4: attributes[1].question must be a non-empty string"},
      {"{\"attributes\": [\n {\"name\": \"A\", \"question\": \"q?\",\n  \"values\": [\"X\",\n   {\"value\": \"x \"}]}\n]}",
       "task.json:4: attributes[0].values[1].value: \"x \" is the same value as attributes[0].values[0]"},
      {"{\"attributes\": [\n {\"name\": \"A\", \"question\": \"q?\", \"values\": [\"X\", {\"aliases\": [\"Y\"]}]}\n]}",
       "task.json:2: attributes[0].values[1] has no \"value\""},
      {"{\"attributes\": [\n {\"name\": \"A\", \"question\": \"q?\",\n  \"colour\": 1}\n]}",
       "task.json:3: attributes[0].colour: unknown field"},
      {"{\"attributes\": [\n {\"name\": \"A\", \"question\": \"q?\"},\n {\"name\": \"A\", \"question\": \"r?\"}\n]}",
       "task.json:3: attributes[1]: attribute \"A\" given twice"},
      {"{\"attributes\": [\n {\"name\": \"A\",\n  \"question\": \"q?\",\n  \"article_types\": \"Shirts\"}]}",
       "task.json:4: attributes[0].article_types must be a list of strings"},
      {"{\"attributes\": [\n {\"name\": \"A\"\n  \"question\": \"q?\"}]}", "task.json:3: invalid JSON"},
      {"{\"Fabric\": \"q?\",\n \"Fit\": 3}", "task.json:2: Fit must be a non-empty string"},
  };
  for (const auto& c : cases) {
    write_file_atomic(path, c.text);
    std::string e = error_of(path);
    EXPECT_NE(e.find(c.want), std::string::npos) << "want: " << c.want << "\ngot:  " << e;
  }
}
