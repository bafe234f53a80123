// tailor-test: base
// The offline writer: every given attribute value appears in the text, as sentences (no "Name:
// value" list); same input -> same text (also in another order); different products read differently.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "test_util.h"
#include "util/fs.h"
#include "write/writer.h"

using namespace tailor;

static std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

static void expect_covers(const ProductAttributes& attrs, const std::string& text) {
  for (const auto& a : attrs)
    EXPECT_NE(lower(text).find(lower(a.value)), std::string::npos) << a.name << "=" << a.value << " missing in: " << text;
  for (const auto& a : attrs) EXPECT_EQ(text.find(a.name + ":"), std::string::npos) << "reads like a list: " << text;
  EXPECT_EQ(text.back(), '.');
  EXPECT_TRUE(std::isupper(static_cast<unsigned char>(text[0]))) << text;
  // Grammar: "an" before a vowel ("an olive shirt"), never "a olive".
  for (const char* bad : {" a a", " a e", " a i", " a o", " a u", "A a", "A e", "A i", "A o", "A u"})
    EXPECT_EQ(text.find(bad), std::string::npos) << text;
}

TEST(OfflineWriter, UsesEveryAttributeOfAFullShirt) {
  ProductAttributes a = {{"Fabric", "Cotton"},          {"Fit", "Slim Fit"},
                         {"Collar", "Button Down"},     {"Pattern", "Checked"},
                         {"Neck", "Mandarin Collar"},   {"Sleeve Length", "Long Sleeves"},
                         {"Sleeve Styling", "Roll-up Sleeves"}, {"baseColour", "Olive"},
                         {"articleType", "Shirts"},     {"Occasion", "Party"}};
  std::string text = offline_description(a);
  expect_covers(a, text);
  // Sentences, not a list: at least one sentence per few attributes.
  EXPECT_GE(std::count(text.begin(), text.end(), '.'), 6) << text;
}

TEST(OfflineWriter, SameInputSameTextInAnyOrder) {
  ProductAttributes a = {{"Fabric", "Linen"}, {"Fit", "Regular Fit"}, {"baseColour", "White"}, {"articleType", "Shirts"}};
  ProductAttributes b(a.rbegin(), a.rend());
  EXPECT_EQ(offline_description(a), offline_description(a));
  EXPECT_EQ(offline_description(a), offline_description(b));
  WriterConfig c;
  auto w = make_writer(c);  // offline is the default
  EXPECT_EQ(w->name(), "offline");
  EXPECT_EQ(w->write(a), offline_description(a));
}

// Every Shirt/Tshirt of the real catalog (read here straight from the JSON files): all values
// appear, and the texts vary (many different openings and orders).
TEST(OfflineWriter, CoversEveryAttributeOfRealCatalogProductsAndVaries) {
  std::string dir = test::fashion_catalog();
  std::ifstream csv(join_path(dir, "styles.csv"));
  std::string line;
  std::getline(csv, line);
  std::set<std::string> texts, openings, inputs;
  int n = 0;
  const char* names[] = {"Fabric", "Fit", "Collar", "Pattern", "Neck", "Sleeve Length", "Sleeve Styling"};
  while (std::getline(csv, line) && n < 300) {
    std::vector<std::string> f;
    size_t s = 0;
    while (true) {
      size_t c = line.find(',', s);
      f.push_back(line.substr(s, c == std::string::npos ? std::string::npos : c - s));
      if (c == std::string::npos) break;
      s = c + 1;
    }
    if (f[4] != "Shirts" && f[4] != "Tshirts") continue;
    auto j = nlohmann::json::parse(read_file(join_path(dir, "styles/" + f[0] + ".json")));
    ProductAttributes a;
    const auto& art = j["data"]["articleAttributes"];
    for (const char* name : names)
      if (art.contains(name) && art[name].is_string() && art[name] != "NA") a.push_back({name, art[name]});
    if (f[5] != "NA" && !f[5].empty()) a.push_back({"baseColour", f[5]});
    a.push_back({"articleType", f[4]});
    std::string text = offline_description(a);
    SCOPED_TRACE(f[0]);
    expect_covers(a, text);
    texts.insert(text);
    std::string key;
    for (const auto& x : a) key += x.name + "=" + x.value + ";";
    inputs.insert(key);
    openings.insert(text.substr(0, text.find(' ', 6)));
    ++n;
  }
  EXPECT_EQ(n, 300);
  EXPECT_GE(openings.size(), 3u);
  // Products with the same attributes share a text (same input, same text); different inputs
  // almost always read differently.
  EXPECT_LE(texts.size(), inputs.size());
  EXPECT_GE(texts.size() * 10, inputs.size() * 9) << texts.size() << " texts for " << inputs.size() << " inputs";
}

TEST(OfflineWriter, SparseAttributesStillReadWell) {
  ProductAttributes a = {{"Sleeve Length", "Sleeveless"}};
  std::string t = offline_description(a);
  expect_covers(a, t);
  ProductAttributes b = {{"Sleeve Styling", "Cuffed Sleeves"}, {"baseColour", "Black"}};
  expect_covers(b, offline_description(b));
}
