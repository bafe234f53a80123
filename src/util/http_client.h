// A small HTTP client on libcurl for the LLM writers and the catalog's photo downloads: one request with connect/read timeouts, and
// retries with exponential back-off and jitter on 429, 5xx, throttling error bodies and transient
// network errors (never on other 4xx). It never logs headers or bodies, so secrets stay out of logs.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace tailor {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpOptions {
  int connect_timeout_ms = 10000;
  int read_timeout_ms = 60000;   // no byte received for this long -> timeout
  int total_timeout_ms = 180000;  // whole request (a long generation included)
  int max_attempts = 4;           // 1 = no retry
  int backoff_base_ms = 500;      // first retry waits about this long, doubling each time
  int backoff_max_ms = 20000;
  int64_t max_body_bytes = 0;     // > 0: a longer body stops the transfer (TransportError::too_large)
  int max_redirects = 0;          // > 0: follow up to this many redirects (never for signed requests)
  // Retry notes ("HTTP 429 ThrottlingException, retrying in 0.8 s"); nullptr = stderr.
  std::function<void(const std::string&)> log;
};

struct HttpRequest {
  std::string method = "POST";
  std::string url;
  HttpHeaders headers;  // sent exactly as given (curl adds no Content-Type / Expect of its own)
  std::string body;
};

// partial: the connection closed before the announced body was complete.
enum class TransportError { none, dns, connect, timeout, tls, too_large, redirects, partial, other };

struct HttpResponse {
  int status = 0;  // 0 when no response came back (see transport)
  HttpHeaders headers;
  std::string body;
  int attempts = 0;
  TransportError transport = TransportError::none;
  std::string transport_detail;  // curl's message (names host/port, never headers)
  std::string header(const std::string& name) const;  // case-insensitive; "" when absent
};

struct ParsedUrl {
  std::string scheme, host, port, path, query;  // path as written (percent-encoding kept)
  std::string host_header() const;              // "host" or "host:port" for a non-default port
};
ParsedUrl parse_url(const std::string& url);  // throws Error naming the URL

// The service's error code from x-amzn-ErrorType or the JSON body ("__type", "code", "error.type"),
// e.g. "ThrottlingException"; "" when none.
std::string http_error_code(const HttpResponse& r);
// Whether a response (or a transport failure) is worth another attempt.
bool http_retryable(const HttpResponse& r);

// Sends `req`, retrying as described above. Returns the last response (or transport failure);
// throws only on misuse (bad URL).
HttpResponse http_send(const HttpRequest& req, const HttpOptions& opts);

// "timed out after 60 s talking to host", "cannot resolve host ...", ... for a transport failure.
std::string transport_error_text(const HttpResponse& r, const std::string& host);

// Replaces every occurrence of each (non-empty) secret in `text` with "[redacted]".
std::string redact(std::string text, const std::vector<std::string>& secrets);

// The URL without the user:password@ part, for messages and logs; the password of that part ("" if none).
std::string url_without_userinfo(const std::string& url);
std::string url_userinfo_password(const std::string& url);

}  // namespace tailor
