// tailor-test: base
// The Bedrock writer against a mock Bedrock on 127.0.0.1 that checks each request (path, SigV4
// signature recomputed independently, body fields and prompts) and answers with success,
// throttling, 5xx, access denied, unknown model and malformed bodies.
#include <gtest/gtest.h>

#include <cmath>
#include <ctime>
#include <nlohmann/json.hpp>

#include "mock_server.h"
#include "test_util.h"
#include "util/error.h"
#include "write/writer.h"

using namespace tailor;

static const char* kKeyId = "AKIDTESTBEDROCK0001";
static const char* kSecret = "s3cr3tBedrockKey/with+chars0123456789abcd";
static const char* kToken = "SESSIONtokenBedrock//+==zz99";
static const char* kModelPath = "/model/anthropic.claude-3-sonnet-20240229-v1%3A0/invoke";

static ProductAttributes shirt() {
  return {{"Fabric", "Cotton"}, {"Fit", "Slim Fit"}, {"Collar", "Button Down"}, {"baseColour", "Blue"}};
}

static std::string ok_body(const std::string& text) {
  return nlohmann::json{{"id", "msg_1"},
                        {"type", "message"},
                        {"role", "assistant"},
                        {"content", {{{"type", "text"}, {"text", text}}}},
                        {"stop_reason", "end_turn"}}
      .dump();
}

static std::string amz_date_now_for_test() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

// Checks everything about one request that a real Bedrock would, plus the body the issue specifies.
static std::string check_bedrock_request(const httplib::Request& req, bool with_token) {
  if (req.method != "POST") return "method " + req.method;
  if (req.target != kModelPath) return "path " + req.target;
  std::string why = mock::verify_sigv4(req, kKeyId, kSecret, "us-west-2", "bedrock");
  if (!why.empty()) return why;
  // The signature must be fresh (Bedrock rejects requests more than 5 minutes off).
  std::string d = req.get_header_value("X-Amz-Date");
  std::string now = amz_date_now_for_test();
  if (d.substr(0, 8) != now.substr(0, 8)) return "stale X-Amz-Date " + d;
  std::string signed_list = mock::field(req.get_header_value("Authorization"), "SignedHeaders");
  if (with_token) {
    if (req.get_header_value("X-Amz-Security-Token") != kToken) return "session token header missing";
    if (signed_list.find("x-amz-security-token") == std::string::npos) return "session token not signed";
  } else if (req.has_header("X-Amz-Security-Token")) {
    return "unexpected session token";
  }
  if (req.get_header_value("Content-Type") != "application/json") return "content type";
  auto j = nlohmann::json::parse(req.body, nullptr, false);
  if (j.is_discarded()) return "body is not JSON";
  if (j.value("anthropic_version", "") != "bedrock-2023-05-31") return "anthropic_version";
  if (j.value("system", "") != kDefaultSystemPrompt) return "system prompt";
  if (j.value("max_tokens", 0) != 400) return "max_tokens";
  if (!j.contains("temperature") || std::abs(j["temperature"].get<double>() - 0.1) > 1e-9) return "temperature";
  if (!j["messages"].is_array() || j["messages"].size() != 1) return "messages";
  if (j["messages"][0].value("role", "") != "user") return "role";
  std::string want =
      "Here are the facts you need to create the product descriptions: <product_attributes>Fabric: Cotton, Fit: "
      "Slim Fit, Collar: Button Down, baseColour: Blue</product_attributes>";
  if (j["messages"][0].value("content", "") != want) return "user prompt: " + j["messages"][0].dump();
  return "";
}

struct BedrockFixture : ::testing::Test {
  std::vector<std::string> log;
  std::mutex log_mu;
  // InvokeModel with Anthropic's body, as the original system calls Bedrock (Converse: its own tests).
  WriterConfig config(const mock::Server& s) {
    WriterConfig c;
    c.kind = "bedrock";
    c.bedrock_api = "invoke";
    c.region = "us-west-2";
    c.endpoint_url = s.url();
    c.http.max_attempts = 3;
    c.http.backoff_base_ms = 5;
    c.http.backoff_max_ms = 20;
    c.http.log = [this](const std::string& s) {
      std::lock_guard<std::mutex> lock(log_mu);
      log.push_back(s);
    };
    return c;
  }
  void SetUp() override {
    mock::clear_env();
    setenv("HOME", test::temp_dir("bedrock-home").c_str(), 1);
    setenv("AWS_ACCESS_KEY_ID", kKeyId, 1);
    setenv("AWS_SECRET_ACCESS_KEY", kSecret, 1);
  }
  void TearDown() override { mock::clear_env(); }
  std::string error_of(const Writer& w) {
    try {
      w.write(shirt());
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  void expect_no_secret(const std::string& text) {
    for (const char* s : {kKeyId, kSecret, kToken}) EXPECT_EQ(text.find(s), std::string::npos) << text;
  }
};

TEST_F(BedrockFixture, SignedRequestSucceeds) {
  mock::Server s;
  s.script = {{200, ok_body("A fine blue shirt.")}};
  s.check = [](const httplib::Request& r) { return check_bedrock_request(r, false); };
  auto w = make_writer(config(s));
  EXPECT_EQ(w->write(shirt()), "A fine blue shirt.");
  EXPECT_EQ(w->name(), "bedrock");
  EXPECT_EQ(w->model(), "anthropic.claude-3-sonnet-20240229-v1:0");
  EXPECT_EQ(s.count(), 1u);
  EXPECT_TRUE(s.problems.empty()) << s.problems[0];
}

TEST_F(BedrockFixture, SessionTokenIsSentAndSigned) {
  setenv("AWS_SESSION_TOKEN", kToken, 1);
  mock::Server s;
  s.script = {{200, ok_body("ok")}};
  s.check = [](const httplib::Request& r) { return check_bedrock_request(r, true); };
  EXPECT_EQ(make_writer(config(s))->write(shirt()), "ok");
  EXPECT_TRUE(s.problems.empty()) << s.problems[0];
}

TEST_F(BedrockFixture, ThrottlingIsRetriedThenSucceeds) {
  mock::Server s;
  s.script = {{429, R"({"message":"Too many requests, please wait before trying again."})",
               {{"x-amzn-ErrorType", "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"}}},
              {200, ok_body("after throttling")}};
  s.check = [](const httplib::Request& r) { return check_bedrock_request(r, false); };
  EXPECT_EQ(make_writer(config(s))->write(shirt()), "after throttling");
  EXPECT_EQ(s.count(), 2u);
  EXPECT_TRUE(s.problems.empty()) << s.problems[0];
  ASSERT_EQ(log.size(), 1u);
  EXPECT_NE(log[0].find("429"), std::string::npos) << log[0];
  EXPECT_NE(log[0].find("retrying"), std::string::npos) << log[0];
  expect_no_secret(log[0]);
}

TEST_F(BedrockFixture, ThrottlingExceptionBodyOn400IsRetried) {
  mock::Server s;
  s.script = {{400, R"({"__type":"com.amazon.coral.service#ThrottlingException","message":"Rate exceeded"})"},
              {503, R"({"message":"Bedrock is unable to process your request."})",
               {{"x-amzn-ErrorType", "ServiceUnavailableException"}}},
              {200, ok_body("third time")}};
  EXPECT_EQ(make_writer(config(s))->write(shirt()), "third time");
  EXPECT_EQ(s.count(), 3u);
}

TEST_F(BedrockFixture, ServerErrorsExhaustRetriesWithAClearMessage) {
  mock::Server s;
  s.script = {{500, R"({"message":"An internal server error occurred."})",
               {{"x-amzn-ErrorType", "InternalServerException"}}}};
  std::string e = error_of(*make_writer(config(s)));
  EXPECT_EQ(s.count(), 3u);  // max_attempts
  EXPECT_NE(e.find("HTTP 500"), std::string::npos) << e;
  EXPECT_NE(e.find("after 3 attempts"), std::string::npos) << e;
  EXPECT_NE(e.find("internal server error"), std::string::npos) << e;
  expect_no_secret(e);
}

TEST_F(BedrockFixture, AccessDeniedIsNotRetriedAndSaysSo) {
  mock::Server s;
  s.script = {{403, R"({"message":"You don't have access to the model with the specified model ID."})",
               {{"x-amzn-ErrorType", "AccessDeniedException:http://internal.amazon.com/coral/com.amazon.coral.service/"}}}};
  std::string e = error_of(*make_writer(config(s)));
  EXPECT_EQ(s.count(), 1u);
  EXPECT_NE(e.find("access denied"), std::string::npos) << e;
  EXPECT_NE(e.find("anthropic.claude-3-sonnet-20240229-v1:0"), std::string::npos) << e;
  EXPECT_NE(e.find("us-west-2"), std::string::npos) << e;
  EXPECT_NE(e.find("AWS_ACCESS_KEY_ID"), std::string::npos) << e;  // names where the credentials came from
  expect_no_secret(e);
  EXPECT_TRUE(log.empty());
}

TEST_F(BedrockFixture, UnknownModelAndBadSignatureAreNamed) {
  mock::Server s;
  s.script = {{400, R"({"message":"The provided model identifier is invalid."})",
               {{"x-amzn-ErrorType", "ValidationException"}}}};
  WriterConfig c = config(s);
  std::string e = error_of(*make_writer(c));
  EXPECT_EQ(s.count(), 1u);
  EXPECT_NE(e.find("unknown model"), std::string::npos) << e;

  mock::Server s2;
  s2.script = {{403, R"({"message":"The request signature we calculated does not match the signature you provided."})",
                {{"x-amzn-ErrorType", "InvalidSignatureException"}}}};
  e = error_of(*make_writer(config(s2)));
  EXPECT_EQ(s2.count(), 1u);
  EXPECT_NE(e.find("rejected the credentials"), std::string::npos) << e;
  expect_no_secret(e);
}

TEST_F(BedrockFixture, MalformedAnswersAreErrors) {
  mock::Server s;
  s.script = {{200, "<html>not json</html>"}};
  std::string e = error_of(*make_writer(config(s)));
  EXPECT_NE(e.find("not JSON"), std::string::npos) << e;

  mock::Server s2;
  s2.script = {{200, R"({"content":[{"type":"image"}]})"}};
  e = error_of(*make_writer(config(s2)));
  EXPECT_NE(e.find("content[0].text"), std::string::npos) << e;

  mock::Server s3;
  s3.script = {{200, R"({"content":[]})"}};
  e = error_of(*make_writer(config(s3)));
  EXPECT_NE(e.find("content[0].text"), std::string::npos) << e;
}

TEST_F(BedrockFixture, ServerEchoingTheSecretIsRedacted) {
  // A hostile or buggy endpoint that echoes the request must not get the secret into our errors.
  mock::Server s;
  s.check = [](const httplib::Request&) { return ""; };
  s.script = {{400, std::string(R"({"message":"bad request from )") + kKeyId + " with " + kSecret + R"("})"}};
  std::string e = error_of(*make_writer(config(s)));
  EXPECT_NE(e.find("[redacted]"), std::string::npos) << e;
  expect_no_secret(e);
}

TEST_F(BedrockFixture, BearerTokenIsSentInsteadOfASignature) {
  mock::clear_env();  // no AWS keys at all: the API key alone must do
  const char* bearer = "ABSKbedrockApiKeyValue123456";
  setenv("AWS_BEARER_TOKEN_BEDROCK", bearer, 1);
  mock::Server s;
  s.script = {{200, ok_body("with api key")}};
  s.check = [&](const httplib::Request& r) -> std::string {
    if (r.get_header_value("Authorization") != std::string("Bearer ") + bearer) return "no bearer header";
    if (r.has_header("X-Amz-Date")) return "signed although an API key was given";
    if (r.target != kModelPath) return "path " + r.target;
    return "";
  };
  EXPECT_EQ(make_writer(config(s))->write(shirt()), "with api key");
  EXPECT_TRUE(s.problems.empty()) << s.problems[0];

  mock::Server s2;
  s2.script = {{403, R"({"message":"Invalid API Key format"})", {{"x-amzn-ErrorType", "AccessDeniedException"}}}};
  std::string e = error_of(*make_writer(config(s2)));
  EXPECT_EQ(e.find(bearer), std::string::npos) << e;
  EXPECT_NE(e.find("AWS_BEARER_TOKEN_BEDROCK"), std::string::npos) << e;
}

TEST_F(BedrockFixture, EndpointFromEnvironmentAndConfigurablePromptModelTokens) {
  mock::Server s;
  s.script = {{200, ok_body("custom")}};
  setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", s.url().c_str(), 1);
  setenv("AWS_REGION", "eu-central-1", 1);
  WriterConfig c;
  c.kind = "bedrock";
  c.bedrock_api = "invoke";
  c.model = "anthropic.claude-3-haiku-20240307-v1:0";
  c.system_prompt = "Be brief.";
  c.user_template = "Facts: {attributes}.";
  c.max_tokens = 99;
  c.temperature = 0.7;
  s.check = [](const httplib::Request& r) -> std::string {
    if (r.target != "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke") return "path " + r.target;
    std::string why = mock::verify_sigv4(r, kKeyId, kSecret, "eu-central-1", "bedrock");
    if (!why.empty()) return why;
    auto j = nlohmann::json::parse(r.body);
    if (j["system"] != "Be brief." || j["max_tokens"] != 99 || std::abs(j["temperature"].get<double>() - 0.7) > 1e-9)
      return "body " + r.body;
    if (j["messages"][0]["content"] != "Facts: Fabric: Cotton, Fit: Slim Fit, Collar: Button Down, baseColour: Blue.")
      return "user " + r.body;
    return "";
  };
  EXPECT_EQ(make_writer(c)->write(shirt()), "custom");
  EXPECT_TRUE(s.problems.empty()) << s.problems[0];
}

TEST_F(BedrockFixture, ConnectionRefusedAndTimeoutSayWhatHappened) {
  int closed_port;
  {
    mock::Server tmp;  // a port that was just free and is now closed again
    closed_port = tmp.port;
  }
  WriterConfig c;
  c.kind = "bedrock";
  c.region = "us-west-2";
  c.endpoint_url = "http://127.0.0.1:" + std::to_string(closed_port);
  c.http.max_attempts = 2;
  c.http.backoff_base_ms = 5;
  c.http.log = [](const std::string&) {};
  std::string e = error_of(*make_writer(c));
  EXPECT_NE(e.find("cannot connect"), std::string::npos) << e;
  EXPECT_NE(e.find("after 2 attempts"), std::string::npos) << e;

  mock::Server slow;
  slow.script = {{200, ok_body("too late"), {}, 2500}};
  WriterConfig t = config(slow);
  t.http.max_attempts = 1;
  t.http.read_timeout_ms = 1000;
  t.http.total_timeout_ms = 1200;
  e = error_of(*make_writer(t));
  EXPECT_NE(e.find("timed out"), std::string::npos) << e;
}

TEST_F(BedrockFixture, DnsFailureMessageNamesTheRegion) {
  // No lookup is made (tests talk to 127.0.0.1 only): the message is built from a DNS failure.
  HttpResponse r;
  r.transport = TransportError::dns;
  r.attempts = 1;
  EXPECT_NE(transport_error_text(r, "bedrock-runtime.us-weird-9.amazonaws.com").find("cannot resolve host"),
            std::string::npos);
  EXPECT_FALSE(http_retryable(r));
  WriterConfig c;
  c.kind = "bedrock";
  c.region = "not a region";
  EXPECT_THROW(make_writer(c), Error);
}

// The Converse API (the default): the same prompt and parameters in its request shape, any model id,
// the same signature, and its answer shape read back.
static std::string converse_ok(const std::string& text) {
  return nlohmann::json{{"output", {{"message", {{"role", "assistant"}, {"content", {{{"text", text}}}}}}}},
                        {"stopReason", "end_turn"},
                        {"usage", {{"inputTokens", 120}, {"outputTokens", 30}, {"totalTokens", 150}}}}
      .dump();
}

TEST_F(BedrockFixture, ConverseIsTheDefaultForAnyModelSignedAndShapedAsAwsSpecifies) {
  mock::Server s;
  s.script = {{200, converse_ok("A light cotton shirt.")}};
  s.check = [](const httplib::Request& r) -> std::string {
    if (r.target != "/model/meta.llama3-70b-instruct-v1%3A0/converse") return "path " + r.target;
    std::string why = mock::verify_sigv4(r, kKeyId, kSecret, "us-west-2", "bedrock");
    if (!why.empty()) return why;
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_discarded()) return "body is not JSON";
    if (j.contains("anthropic_version") || j.contains("max_tokens")) return "Anthropic fields in a Converse body: " + r.body;
    if (j["system"] != nlohmann::json::array({{{"text", kDefaultSystemPrompt}}})) return "system " + j["system"].dump();
    if (j["inferenceConfig"]["maxTokens"] != 400 || std::abs(j["inferenceConfig"]["temperature"].get<double>() - 0.1) > 1e-9)
      return "inferenceConfig " + j["inferenceConfig"].dump();
    const auto& m = j["messages"];
    if (!m.is_array() || m.size() != 1 || m[0]["role"] != "user" || !m[0]["content"].is_array() || m[0]["content"].size() != 1)
      return "messages " + m.dump();
    std::string want =
        "Here are the facts you need to create the product descriptions: <product_attributes>Fabric: Cotton, Fit: "
        "Slim Fit, Collar: Button Down, baseColour: Blue</product_attributes>";
    if (m[0]["content"][0]["text"] != want) return "user prompt " + m[0].dump();
    return "";
  };
  WriterConfig c = config(s);
  c.bedrock_api = WriterConfig{}.bedrock_api;  // the default
  c.model = "meta.llama3-70b-instruct-v1:0";
  EXPECT_EQ(make_writer(c)->write(shirt()), "A light cotton shirt.");
  EXPECT_EQ(s.count(), 1u);
  EXPECT_TRUE(s.problems.empty()) << s.problems[0];
}

TEST_F(BedrockFixture, ConverseAnswersWithoutTextAndUnknownApisAreErrors) {
  mock::Server s;
  s.script = {{200, R"({"content":[{"text":"an InvokeModel answer"}]})"}};
  WriterConfig c = config(s);
  c.bedrock_api = "converse";
  std::string e = error_of(*make_writer(c));
  EXPECT_NE(e.find("output.message.content[0].text"), std::string::npos) << e;
  mock::Server s2;
  s2.script = {{200, R"({"output":{"message":{"content":[{"toolUse":{}}]}}})"}};
  c = config(s2);
  c.bedrock_api = "converse";
  e = error_of(*make_writer(c));
  EXPECT_NE(e.find("output.message.content[0].text"), std::string::npos) << e;
  c.bedrock_api = "chat";
  try {
    make_writer(c);
    ADD_FAILURE() << "an unknown --bedrock-api was accepted";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("converse or invoke"), std::string::npos) << err.what();
  }
}

TEST_F(BedrockFixture, ConverseThrottlingAnd5xxAreRetriedEverySignatureCheckedAndTokensCounted) {
  mock::Server s;
  s.script = {{429, R"({"message":"Too many requests"})", {{"x-amzn-ErrorType", "ThrottlingException"}}},
              {400, R"({"__type":"com.amazon.coral.service#ThrottlingException","message":"Rate exceeded"})"},
              {502, R"({"message":"Bad gateway"})"},
              {200, converse_ok("Retried into shape.")},
              {200, converse_ok("And once more.")}};
  s.check = [](const httplib::Request& r) -> std::string {
    if (r.target != "/model/amazon.nova-lite-v1%3A0/converse") return "path " + r.target;
    return mock::verify_sigv4(r, kKeyId, kSecret, "us-west-2", "bedrock");
  };
  WriterConfig c = config(s);
  c.bedrock_api = "converse";
  c.model = "amazon.nova-lite-v1:0";
  c.http.max_attempts = 4;
  auto w = make_writer(c);
  EXPECT_EQ(w->write(shirt()), "Retried into shape.");
  EXPECT_EQ(w->write(shirt()), "And once more.");
  EXPECT_EQ(s.count(), 5u);
  EXPECT_TRUE(s.problems.empty()) << s.problems[0];  // every attempt signed afresh and correctly
  ASSERT_EQ(log.size(), 3u);
  EXPECT_NE(log[0].find("ThrottlingException"), std::string::npos) << log[0];
  EXPECT_NE(log[2].find("502"), std::string::npos) << log[2];
  // The answers' usage.inputTokens/outputTokens (120/30 each), summed.
  TokenUsage u = w->usage();
  EXPECT_EQ(u.input_tokens, 240);
  EXPECT_EQ(u.output_tokens, 60);
  EXPECT_EQ(u.answers, 2);
}

TEST_F(BedrockFixture, InvokeModelTokensComeFromAnthropicsUsage) {
  mock::Server s;
  auto body = nlohmann::json::parse(ok_body("Counted."));
  body["usage"] = {{"input_tokens", 77}, {"output_tokens", 12}};
  s.script = {{503, R"({"message":"busy"})", {{"x-amzn-ErrorType", "ServiceUnavailableException"}}}, {200, body.dump()}};
  s.check = [](const httplib::Request& r) { return check_bedrock_request(r, false); };
  auto w = make_writer(config(s));
  EXPECT_EQ(w->write(shirt()), "Counted.");
  EXPECT_EQ(s.count(), 2u);
  EXPECT_TRUE(s.problems.empty()) << s.problems[0];
  EXPECT_EQ(w->usage().input_tokens, 77);
  EXPECT_EQ(w->usage().output_tokens, 12);
}
