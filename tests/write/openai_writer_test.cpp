// tailor-test: base
// The OpenAI-compatible writer against a mock /v1/chat/completions on 127.0.0.1 that checks each
// request (path, bearer key, model, messages, max_tokens, temperature) and answers with success,
// rate limiting, 5xx, a rejected key, an unknown model and malformed bodies.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "mock_server.h"
#include "util/error.h"
#include "write/writer.h"

using namespace tailor;

static const char* kKey = "sk-test-OPENAIkeyValue-0123456789";

static ProductAttributes shirt() { return {{"Pattern", "Checked"}, {"Sleeve Length", "Long Sleeves"}}; }

static std::string ok_body(const std::string& text) {
  return nlohmann::json{{"id", "chatcmpl-1"},
                        {"object", "chat.completion"},
                        {"choices", {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", text}}},
                                      {"finish_reason", "stop"}}}}}
      .dump();
}

static std::string check_request(const httplib::Request& r, const std::string& model, const std::string& key) {
  if (r.method != "POST" || r.target != "/v1/chat/completions") return "target " + r.target;
  if (key.empty() ? r.has_header("Authorization") : r.get_header_value("Authorization") != "Bearer " + key)
    return "authorization header";
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_discarded()) return "body not JSON";
  if (j.value("model", "") != model) return "model " + j.value("model", "");
  if (j.value("max_tokens", 0) != 400 || std::abs(j.value("temperature", 0.0) - 0.1) > 1e-9) return "params";
  const auto& m = j["messages"];
  if (!m.is_array() || m.size() != 2) return "messages";
  if (m[0].value("role", "") != "system" || m[0].value("content", "") != kDefaultSystemPrompt) return "system";
  if (m[1].value("role", "") != "user" ||
      m[1].value("content", "") !=
          "Here are the facts you need to create the product descriptions: <product_attributes>Pattern: Checked, "
          "Sleeve Length: Long Sleeves</product_attributes>")
    return "user " + m[1].dump();
  return "";
}

struct OpenAIFixture : ::testing::Test {
  std::vector<std::string> log;
  void SetUp() override {
    mock::clear_env();
    setenv("OPENAI_API_KEY", kKey, 1);
  }
  void TearDown() override { mock::clear_env(); }
  WriterConfig config(const mock::Server& s) {
    WriterConfig c;
    c.kind = "openai";
    c.base_url = s.url() + "/v1/";
    c.model = "qwen2.5-7b-instruct";
    c.http.max_attempts = 3;
    c.http.backoff_base_ms = 5;
    c.http.backoff_max_ms = 20;
    c.http.log = [this](const std::string& s) { log.push_back(s); };
    return c;
  }
  std::string error_of(const Writer& w) {
    try {
      w.write(shirt());
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).find(kKey), std::string::npos) << e.what();
      return e.what();
    }
    return "";
  }
};

TEST_F(OpenAIFixture, Succeeds) {
  mock::Server s;
  s.script = {{200, ok_body("A checked shirt with long sleeves.")}};
  s.check = [](const httplib::Request& r) { return check_request(r, "qwen2.5-7b-instruct", kKey); };
  auto w = make_writer(config(s));
  EXPECT_EQ(w->write(shirt()), "A checked shirt with long sleeves.");
  EXPECT_EQ(w->name(), "openai");
  EXPECT_EQ(w->model(), "qwen2.5-7b-instruct");
  EXPECT_TRUE(s.problems.empty()) << s.problems[0];
}

TEST_F(OpenAIFixture, KeyVariableIsConfigurableOrOff) {
  mock::Server s;
  s.script = {{200, ok_body("ok")}};
  setenv("MY_LLM_KEY", "other-key-value-42", 1);
  WriterConfig c = config(s);
  c.api_key_env = "MY_LLM_KEY";
  s.check = [](const httplib::Request& r) { return check_request(r, "qwen2.5-7b-instruct", "other-key-value-42"); };
  EXPECT_EQ(make_writer(c)->write(shirt()), "ok");
  c.api_key_env = "";  // a local server without keys
  s.check = [](const httplib::Request& r) { return check_request(r, "qwen2.5-7b-instruct", ""); };
  EXPECT_EQ(make_writer(c)->write(shirt()), "ok");
  EXPECT_TRUE(s.problems.empty()) << s.problems[0];
  unsetenv("MY_LLM_KEY");
  c.api_key_env = "MY_LLM_KEY";
  try {
    make_writer(c);
    FAIL() << "a missing key variable must fail at once";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("$MY_LLM_KEY"), std::string::npos) << e.what();
  }
}

TEST_F(OpenAIFixture, RateLimitIsRetried) {
  mock::Server s;
  s.script = {{429, R"({"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}})",
               {{"Retry-After", "0"}}},
              {200, ok_body("second")}};
  EXPECT_EQ(make_writer(config(s))->write(shirt()), "second");
  EXPECT_EQ(s.count(), 2u);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_NE(log[0].find("429"), std::string::npos);
}

TEST_F(OpenAIFixture, ServerErrorsExhaustRetries) {
  mock::Server s;
  s.script = {{502, "Bad Gateway"}};
  std::string e = error_of(*make_writer(config(s)));
  EXPECT_EQ(s.count(), 3u);
  EXPECT_NE(e.find("HTTP 502"), std::string::npos) << e;
  EXPECT_NE(e.find("3 attempts"), std::string::npos) << e;
}

TEST_F(OpenAIFixture, RejectedKeyAndUnknownModelAreNotRetried) {
  mock::Server s;
  s.script = {{401, std::string(R"({"error":{"message":"Incorrect API key provided: )") + kKey +
                        R"(","type":"invalid_request_error","code":"invalid_api_key"}})"}};
  std::string e = error_of(*make_writer(config(s)));
  EXPECT_EQ(s.count(), 1u);
  EXPECT_NE(e.find("API key was rejected"), std::string::npos) << e;
  EXPECT_NE(e.find("$OPENAI_API_KEY"), std::string::npos) << e;

  mock::Server s2;
  s2.script = {{404, R"({"error":{"message":"The model `nope` does not exist","code":"model_not_found"}})"}};
  e = error_of(*make_writer(config(s2)));
  EXPECT_EQ(s2.count(), 1u);
  EXPECT_NE(e.find("unknown model"), std::string::npos) << e;
}

TEST_F(OpenAIFixture, MalformedAnswersAreErrors) {
  mock::Server s;
  s.script = {{200, R"({"choices":[]})"}};
  EXPECT_NE(error_of(*make_writer(config(s))).find("choices[0].message.content"), std::string::npos);
  mock::Server s2;
  s2.script = {{200, R"({"choices":[{"message":{"role":"assistant","content":null}}]})"}};
  EXPECT_NE(error_of(*make_writer(config(s2))).find("choices[0].message.content"), std::string::npos);
  mock::Server s3;
  s3.script = {{200, "data: {}\n\n"}};
  EXPECT_NE(error_of(*make_writer(config(s3))).find("not JSON"), std::string::npos);
}

TEST_F(OpenAIFixture, UnknownWriterKindIsAnError) {
  WriterConfig c;
  c.kind = "gpt";
  EXPECT_THROW(make_writer(c), Error);
}

// Secrets are redacted before an error body is cut to length: a server echoing the key right where
// the 300-character cut falls leaks no part of it.
TEST_F(OpenAIFixture, SecretEchoedAtTheCutIsRedactedWhole) {
  mock::Server s;
  std::string echo = std::string(285, 'x') + kKey + std::string(200, 'y');
  s.script = {{400, nlohmann::json{{"error", {{"message", echo}}}}.dump()}};
  std::string e = error_of(*make_writer(config(s)));
  EXPECT_NE(e.find("[redacted]"), std::string::npos) << e;
  EXPECT_EQ(e.find(std::string(kKey).substr(0, 12)), std::string::npos) << e;
}

// A password in the base URL authenticates the request but never appears in an error.
TEST_F(OpenAIFixture, BaseUrlUserInfoIsNeverShown) {
  mock::Server s;
  s.script = {{500, "Internal error for user svc:Hunter2secretPw"}};
  WriterConfig c = config(s);
  std::string url = s.url();
  c.base_url = url.substr(0, url.find("://") + 3) + "svc:Hunter2secretPw@" + url.substr(url.find("://") + 3) + "/v1";
  c.http.max_attempts = 1;
  std::string e = error_of(*make_writer(c));
  EXPECT_NE(e.find("HTTP 500"), std::string::npos) << e;
  EXPECT_EQ(e.find("Hunter2secretPw"), std::string::npos) << e;
  EXPECT_EQ(e.find("@127.0.0.1"), std::string::npos) << e;  // the URL is shown without its user info
  EXPECT_EQ(url_without_userinfo("https://u:p@example.com:8443/v1?q=a@b"), "https://example.com:8443/v1?q=a@b");
  EXPECT_EQ(url_userinfo_password("https://u:p%40ss@example.com/v1"), "p%40ss");
  EXPECT_EQ(url_userinfo_password("https://example.com/v1?q=a@b"), "");
}

TEST_F(OpenAIFixture, TokensComeFromTheAnswersUsage) {
  mock::Server s;
  auto with_usage = nlohmann::json::parse(ok_body("Counted."));
  with_usage["usage"] = {{"prompt_tokens", 91}, {"completion_tokens", 17}, {"total_tokens", 108}};
  s.script = {{200, with_usage.dump()}, {200, ok_body("No count.")}};
  auto w = make_writer(config(s));
  EXPECT_EQ(w->write(shirt()), "Counted.");
  EXPECT_EQ(w->write(shirt()), "No count.");  // a server without usage adds nothing
  EXPECT_EQ(w->usage().input_tokens, 91);
  EXPECT_EQ(w->usage().output_tokens, 17);
  EXPECT_EQ(w->usage().answers, 1);
}
