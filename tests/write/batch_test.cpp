// tailor-test: base
// describe --batch as a library against the simulated services of batch_mocks.h: Bedrock batch
// inference (S3 upload in parts, CreateModelInvocationJob, Submitted → InProgress → Completed,
// output joined by recordId) and OpenAI's Batch API (file upload, validating → in_progress →
// finalizing → completed, output and error files joined by custom_id). Some records fail in each;
// --retry-failed describes them on demand. Every product ends in the output exactly once, with the
// description made from its own attributes; every AWS request's signature is checked by the mocks.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "batch_mocks.h"
#include "test_util.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/s3.h"
#include "write/batch.h"
#include "write/cost.h"

using namespace tailor;
using json = nlohmann::json;

static const char* kKeyId = "AKIDBATCHTEST0001";
static const char* kSecret = "batchSecret/Key+0123456789abcdefABCDEF";
static const char* kOpenAIKey = "sk-batch-test-key-0123";

// n products with distinct attributes.
static std::vector<Product> products(int n) {
  std::vector<Product> out;
  const char* colours[] = {"Blue", "Red", "Green", "White", "Black"};
  for (int i = 0; i < n; ++i) {
    Product p;
    p.id = std::to_string(10000 + i);
    p.attributes = {{"Fabric", "Cotton"}, {"baseColour", colours[i % 5]}, {"Pattern", "Stripe " + std::to_string(i)},
                    {"articleType", "Shirts"}};
    out.push_back(p);
  }
  return out;
}

static std::vector<json> lines_of(const std::string& path) {
  std::vector<json> out;
  std::ifstream in(path);
  std::string l;
  while (std::getline(in, l)) out.push_back(json::parse(l));
  return out;
}

// Every product once, and its description names its own attributes (the mock's answer does).
static void expect_each_once_and_joined_right(const std::string& out, const std::vector<Product>& ps) {
  std::map<std::string, json> by_id;
  for (const auto& j : lines_of(out)) {
    std::string id = j["id"];
    EXPECT_TRUE(by_id.emplace(id, j).second) << "duplicate " << id;
  }
  ASSERT_EQ(by_id.size(), ps.size());
  for (const auto& p : ps) {
    ASSERT_TRUE(by_id.count(p.id)) << p.id;
    const json& j = by_id[p.id];
    EXPECT_EQ(j["description"], mock::description_for("<product_attributes>" + join_attributes(p.attributes) +
                                                      "</product_attributes>"))
        << p.id;
    EXPECT_EQ(j["attributes"]["Pattern"], p.attributes[2].value);
  }
}

struct BatchFixture : ::testing::Test {
  std::vector<std::string> log;
  void SetUp() override {
    mock::clear_env();
    setenv("HOME", test::temp_dir("batch-home").c_str(), 1);
    setenv("AWS_ACCESS_KEY_ID", kKeyId, 1);
    setenv("AWS_SECRET_ACCESS_KEY", kSecret, 1);
    setenv("OPENAI_API_KEY", kOpenAIKey, 1);
  }
  void TearDown() override { mock::clear_env(); }
  DescribeOptions options(const std::string& dir) {
    DescribeOptions o;
    o.output_jsonl = join_path(dir, "d.jsonl");
    o.show_progress = false;
    o.log = [this](const std::string& s) { log.push_back(s); };
    return o;
  }
  WriterConfig writer(const std::string& kind, const std::string& endpoint) {
    WriterConfig c;
    c.kind = kind;
    c.region = "us-west-2";
    if (kind == "bedrock") c.endpoint_url = endpoint;
    else c.base_url = endpoint;
    c.http.max_attempts = 4;
    c.http.backoff_base_ms = 2;
    c.http.backoff_max_ms = 10;
    c.http.log = [this](const std::string& s) { log.push_back(s); };
    return c;
  }
  std::string all_log() {
    std::string s;
    for (const auto& l : log) s += l + "\n";
    return s;
  }
};

TEST_F(BatchFixture, BedrockJobEndsWithEveryProductOnceAndFailedRecordsRetriedOnDemand) {
  mock::S3 s3(kKeyId, kSecret, "us-west-2");
  mock::BedrockControl bedrock(s3, kKeyId, kSecret, "us-west-2");
  bedrock.throttle_every = 3;  // throttled and 5xx status checks are retried
  bedrock.fail_every = 4;
  setenv("AWS_ENDPOINT_URL_S3", s3.server.url().c_str(), 1);
  setenv("AWS_ENDPOINT_URL_BEDROCK", bedrock.server.url().c_str(), 1);
  // The on-demand writer for the retried records: Converse on a mock runtime, signature checked.
  mock::Server runtime;
  runtime.check = [](const httplib::Request& r) { return mock::verify_sigv4(r, kKeyId, kSecret, "us-west-2", "bedrock"); };
  runtime.respond = [](const httplib::Request& r) {
    auto body = json::parse(r.body);
    std::string user = body["messages"][0]["content"][0]["text"];
    return mock::Reply{200, json{{"output", {{"message", {{"role", "assistant"}, {"content", {{{"text", mock::description_for(user)}}}}}}}},
                                 {"usage", {{"inputTokens", 30}, {"outputTokens", 7}, {"totalTokens", 37}}}}.dump()};
  };

  std::string dir = test::temp_dir("batch-bedrock");
  std::vector<Product> ps = products(130);
  WriterConfig wc = writer("bedrock", runtime.url());
  auto on_demand = make_writer(wc);
  BatchOptions bo;
  bo.s3_prefix = "s3://tailor-bucket/runs/shirts/";
  bo.role_arn = "arn:aws:iam::123456789012:role/BedrockBatch";
  bo.s3_path_style = true;
  bo.s3_part_bytes = 16 << 10;  // the ~60 KB input goes up in parts
  bo.poll_seconds = 0.001;
  auto service = make_batch_service(wc, bo);
  DescribeOptions o = options(dir);

  DescribeSummary s = describe_products_batch(ps, wc, *on_demand, nullptr, o, bo, *service);
  int failing = 0;
  int64_t want_in = 0;
  for (int n = 1; n <= 130; ++n) {
    if (mock::record_fails(n)) failing++;
    else want_in += 100 + n;
  }
  EXPECT_EQ(s.done, 130 - failing);
  EXPECT_EQ(s.failed, failing);
  EXPECT_EQ(s.usage.input_tokens, want_in);
  EXPECT_EQ(s.usage.output_tokens, 50 * (130 - failing));
  ASSERT_EQ(s.failures.size(), 1u) << s.text();
  EXPECT_NE(s.failures.begin()->first.find("Malformed input request"), std::string::npos) << s.text();
  EXPECT_NE(s.failures.begin()->first.find("--retry-failed"), std::string::npos) << s.text();
  EXPECT_EQ(bedrock.creates, 1);
  EXPECT_GE(s3.multipart_completed, 1);
  EXPECT_TRUE(s3.server.problems.empty()) << s3.server.problems.front();
  EXPECT_TRUE(bedrock.server.problems.empty()) << bedrock.server.problems.front();
  // The job went through its states, and the progress line said so.
  std::string l = all_log();
  for (const char* st : {"Submitted", "InProgress", "Completed"}) EXPECT_NE(l.find(st), std::string::npos) << l;
  EXPECT_NE(l.find("ThrottlingException"), std::string::npos) << l;
  // Records in S3 under the prefix, in Anthropic's InvokeModel body, with 11-character record ids.
  const auto& job = bedrock.jobs.begin()->second;
  EXPECT_EQ(job.input.rfind("s3://tailor-bucket/runs/shirts/tailor-", 0), 0u) << job.input;
  EXPECT_EQ(job.model, kDefaultBedrockModel);
  json first = json::parse(s3.objects[mock::s3_key(job.input)].substr(0, s3.objects[mock::s3_key(job.input)].find('\n')));
  EXPECT_EQ(first["recordId"].get<std::string>().size(), 11u);
  EXPECT_EQ(first["modelInput"]["anthropic_version"], "bedrock-2023-05-31");
  EXPECT_EQ(first["modelInput"]["max_tokens"], 400);

  // A second run without --retry-failed submits nothing and still reports them.
  s = describe_products_batch(ps, wc, *on_demand, nullptr, o, bo, *service);
  EXPECT_EQ(s.failed, failing);
  EXPECT_EQ(s.skipped, 130 - failing);
  EXPECT_EQ(bedrock.creates, 1);

  bo.retry_failed = true;
  s = describe_products_batch(ps, wc, *on_demand, nullptr, o, bo, *service);
  EXPECT_EQ(s.done, failing) << s.text();
  EXPECT_EQ(s.failed, 0) << s.text();
  EXPECT_EQ(s.usage.input_tokens, 30 * failing);
  EXPECT_EQ(static_cast<int>(runtime.count()), failing);
  EXPECT_TRUE(runtime.problems.empty()) << runtime.problems.front();
  EXPECT_EQ(bedrock.creates, 1);
  expect_each_once_and_joined_right(o.output_jsonl, ps);
  for (const char* secret : {kKeyId, kSecret}) EXPECT_EQ(l.find(secret), std::string::npos);
}

TEST_F(BatchFixture, AFailedBedrockJobFailsEveryRecordWithItsReasonAndNovaBodiesAreNative) {
  mock::S3 s3(kKeyId, kSecret, "us-west-2");
  mock::BedrockControl bedrock(s3, kKeyId, kSecret, "us-west-2");
  bedrock.fail_jobs = true;
  setenv("AWS_ENDPOINT_URL_S3", s3.server.url().c_str(), 1);
  setenv("AWS_ENDPOINT_URL_BEDROCK", bedrock.server.url().c_str(), 1);
  std::string dir = test::temp_dir("batch-failed-job");
  WriterConfig wc = writer("bedrock", "http://127.0.0.1:1");
  wc.model = "us.amazon.nova-lite-v1:0";
  auto on_demand = make_writer(wc);
  BatchOptions bo;
  bo.s3_prefix = "s3://b/p";
  bo.role_arn = "arn:aws:iam::123456789012:role/R";
  bo.s3_path_style = true;
  bo.poll_seconds = 0.001;
  auto service = make_batch_service(wc, bo);
  DescribeOptions o = options(dir);
  std::vector<Product> ps = products(100);
  DescribeSummary s = describe_products_batch(ps, wc, *on_demand, nullptr, o, bo, *service);
  EXPECT_EQ(s.done, 0);
  EXPECT_EQ(s.failed, 100);
  ASSERT_EQ(s.failures.size(), 1u) << s.text();
  EXPECT_NE(s.failures.begin()->first.find("ended Failed: The role cannot read the input"), std::string::npos) << s.text();
  EXPECT_FALSE(file_exists(o.output_jsonl) && !read_file(o.output_jsonl).empty());
  // Nova's own InvokeModel body: messages-v1 with content blocks and inferenceConfig.
  const auto& job = bedrock.jobs.begin()->second;
  std::string input = s3.objects[mock::s3_key(job.input)];
  json first = json::parse(input.substr(0, input.find('\n')))["modelInput"];
  EXPECT_EQ(first["schemaVersion"], "messages-v1");
  EXPECT_EQ(first["inferenceConfig"]["maxTokens"], 400);
  EXPECT_EQ(first["messages"][0]["content"][0]["text"].get<std::string>().find("Here are the facts"), 0u);
  EXPECT_EQ(first["system"][0]["text"], kDefaultSystemPrompt);
  EXPECT_TRUE(bedrock.server.problems.empty()) << bedrock.server.problems.front();
}

TEST_F(BatchFixture, ABedrockCreateRepeatedAfterACrashGetsTheSameJob) {
  mock::S3 s3(kKeyId, kSecret, "us-west-2");
  mock::BedrockControl bedrock(s3, kKeyId, kSecret, "us-west-2");
  setenv("AWS_ENDPOINT_URL_S3", s3.server.url().c_str(), 1);
  setenv("AWS_ENDPOINT_URL_BEDROCK", bedrock.server.url().c_str(), 1);
  std::string dir = test::temp_dir("batch-bedrock-create");
  WriterConfig wc = writer("bedrock", "http://127.0.0.1:1");
  auto on_demand = make_writer(wc);
  BatchOptions bo;
  bo.s3_prefix = "s3://b/p";
  bo.role_arn = "arn:aws:iam::123456789012:role/R";
  bo.s3_path_style = true;
  bo.poll_seconds = 0.001;
  auto service = make_batch_service(wc, bo);
  // The first status check is refused (not retried): the run stops with the job created.
  bool refused = false;
  bedrock.server.respond = [&](const httplib::Request& r) {
    if (r.method == "GET" && !refused) {
      refused = true;
      return mock::Reply{403, R"({"message":"not now"})", {{"x-amzn-ErrorType", "AccessDeniedException"}}};
    }
    return bedrock.handle(r);
  };
  DescribeOptions o = options(dir);
  std::vector<Product> ps = products(105);
  try {
    describe_products_batch(ps, wc, *on_demand, nullptr, o, bo, *service);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("GetModelInvocationJob"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("iam:PassRole"), std::string::npos) << e.what();
  }
  // The state as a kill between CreateModelInvocationJob and saving its ARN leaves it.
  std::string state_path = join_path(o.output_jsonl + ".batch", "state.json");
  json st = json::parse(read_file(state_path));
  ASSERT_EQ(st["job"]["phase"], "submitted");
  st["job"]["phase"] = "uploaded";
  st["job"]["id"] = "";
  write_file_atomic(state_path, st.dump());
  DescribeSummary s = describe_products_batch(ps, wc, *on_demand, nullptr, o, bo, *service);
  EXPECT_EQ(bedrock.creates, 2);       // asked again, with the same clientRequestToken,
  EXPECT_EQ(bedrock.jobs.size(), 1u);  // and answered with the same job
  EXPECT_EQ(s.done + s.failed, 105);
  EXPECT_EQ(lines_of(o.output_jsonl).size(), static_cast<size_t>(s.done));
  EXPECT_TRUE(bedrock.server.problems.empty()) << bedrock.server.problems.front();
}

TEST_F(BatchFixture, TooFewRecordsForBedrockIsAClearErrorNotASilentPad) {
  mock::S3 s3(kKeyId, kSecret, "us-west-2");
  mock::BedrockControl bedrock(s3, kKeyId, kSecret, "us-west-2");
  setenv("AWS_ENDPOINT_URL_S3", s3.server.url().c_str(), 1);
  setenv("AWS_ENDPOINT_URL_BEDROCK", bedrock.server.url().c_str(), 1);
  std::string dir = test::temp_dir("batch-few");
  WriterConfig wc = writer("bedrock", "http://127.0.0.1:1");
  auto on_demand = make_writer(wc);
  BatchOptions bo;
  bo.s3_prefix = "s3://b/p";
  bo.role_arn = "arn:aws:iam::123456789012:role/R";
  bo.s3_path_style = true;
  auto service = make_batch_service(wc, bo);
  DescribeOptions o = options(dir);
  try {
    describe_products_batch(products(99), wc, *on_demand, nullptr, o, bo, *service);
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("at least 100 records"), std::string::npos) << m;
    EXPECT_NE(m.find("99 products"), std::string::npos) << m;
    EXPECT_NE(m.find("without --batch"), std::string::npos) << m;
  }
  EXPECT_EQ(s3.server.count(), 0u);
  EXPECT_EQ(bedrock.creates, 0);
  // Missing flags name themselves.
  bo.role_arn.clear();
  try {
    make_batch_service(wc, bo);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--batch-role-arn"), std::string::npos) << e.what();
  }
  bo.role_arn = "arn:aws:iam::1:role/R";
  bo.s3_prefix.clear();
  EXPECT_THROW(make_batch_service(wc, bo), Error);
  bo.s3_prefix = "s3://b/p";
  wc.model = "cohere.command-r-v1:0";
  try {
    make_batch_service(wc, bo);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cohere.command-r-v1:0"), std::string::npos) << e.what();
  }
}

TEST_F(BatchFixture, OpenAIBatchEndsWithEveryProductOnceAndFailedRequestsRetriedOnDemand) {
  mock::OpenAIBatches api(kOpenAIKey);
  // The on-demand retries go to /v1/chat/completions on the same server.
  std::string dir = test::temp_dir("batch-openai");
  std::vector<Product> ps = products(40);
  WriterConfig wc = writer("openai", api.server.url() + "/v1");
  auto on_demand = make_writer(wc);
  BatchOptions bo;
  bo.poll_seconds = 0.001;
  auto service = make_batch_service(wc, bo);
  DescribeOptions o = options(dir);
  DescribeSummary s = describe_products_batch(ps, wc, *on_demand, nullptr, o, bo, *service);
  int failing = 0;
  int64_t want_in = 0;
  for (int n = 1; n <= 40; ++n) {
    if (mock::record_fails(n)) failing++;
    else want_in += 200 + n;
  }
  EXPECT_EQ(s.done, 40 - failing);
  EXPECT_EQ(s.failed, failing);
  EXPECT_EQ(s.usage.input_tokens, want_in);
  EXPECT_EQ(s.usage.output_tokens, 60 * (40 - failing));
  EXPECT_EQ(api.creates, 1);
  EXPECT_EQ(api.uploads, 1);
  EXPECT_TRUE(api.server.problems.empty()) << api.server.problems.front();
  std::string l = all_log();
  for (const char* st : {"validating", "in_progress", "finalizing", "completed"}) EXPECT_NE(l.find(st), std::string::npos) << l;
  ASSERT_EQ(s.failures.size(), 1u);
  EXPECT_NE(s.failures.begin()->first.find("Invalid request"), std::string::npos) << s.text();
  // The uploaded file: one chat request per product, custom_id joined back.
  json first = json::parse(api.files["file-in-1"].substr(0, api.files["file-in-1"].find('\n')));
  EXPECT_EQ(first["url"], "/v1/chat/completions");
  EXPECT_EQ(first["body"]["model"], kDefaultOpenAIModel);

  api.server.respond = [&api](const httplib::Request& r) {
    if (r.path == "/v1/chat/completions") {
      std::string user = json::parse(r.body)["messages"][1]["content"];
      return mock::Reply{200, json{{"choices", {{{"message", {{"content", mock::description_for(user)}}}}}},
                                   {"usage", {{"prompt_tokens", 11}, {"completion_tokens", 3}}}}.dump()};
    }
    return api.handle(r);
  };
  bo.retry_failed = true;
  s = describe_products_batch(ps, wc, *on_demand, nullptr, o, bo, *service);
  EXPECT_EQ(s.done, failing);
  EXPECT_EQ(s.failed, 0);
  EXPECT_EQ(s.usage.input_tokens, 11 * failing);
  EXPECT_EQ(api.creates, 1);
  expect_each_once_and_joined_right(o.output_jsonl, ps);
  EXPECT_EQ(l.find(kOpenAIKey), std::string::npos);
}

// Answers every photo "Fabric: Cotton" (sure) and "Fit: Slim" (doubtful, 0.2).
class SureAndDoubtfulAnswerer : public Answerer {
 public:
  SureAndDoubtfulAnswerer() { task_.attributes = {{"Fabric", "What is the fabric?"}, {"Fit", "What is the fit?"}}; }
  std::vector<Answer> answer(const std::vector<AnswerRequest>& requests, const GenerationOptions&) override {
    std::vector<Answer> out;
    for (size_t i = 0; i < requests.size(); ++i) {
      Answer a;
      a.text = i % 2 == 0 ? "Fabric: Cotton" : "Fit: Slim";
      a.confidence = i % 2 == 0 ? 0.9 : 0.2;
      out.push_back(a);
    }
    return out;
  }
  const TaskInfo& task() const override { return task_; }
  std::string name() const override { return "test-model"; }

 private:
  TaskInfo task_;
};

TEST_F(BatchFixture, PredictedAttributesGoToTheBatchWithoutTheDoubtfulOnes) {
  mock::OpenAIBatches api(kOpenAIKey);
  std::string dir = test::temp_dir("batch-model");
  std::vector<Product> ps;
  for (int i = 0; i < 6; ++i) {
    Product p;
    p.id = "photo" + std::to_string(i);
    p.image_path = "unused.jpg";
    p.attributes = {{"articleType", "Shirts"}};  // the catalog's type, kept after the predictions
    ps.push_back(p);
  }
  WriterConfig wc = writer("openai", api.server.url() + "/v1");
  auto on_demand = make_writer(wc);
  BatchOptions bo;
  bo.poll_seconds = 0.001;
  auto service = make_batch_service(wc, bo);
  DescribeOptions o = options(dir);
  o.batch_size = 4;
  o.load_image = [](const std::string&) {
    ImageRGB img;
    img.width = 2;
    img.height = 2;
    img.pixels.assign(12, 0);
    return img;
  };
  SureAndDoubtfulAnswerer answerer;
  DescribeSummary s = describe_products_batch(ps, wc, *on_demand, &answerer, o, bo, *service);
  EXPECT_EQ(s.done + s.failed, 6) << s.text();
  std::string input = api.files["file-in-1"];
  EXPECT_NE(input.find("Fabric: Cotton, articleType: Shirts"), std::string::npos) << input;
  EXPECT_EQ(input.find("Fit"), std::string::npos) << "a doubtful attribute went to the writer: " << input;
  for (const auto& j : lines_of(o.output_jsonl)) {
    EXPECT_EQ(j["attributes_from"], "test-model");
    EXPECT_EQ(j["attributes"]["Fit"], "Slim");  // kept in the record, for review
    EXPECT_EQ(j["needs_review"], true);
    EXPECT_EQ(j["doubtful"], json::array({"Fit"}));
    EXPECT_DOUBLE_EQ(j["confidence"]["Fabric"].get<double>(), 0.9);
  }
}

TEST_F(BatchFixture, AKilledOpenAISubmitFindsItsBatchInsteadOfCreatingASecond) {
  mock::OpenAIBatches api(kOpenAIKey);
  std::string dir = test::temp_dir("batch-openai-creating");
  std::vector<Product> ps = products(12);
  WriterConfig wc = writer("openai", api.server.url() + "/v1");
  auto on_demand = make_writer(wc);
  BatchOptions bo;
  bo.poll_seconds = 0.001;
  auto service = make_batch_service(wc, bo);
  // Fail the first poll hard (HTTP 400, not retried): the run stops after the batch was created.
  int gets = 0;
  api.server.respond = [&](const httplib::Request& r) {
    if (r.method == "GET" && r.path.rfind("/v1/batches/", 0) == 0 && ++gets == 1)
      return mock::Reply{400, R"({"error":{"message":"try later"}})"};
    return api.handle(r);
  };
  DescribeOptions o = options(dir);
  EXPECT_THROW(describe_products_batch(ps, wc, *on_demand, nullptr, o, bo, *service), Error);
  // The state as a kill between POST /batches and saving its id leaves it.
  std::string state_path = join_path(o.output_jsonl + ".batch", "state.json");
  json st = json::parse(read_file(state_path));
  ASSERT_EQ(st["job"]["phase"], "submitted");
  st["job"]["phase"] = "creating";
  st["job"]["id"] = "";
  write_file_atomic(state_path, st.dump());
  // Another model cannot finish the job: its lines would be labelled wrongly.
  WriterConfig other = wc;
  other.model = "gpt-4o";
  try {
    describe_products_batch(ps, other, *make_writer(other), nullptr, o, bo, *service);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("state.json holds openai job tailor-"), std::string::npos) << e.what();
  }
  DescribeSummary s = describe_products_batch(ps, wc, *on_demand, nullptr, o, bo, *service);
  EXPECT_EQ(api.creates, 1);
  EXPECT_EQ(s.done + s.failed, 12);
  EXPECT_EQ(lines_of(o.output_jsonl).size(), static_cast<size_t>(s.done));
}

TEST_F(BatchFixture, S3MultipartUploadIsSignedAndAbortedOnAFailedPart) {
  mock::S3 s3(kKeyId, kSecret, "eu-west-1");
  S3ClientOptions so;
  so.region = "eu-west-1";
  so.endpoint = s3.server.url();
  so.path_style = true;
  so.part_bytes = 1000;
  so.http.max_attempts = 2;
  so.http.backoff_base_ms = 1;
  AwsCredentials creds{kKeyId, kSecret, "", "test"};
  S3Client client(creds, so);
  std::string body;
  for (int i = 0; i < 3500; ++i) body.push_back(static_cast<char>('a' + i % 26));
  client.put_object("s3://bkt/dir/a b+c.jsonl", body, "application/jsonl");
  EXPECT_EQ(s3.objects["bkt/dir/a b+c.jsonl"], body);
  EXPECT_EQ(s3.multipart_completed, 1);
  EXPECT_EQ(client.get_object("s3://bkt/dir/a b+c.jsonl"), body);
  client.put_object("s3://bkt/small", "tiny", "text/plain");
  EXPECT_EQ(s3.objects["bkt/small"], "tiny");
  EXPECT_TRUE(s3.server.problems.empty()) << s3.server.problems.front();

  s3.server.respond = [&](const httplib::Request& r) {
    if (r.has_param("partNumber") && r.get_param_value("partNumber") == "3")
      return mock::Reply{403, "<Error><Code>AccessDenied</Code><Message>denied</Message></Error>"};
    return s3.handle(r);
  };
  try {
    client.put_object("s3://bkt/other", body, "application/jsonl");
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("part 3 of s3://bkt/other"), std::string::npos) << m;
    EXPECT_NE(m.find("AccessDenied"), std::string::npos) << m;
    EXPECT_EQ(m.find(kSecret), std::string::npos) << m;
  }
  EXPECT_EQ(s3.aborted, 1);
  EXPECT_FALSE(s3.objects.count("bkt/other"));
  try {
    client.get_object("s3://bkt/missing");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("NoSuchKey"), std::string::npos) << e.what();
  }
}

TEST(CostEstimate, TokensFromThePromptTextAndPricesFromTheTable) {
  std::string dir = test::temp_dir("prices");
  std::string path = join_path(dir, "prices.json");
  write_file_atomic(path, R"({"read_on": "2026-11-30", "source": "test table", "models": [
    {"writer": "bedrock", "model": "m.x-v1:0", "input": 2.0, "output": 10.0, "batch_input": 1.0, "batch_output": 5.0}]})");
  PriceTable t = load_price_table(path);
  WriterConfig c;
  c.kind = "bedrock";
  c.system_prompt = std::string(40, 's');   // 10 tokens
  c.user_template = "{attributes}";
  c.max_tokens = 100;
  std::vector<ProductAttributes> facts = {{{"Fit", "Slim"}}, {{"Fabric", "Cotton"}}, {}};  // "Fit: Slim" 9 chars → 3
  CostEstimate e = estimate_cost(c, "us.m.x-v1:0", facts, &t);  // a cross-region profile uses the model's price
  EXPECT_EQ(e.requests, 2);
  EXPECT_EQ(e.input_tokens, 10 + 3 + 10 + 4);  // "Fabric: Cotton": 14 chars → 4
  EXPECT_EQ(e.max_output_tokens, 200);
  ASSERT_NE(e.price, nullptr);
  std::string text = e.text(&t);
  // 27 tokens × $2/M = $0.000054; + 200 × $10/M = $0.002054; batch: half.
  EXPECT_NE(text.find("on demand: input $0.0001, at most $0.0021"), std::string::npos) << text;
  EXPECT_NE(text.find("batch:     input $0.0000, at most $0.0010"), std::string::npos) << text;
  EXPECT_NE(text.find("2026-11-30"), std::string::npos) << text;
  TokenUsage used{1000000, 100000, 5};
  EXPECT_EQ(usage_cost_text(used, TokenUsage{}, e.price), "$3.00 at on-demand prices");
  EXPECT_EQ(usage_cost_text(used, used, e.price), "$1.50 at batch prices");
  // 4 answers in batch (800k in, 50k out: $0.80 + $0.25), 1 on demand (200k in, 50k out: $0.40 + $0.50).
  EXPECT_EQ(usage_cost_text(used, TokenUsage{800000, 50000, 4}, e.price), "$1.95 ($1.05 at batch prices, $0.9000 on demand)");
  EXPECT_EQ(estimate_cost(c, "unknown", facts, &t).text(&t).find("$"), std::string::npos);

  write_file_atomic(path, R"({"read_on": "2026-11-30", "source": "s", "models": [{"writer": "openai", "model": "g", "input": 1}]})");
  try {
    load_price_table(path);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("models[0].output"), std::string::npos) << e.what();
  }
  // The repo's own table loads.
  EXPECT_GT(load_price_table(join_path(test::repo_root(), "docs/prices.json")).models.size(), 3u);
}

TEST(TokenUsage, EveryApisCountsAreRead) {
  EXPECT_EQ(usage_of_answer(json::parse(R"({"usage":{"inputTokens":5,"outputTokens":7}})")).output_tokens, 7);
  EXPECT_EQ(usage_of_answer(json::parse(R"({"usage":{"input_tokens":5,"output_tokens":8}})")).output_tokens, 8);
  EXPECT_EQ(usage_of_answer(json::parse(R"({"usage":{"prompt_tokens":6,"completion_tokens":9}})")).input_tokens, 6);
  EXPECT_EQ(usage_of_answer(json::parse(R"({"prompt_token_count":4,"generation_token_count":2})")).input_tokens, 4);
  EXPECT_EQ(usage_of_answer(json::parse(R"({"content":[]})")).answers, 0);
}
