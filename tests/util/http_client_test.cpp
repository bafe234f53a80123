// tailor-test: base
// The HTTP client on its own: URL parts, error codes from AWS/OpenAI error shapes, what is retried
// (429, 5xx, throttling bodies, network errors) and what is not (other 4xx, DNS), Retry-After.
#include <gtest/gtest.h>

#include <chrono>

#include "../write/mock_server.h"
#include "util/error.h"
#include "util/http_client.h"

using namespace tailor;

TEST(HttpClient, ParsesUrls) {
  ParsedUrl u = parse_url("https://bedrock-runtime.us-east-1.amazonaws.com/model/a%3A0/invoke?x=1");
  EXPECT_EQ(u.host, "bedrock-runtime.us-east-1.amazonaws.com");
  EXPECT_EQ(u.path, "/model/a%3A0/invoke");  // encoding kept as written
  EXPECT_EQ(u.query, "x=1");
  EXPECT_EQ(u.host_header(), "bedrock-runtime.us-east-1.amazonaws.com");
  EXPECT_EQ(parse_url("http://127.0.0.1:8080").host_header(), "127.0.0.1:8080");
  EXPECT_EQ(parse_url("http://127.0.0.1:8080").path, "/");
  EXPECT_EQ(parse_url("https://h:443/x").host_header(), "h");
  EXPECT_THROW(parse_url("ftp://h/x"), Error);
  EXPECT_THROW(parse_url("not a url"), Error);
}

static HttpResponse resp(int status, const std::string& body, HttpHeaders headers = {}) {
  HttpResponse r;
  r.status = status;
  r.body = body;
  r.headers = std::move(headers);
  return r;
}

TEST(HttpClient, ErrorCodesAndRetryDecisions) {
  EXPECT_EQ(http_error_code(resp(400, "", {{"X-Amzn-ErrorType", "ThrottlingException:http://internal"}})),
            "ThrottlingException");
  EXPECT_EQ(http_error_code(resp(400, R"({"__type":"com.amazon.coral.service#ValidationException"})")),
            "ValidationException");
  EXPECT_EQ(http_error_code(resp(429, R"({"error":{"code":"rate_limit_exceeded"}})")), "rate_limit_exceeded");
  EXPECT_EQ(http_error_code(resp(400, "plain text")), "");

  EXPECT_TRUE(http_retryable(resp(429, "")));
  EXPECT_TRUE(http_retryable(resp(500, "")));
  EXPECT_TRUE(http_retryable(resp(503, "")));
  EXPECT_FALSE(http_retryable(resp(501, "")));
  EXPECT_TRUE(http_retryable(resp(400, R"({"__type":"ThrottlingException"})")));
  EXPECT_TRUE(http_retryable(resp(400, R"({"__type":"ServiceUnavailableException"})")));
  EXPECT_TRUE(http_retryable(resp(424, "", {{"x-amzn-ErrorType", "ModelNotReadyException"}})));
  EXPECT_FALSE(http_retryable(resp(400, R"({"__type":"ValidationException"})")));
  EXPECT_FALSE(http_retryable(resp(403, R"({"message":"denied"})")));
  EXPECT_FALSE(http_retryable(resp(404, "")));
  EXPECT_FALSE(http_retryable(resp(200, "")));
  HttpResponse t;
  t.transport = TransportError::timeout;
  EXPECT_TRUE(http_retryable(t));
  t.transport = TransportError::dns;
  EXPECT_FALSE(http_retryable(t));
}

TEST(HttpClient, RetryAfterIsHonouredAndHeadersArriveCaseInsensitive) {
  mock::clear_env();
  mock::Server s;
  s.script = {{429, "{}", {{"Retry-After", "1"}}}, {200, R"({"ok":true})", {{"X-Custom", "yes"}}}};
  HttpOptions o;
  o.backoff_base_ms = 1;
  o.backoff_max_ms = 1000;
  std::vector<std::string> log;
  o.log = [&](const std::string& s) { log.push_back(s); };
  HttpRequest req;
  req.url = s.url() + "/x";
  req.body = "{}";
  req.headers = {{"Content-Type", "application/json"}};
  auto t0 = std::chrono::steady_clock::now();
  HttpResponse r = http_send(req, o);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(r.header("x-custom"), "yes");
  EXPECT_GE(ms, 900.0);  // waited for Retry-After: 1, not the 1 ms back-off
  ASSERT_EQ(log.size(), 1u);
  EXPECT_NE(log[0].find("retrying in 1.0 s"), std::string::npos) << log[0];
  // The request went out as given: body, content type, no Expect header.
  ASSERT_EQ(s.received.size(), 2u);
  EXPECT_EQ(s.received[0].body, "{}");
  EXPECT_EQ(s.received[0].get_header_value("Content-Type"), "application/json");
  EXPECT_FALSE(s.received[0].has_header("Expect"));
}

TEST(HttpClient, NoRetryOnClientErrors) {
  mock::clear_env();
  mock::Server s;
  s.script = {{400, R"({"message":"bad"})"}};
  HttpOptions o;
  o.backoff_base_ms = 1;
  HttpRequest req;
  req.url = s.url() + "/x";
  HttpResponse r = http_send(req, o);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(s.count(), 1u);
}

TEST(HttpClient, RedactReplacesEverySecret) {
  EXPECT_EQ(redact("key=abc and abc again, xyz", {"abc", "", "xyz"}), "key=[redacted] and [redacted] again, [redacted]");
}
