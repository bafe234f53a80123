// tailor-test: base
// describe as a library: catalog attributes (checked against the JSON files read here), the model
// path with a test Answerer (batches, one request per attribute sharing the photo), resume with a
// torn last line, failures reported not skipped, bounded concurrency, CSV, describe_one.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "test_util.h"
#include "util/error.h"
#include "util/fs.h"
#include "write/describe.h"

using namespace tailor;

static std::vector<std::string> lines_of(const std::string& path) { return test::file_lines(path); }

static std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> f;
  size_t s = 0;
  while (true) {
    size_t c = line.find(',', s);
    f.push_back(line.substr(s, c == std::string::npos ? std::string::npos : c - s));
    if (c == std::string::npos) break;
    s = c + 1;
  }
  return f;
}

// The first n ids of the given article type, straight from styles.csv.
static std::vector<std::string> first_ids(const std::string& type, size_t n) {
  std::vector<std::string> ids;
  auto lines = lines_of(join_path(test::fashion_catalog(), "styles.csv"));
  for (size_t i = 1; i < lines.size() && ids.size() < n; ++i) {
    auto f = csv_fields(lines[i]);
    if (f[4] == type) ids.push_back(f[0]);
  }
  return ids;
}

// The photo p<N>.jpg as an image N pixels wide (the test answerers read the width), not decoded.
static ImageRGB width_image(const std::string& path) {
  ImageRGB img;
  img.width = path[path.size() - 5] - '0';
  img.height = 1;
  img.pixels.assign(img.width * 3, 0);
  return img;
}

static DescribeOptions quiet_options(const std::string& out) {
  DescribeOptions o;
  o.output_jsonl = out;
  o.show_progress = false;
  o.log = [](const std::string&) {};
  return o;
}

TEST(Describe, CatalogAttributesMatchTheJsonFiles) {
  std::string dir = test::fashion_catalog();
  CatalogQuery q;
  q.article_types = {"Shirts"};
  q.limit = 25;
  std::vector<Product> ps = read_catalog_products(CatalogSource{dir}, q);
  std::vector<std::string> want_ids = first_ids("Shirts", 25);
  ASSERT_EQ(ps.size(), want_ids.size());
  for (size_t i = 0; i < ps.size(); ++i) {
    SCOPED_TRACE(want_ids[i]);
    EXPECT_EQ(ps[i].id, want_ids[i]);
    EXPECT_TRUE(ps[i].error.empty()) << ps[i].error;
    EXPECT_EQ(ps[i].image_path, join_path(dir, "images/" + want_ids[i] + ".jpg"));
    auto j = nlohmann::json::parse(read_file(join_path(dir, "styles/" + want_ids[i] + ".json")))["data"];
    ProductAttributes want;
    for (const auto& spec : default_attributes()) {
      std::string v;
      if (j["articleAttributes"].contains(spec.name)) v = j["articleAttributes"][spec.name];
      else if (j.contains(spec.name)) v = j[spec.name];
      if (!v.empty() && v != "NA") want.push_back({spec.name, v});
    }
    want.push_back({"articleType", "Shirts"});
    ASSERT_EQ(ps[i].attributes.size(), want.size());
    for (size_t k = 0; k < want.size(); ++k) {
      EXPECT_EQ(ps[i].attributes[k].name, want[k].name);
      EXPECT_EQ(ps[i].attributes[k].value, want[k].value);
    }
  }
}

// A tiny catalog written by the test: three products, one without its JSON file.
static std::string small_catalog(const std::string& name) {
  std::string d = test::temp_dir(name);
  make_dirs(join_path(d, "styles"));
  write_file_atomic(join_path(d, "styles.csv"),
                    "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName\n"
                    "1,Men,Apparel,Topwear,Shirts,Blue,Fall,2011,Casual,One\n"
                    "2,Men,Apparel,Topwear,Shirts,NA,Fall,2011,Casual,Two\n"
                    "3,Men,Apparel,Topwear,Tshirts,Red,Fall,2011,Casual,Three\n");
  write_file_atomic(join_path(d, "styles/1.json"),
                    R"({"data":{"baseColour":"Blue","articleAttributes":{"Fabric":"Linen","Fit":"NA"}}})");
  write_file_atomic(join_path(d, "styles/3.json"), R"({"data":{"articleAttributes":{"Pattern":"Solid"}}})");
  return d;
}

TEST(Describe, MissingJsonIsReportedAsAFailureNotSkipped) {
  std::string cat = small_catalog("cat-missing");
  std::vector<Product> ps = read_catalog_products(CatalogSource{cat}, CatalogQuery{});
  ASSERT_EQ(ps.size(), 3u);
  EXPECT_NE(ps[1].error.find("styles/2.json"), std::string::npos) << ps[1].error;
  // NA values are left out; colour from the CSV when the JSON lacks it.
  ASSERT_EQ(ps[2].attributes.size(), 3u);
  EXPECT_EQ(ps[2].attributes[0].value, "Solid");
  EXPECT_EQ(ps[2].attributes[1].value, "Red");
  std::string out = join_path(cat, "out.jsonl");
  auto w = make_writer(WriterConfig{});
  DescribeSummary s = describe_products(ps, *w, nullptr, quiet_options(out));
  EXPECT_EQ(s.done, 2);
  EXPECT_EQ(s.failed, 1);
  ASSERT_EQ(s.failures.size(), 1u);
  EXPECT_EQ(s.failures.begin()->second, std::vector<std::string>{"2"});
  EXPECT_NE(s.text().find("styles/2.json"), std::string::npos) << s.text();
  EXPECT_EQ(lines_of(out).size(), 2u);
}

TEST(Describe, BrokenCsvNamesTheLine) {
  std::string d = test::temp_dir("cat-broken");
  write_file_atomic(join_path(d, "styles.csv"), "id,articleType\n1,Shirts\n2,Shirts,extra\n");
  try {
    read_catalog_products(CatalogSource{d}, CatalogQuery{});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("styles.csv:3"), std::string::npos) << e.what();
  }
  CatalogQuery q;
  q.ids = {"1", "99"};
  q.read_attributes = false;
  write_file_atomic(join_path(d, "styles.csv"), "id,articleType\n1,Shirts\n2,Shirts\n");
  EXPECT_THROW(read_catalog_products(CatalogSource{d}, q), Error);
}

// Answers "<Attribute>: <value>-<image width>" and records how it was called.
class TestAnswerer : public Answerer {
 public:
  TestAnswerer() {
    task_.attributes = {{"Fabric", "What is the fabric?"}, {"Fit", "What is the fit?"}, {"Pattern", "Which pattern?"}};
  }
  std::vector<Answer> answer(const std::vector<AnswerRequest>& requests, const GenerationOptions& options) override {
    calls.push_back(requests.size());
    std::vector<Answer> out;
    for (size_t i = 0; i < requests.size(); ++i) {
      const auto& spec = task_.attributes[i % task_.attributes.size()];
      // The requests of one photo come together, in attribute order, sharing one image.
      if (requests[i].prompt != wrap_prompt(spec.question)) problems.push_back("prompt " + requests[i].prompt);
      if (i % 3 != 0 && requests[i].image != requests[i - 1].image) problems.push_back("image not shared");
      if (i % 3 == 0 && i > 0 && requests[i].image == requests[i - 1].image) problems.push_back("image shared across photos");
      int w = requests[i].image->width;
      if (spec.name == "Pattern" && w == 3) out.push_back({"Pattern: NA"});          // dropped
      else if (spec.name == "Fit") out.push_back({"Slim " + std::to_string(w)});      // no prefix: still Fit
      else out.push_back({spec.name + ": value-" + std::to_string(w)});
    }
    return out;
  }
  const TaskInfo& task() const override { return task_; }
  std::string name() const override { return "test-model"; }
  std::vector<size_t> calls;
  std::vector<std::string> problems;

 private:
  TaskInfo task_;
};

TEST(Describe, ModelPathAsksEveryAttributeInBatches) {
  std::string d = test::temp_dir("model-path");
  std::vector<std::string> paths;
  for (int i = 1; i <= 5; ++i) {
    paths.push_back(join_path(d, "p" + std::to_string(i) + ".jpg"));
    write_file_atomic(paths.back(), std::string("not decoded by this test"));
  }
  paths.push_back(join_path(d, "p6.jpg"));  // missing photo
  std::vector<Product> ps = products_from_images(paths);
  TestAnswerer model;
  DescribeOptions o = quiet_options(join_path(d, "out.jsonl"));
  o.batch_size = 2;
  o.load_image = width_image;
  auto w = make_writer(WriterConfig{});
  DescribeSummary s = describe_products(ps, *w, &model, o);
  EXPECT_TRUE(model.problems.empty()) << model.problems[0];
  EXPECT_EQ(model.calls, (std::vector<size_t>{6, 6, 3}));  // 2 photos x 3 attributes per pass
  EXPECT_EQ(s.done, 5);
  EXPECT_EQ(s.failed, 1);
  EXPECT_NE(s.failures.begin()->first.find("p6.jpg"), std::string::npos);
  std::map<std::string, nlohmann::json> by_id;
  for (const auto& l : lines_of(o.output_jsonl)) {
    auto j = nlohmann::json::parse(l);
    by_id[j["id"]] = j;
  }
  ASSERT_EQ(by_id.size(), 5u);
  for (int i = 1; i <= 5; ++i) {
    const auto& j = by_id["p" + std::to_string(i)];
    EXPECT_EQ(j["attributes"]["Fabric"], "value-" + std::to_string(i));
    EXPECT_EQ(j["attributes"]["Fit"], "Slim " + std::to_string(i));
    if (i == 3) EXPECT_FALSE(j["attributes"].contains("Pattern"));
    else EXPECT_EQ(j["attributes"]["Pattern"], "value-" + std::to_string(i));
    EXPECT_EQ(j["attributes_from"], "test-model");
    EXPECT_EQ(j["writer"], "offline");
    EXPECT_EQ(j["model"], "offline-v1");
    EXPECT_NE(j["description"].get<std::string>().find("value-" + std::to_string(i)), std::string::npos);
  }
}

// Choice answers with a confidence: Fit is always sure (0.9), Fabric as sure as the photo is wide
// (0.2 per pixel), Pattern has no known values (free text, no confidence).
class ChoiceAnswerer : public Answerer {
 public:
  ChoiceAnswerer() {
    task_.attributes = {{"Fabric", "What is the fabric?"}, {"Fit", "What is the fit?"}, {"Pattern", "Which pattern?"}};
    task_.values["Fabric"] = {"Linen", "Cotton"};
    task_.values["Fit"] = {"Slim", "Regular"};
    task_.threshold["Fabric"] = 0.7;  // as `tailor eval --calibrate` stores it
  }
  std::vector<Answer> answer(const std::vector<AnswerRequest>& requests, const GenerationOptions&) override {
    std::vector<Answer> out;
    for (const auto& r : requests) {
      Answer a;
      if (r.candidates.empty()) {
        a.text = "Pattern: Solid";
      } else {
        a.text = r.candidates.back();
        bool fabric = a.text.rfind("Fabric", 0) == 0;
        a.confidence = fabric ? std::min(0.95, 0.2 * r.image->width) : 0.9;
        a.log_likelihoods.assign(r.candidates.size(), -1.0);
      }
      out.push_back(a);
    }
    return out;
  }
  const TaskInfo& task() const override { return task_; }
  std::string name() const override { return "choice-model"; }

 private:
  TaskInfo task_;
};

static std::map<std::string, nlohmann::json> describe_with_choice(DescribeOptions o, const std::string& dir) {
  std::vector<std::string> paths;
  for (int i = 1; i <= 5; ++i) {
    paths.push_back(join_path(dir, "p" + std::to_string(i) + ".jpg"));
    write_file_atomic(paths.back(), std::string("not decoded by this test"));
  }
  o.load_image = width_image;
  ChoiceAnswerer model;
  auto w = make_writer(WriterConfig{});
  EXPECT_EQ(describe_products(products_from_images(paths), *w, &model, o).done, 5);
  std::map<std::string, nlohmann::json> by_id;
  for (const auto& l : lines_of(o.output_jsonl)) {
    auto j = nlohmann::json::parse(l);
    by_id[j["id"]] = j;
  }
  return by_id;
}

TEST(Describe, ChoiceAnswersRecordConfidenceAndMarkDoubtfulProductsForReview) {
  std::string d = test::temp_dir("choice");
  auto by_id = describe_with_choice(quiet_options(join_path(d, "out.jsonl")), d);
  ASSERT_EQ(by_id.size(), 5u);
  for (int i = 1; i <= 5; ++i) {
    const auto& j = by_id["p" + std::to_string(i)];
    double fabric = std::min(0.95, 0.2 * i);
    EXPECT_EQ(j["attributes"]["Fabric"], "Cotton");
    EXPECT_NEAR(j["confidence"]["Fabric"].get<double>(), fabric, 1e-12);
    EXPECT_NEAR(j["confidence"]["Fit"].get<double>(), 0.9, 1e-12);
    EXPECT_FALSE(j["confidence"].contains("Pattern"));  // free text has none
    bool doubtful = fabric < 0.7;                         // the model's calibrated threshold
    EXPECT_EQ(j["needs_review"], doubtful) << j.dump();
    EXPECT_EQ(j["doubtful"], doubtful ? nlohmann::json::array({"Fabric"}) : nlohmann::json::array()) << j.dump();
    // A doubtful attribute is kept out of the writer's facts, not out of the record.
    std::string text = j["description"];
    EXPECT_EQ(text.find("cotton") != std::string::npos, !doubtful) << text;
    EXPECT_NE(text.find("regular"), std::string::npos) << text;
  }
  // One threshold for every attribute, and doubtful attributes given to the writer anyway.
  DescribeOptions o = quiet_options(join_path(d, "out2.jsonl"));
  o.review_below_override = 0.95;
  o.doubtful_to_writer = true;
  by_id = describe_with_choice(o, d);
  const auto& j = by_id["p5"];
  EXPECT_EQ(j["doubtful"], nlohmann::json::array({"Fit"})) << j.dump();
  EXPECT_NE(j["description"].get<std::string>().find("regular"), std::string::npos);
}

TEST(Describe, ResumeDropsATornLineAndNeverDuplicates) {
  std::string dir = test::fashion_catalog();
  CatalogQuery q;
  q.article_types = {"Tshirts"};
  q.limit = 12;
  std::vector<Product> all = read_catalog_products(CatalogSource{dir}, q);
  ASSERT_EQ(all.size(), 12u);
  std::string out = join_path(test::temp_dir("resume"), "out.jsonl");
  auto w = make_writer(WriterConfig{});
  std::vector<Product> first(all.begin(), all.begin() + 5);
  EXPECT_EQ(describe_products(first, *w, nullptr, quiet_options(out)).done, 5);
  // A crash in the middle of a line (a torn write) leaves this behind:
  { std::ofstream(out, std::ios::app) << R"({"id":")" << all[5].id << R"(","attributes":{"Fab)"; }
  std::vector<std::string> notes;
  DescribeOptions o = quiet_options(out);
  o.log = [&](const std::string& s) { notes.push_back(s); };
  o.output_csv = out + ".csv";
  DescribeSummary s = describe_products(all, *w, nullptr, o);
  EXPECT_EQ(s.skipped, 5);
  EXPECT_EQ(s.done, 7);
  EXPECT_GT(s.dropped_partial_bytes, 20);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("partial"), std::string::npos);
  EXPECT_NE(s.text().find("partial"), std::string::npos);
  std::string text = read_file(out);
  EXPECT_EQ(text.back(), '\n');
  std::set<std::string> ids;
  for (const auto& l : lines_of(out)) ids.insert(nlohmann::json::parse(l)["id"].get<std::string>());
  EXPECT_EQ(lines_of(out).size(), 12u);
  std::set<std::string> want;
  for (const auto& p : all) want.insert(p.id);
  EXPECT_EQ(ids, want);
  // Re-running writes nothing new.
  EXPECT_EQ(describe_products(all, *w, nullptr, quiet_options(out)).done, 0);
  EXPECT_EQ(lines_of(out).size(), 12u);
  // The CSV has a header and one row per record; descriptions contain commas, so they are quoted.
  auto csv = lines_of(out + ".csv");
  ASSERT_EQ(csv.size(), 13u);
  EXPECT_EQ(csv[0].substr(0, 3), "id,");
  EXPECT_NE(csv[0].find(",description,writer,model"), std::string::npos);
}

TEST(Describe, ForeignOutputFileIsRefused) {
  std::string out = join_path(test::temp_dir("foreign"), "out.jsonl");
  write_file_atomic(out, R"({"id":"1","attributes":{},"description":"d","writer":"offline"})" "\nhello world\n");
  try {
    read_describe_output(out);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("out.jsonl:2"), std::string::npos) << e.what();
  }
  // prepare's pairs file (an id on every line, but not describe's records): refused, left as it was.
  std::string pairs = join_path(test::temp_dir("foreign"), "train.jsonl");
  std::string text = R"({"id":"15970","image":"images/15970.jpg","question":"q","answer":"a"})" "\n{\"id\":\"1";
  write_file_atomic(pairs, text);
  std::vector<Product> products(1);
  products[0].id = "7";
  products[0].attributes = {{"baseColour", "Red"}};
  auto w = make_writer(WriterConfig{});
  try {
    describe_products(products, *w, nullptr, quiet_options(pairs));
    FAIL() << "describe appended to prepare's train.jsonl";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.jsonl:1: not a describe record"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_file(pairs), text);  // not even its torn last line was dropped
  EXPECT_THROW(read_describe_output(test::temp_dir("foreign")), Error);  // a directory
}

TEST(Describe, SecondConcurrentRunOnOneOutputIsRefused) {
  std::string out = join_path(test::temp_dir("locked"), "out.jsonl");
  std::vector<Product> products(1);
  products[0].id = "7";
  products[0].attributes = {{"baseColour", "Red"}};
  auto w = make_writer(WriterConfig{});
  {
    FileLock running(out + ".lock");  // what a run in progress holds (in this or another process)
    try {
      describe_products(products, *w, nullptr, quiet_options(out));
      FAIL() << "a second describe ran beside the first";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("another tailor describe is writing " + out), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("pid " + std::to_string(::getpid())), std::string::npos) << e.what();
    }
    EXPECT_FALSE(file_exists(out));
  }
  // Once the first run has ended (its lock released, also by a kill), the next one runs.
  EXPECT_EQ(describe_products(products, *w, nullptr, quiet_options(out)).done, 1);
  EXPECT_EQ(describe_products(products, *w, nullptr, quiet_options(out)).skipped, 1);
}

class FailingWriter : public Writer {
 public:
  std::string write(const ProductAttributes&) const override { throw Error("access denied to the model"); }
  std::string name() const override { return "failing"; }
  std::string model() const override { return "none"; }
};

TEST(Describe, StopsEarlyWhenEveryCallFails) {
  std::vector<Product> ps;
  for (int i = 0; i < 30; ++i) ps.push_back({std::to_string(i), "", {{"Fabric", "Cotton"}}, ""});
  DescribeOptions o = quiet_options(join_path(test::temp_dir("stop"), "out.jsonl"));
  o.concurrency = 1;
  o.stop_after_consecutive_failures = 5;
  DescribeSummary s = describe_products(ps, FailingWriter(), nullptr, o);
  EXPECT_EQ(s.failed, 5);
  EXPECT_EQ(s.not_attempted, 25);
  EXPECT_EQ(s.done, 0);
  EXPECT_EQ(s.failures["access denied to the model"].size(), 5u);
  EXPECT_FALSE(file_exists(o.output_jsonl) && !read_file(o.output_jsonl).empty());
}

class SlowWriter : public Writer {
 public:
  std::string write(const ProductAttributes& a) const override {
    int now = ++in_flight;
    int seen = max_in_flight.load();
    while (now > seen && !max_in_flight.compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    --in_flight;
    return "text for " + a[0].value;
  }
  std::string name() const override { return "slow"; }
  std::string model() const override { return "slow-1"; }
  mutable std::atomic<int> in_flight{0}, max_in_flight{0};
};

TEST(Describe, WriterCallsAreBoundedByConcurrency) {
  std::vector<Product> ps;
  for (int i = 0; i < 24; ++i) ps.push_back({"id" + std::to_string(i), "", {{"Fabric", "F" + std::to_string(i)}}, ""});
  DescribeOptions o = quiet_options(join_path(test::temp_dir("conc"), "out.jsonl"));
  o.concurrency = 3;
  SlowWriter w;
  DescribeSummary s = describe_products(ps, w, nullptr, o);
  EXPECT_EQ(s.done, 24);
  EXPECT_LE(w.max_in_flight.load(), 3);
  EXPECT_GE(w.max_in_flight.load(), 2);  // it did run calls side by side
  for (const auto& l : lines_of(o.output_jsonl)) {
    auto j = nlohmann::json::parse(l);
    EXPECT_EQ(j["description"], "text for " + j["attributes"]["Fabric"].get<std::string>());
  }
}

TEST(Describe, DescribeOneForServing) {
  auto w = make_writer(WriterConfig{});
  DescribedProduct d = describe_one(*w, {{"zeta", "Z"}, {"baseColour", "Green"}, {"Fabric", "Wool"}, {"Fit", "NA"},
                                         {"articleType", "Shirts"}});
  ASSERT_EQ(d.attributes.size(), 4u);
  EXPECT_EQ(d.attributes[0].name, "Fabric");
  EXPECT_EQ(d.attributes[1].name, "baseColour");
  EXPECT_EQ(d.attributes[2].name, "articleType");
  EXPECT_EQ(d.attributes[3].name, "zeta");
  EXPECT_EQ(d.description, offline_description(d.attributes));
  EXPECT_EQ(d.writer, "offline");
  EXPECT_THROW(describe_one(*w, {{"Fit", "NA"}}), Error);
}
