#include "util/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <utility>
#include <cctype>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "util/error.h"
#include "util/text.h"

namespace tailor {

static std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

std::string HttpResponse::header(const std::string& name) const {
  std::string want = lower(name);
  for (const auto& h : headers)
    if (lower(h.first) == want) return h.second;
  return "";
}

static void curl_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

ParsedUrl parse_url(const std::string& url) {
  curl_init_once();
  CURLU* u = curl_url();
  if (!u) throw Error("out of memory parsing a URL");
  ParsedUrl p;
  CURLUcode rc = curl_url_set(u, CURLUPART_URL, url.c_str(), 0);
  if (rc != CURLUE_OK) {
    curl_url_cleanup(u);
    throw Error("invalid URL \"" + url_without_userinfo(url) + "\": " + curl_url_strerror(rc));
  }
  auto get = [&](CURLUPart part, unsigned flags) {
    char* s = nullptr;
    std::string out;
    if (curl_url_get(u, part, &s, flags) == CURLUE_OK && s) out = s;
    curl_free(s);
    return out;
  };
  p.scheme = get(CURLUPART_SCHEME, 0);
  p.host = get(CURLUPART_HOST, 0);
  p.port = get(CURLUPART_PORT, 0);  // only when written in the URL
  p.path = get(CURLUPART_PATH, 0);
  p.query = get(CURLUPART_QUERY, 0);
  curl_url_cleanup(u);
  if (p.scheme != "http" && p.scheme != "https") throw Error("URL \"" + url_without_userinfo(url) + "\" must be http:// or https://");
  if (p.host.empty()) throw Error("URL \"" + url_without_userinfo(url) + "\" has no host");
  if (p.path.empty()) p.path = "/";
  return p;
}

std::string ParsedUrl::host_header() const {
  bool default_port = port.empty() || (scheme == "https" && port == "443") || (scheme == "http" && port == "80");
  return default_port ? host : host + ":" + port;
}

std::string http_error_code(const HttpResponse& r) {
  std::string t = r.header("x-amzn-ErrorType");
  if (!t.empty()) return t.substr(0, t.find(':'));
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return "";
  std::string code;
  if (j.contains("__type") && j["__type"].is_string()) code = j["__type"].get<std::string>();
  else if (j.contains("code") && j["code"].is_string()) code = j["code"].get<std::string>();
  else if (j.contains("error") && j["error"].is_object()) {
    const auto& e = j["error"];
    if (e.contains("code") && e["code"].is_string()) code = e["code"].get<std::string>();
    else if (e.contains("type") && e["type"].is_string()) code = e["type"].get<std::string>();
  }
  size_t hash = code.rfind('#');  // "com.amazon.coral.service#ThrottlingException"
  if (hash != std::string::npos) code = code.substr(hash + 1);
  return code;
}

bool http_retryable(const HttpResponse& r) {
  switch (r.transport) {
    case TransportError::timeout:
    case TransportError::connect:
    case TransportError::partial:
    case TransportError::other:
      return true;
    case TransportError::dns:  // a wrong region or host does not fix itself
    case TransportError::tls:
    case TransportError::too_large:
    case TransportError::redirects:
      return false;
    case TransportError::none:
      break;
  }
  if (r.status == 429 || (r.status >= 500 && r.status != 501)) return true;
  static const char* throttling[] = {"ThrottlingException", "ServiceUnavailableException", "TooManyRequestsException",
                                     "ModelNotReadyException", "Throttling", "ThrottledException",
                                     "RequestLimitExceeded", "ProvisionedThroughputExceededException",
                                     "rate_limit_exceeded"};
  std::string code = http_error_code(r);
  for (const char* t : throttling)
    if (code == t) return true;
  return false;
}

// Where a body goes, with its bound.
struct BodySink {
  std::string* body;
  int64_t max_bytes;  // 0 = unbounded
  bool over = false;
};

static size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<BodySink*>(user);
  if (sink->max_bytes > 0 && static_cast<int64_t>(sink->body->size() + size * n) > sink->max_bytes) {
    sink->over = true;
    return 0;  // curl stops with CURLE_WRITE_ERROR
  }
  sink->body->append(data, size * n);
  return size * n;
}

static size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* headers = static_cast<HttpHeaders*>(user);
  std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) headers->clear();  // a new response (after 100 Continue, redirects)
  size_t colon = line.find(':');
  if (colon != std::string::npos) headers->push_back({trim(line.substr(0, colon)), trim(line.substr(colon + 1))});
  return size * n;
}

static TransportError classify(CURLcode c) {
  switch (c) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return TransportError::dns;
    case CURLE_COULDNT_CONNECT:
      return TransportError::connect;
    case CURLE_OPERATION_TIMEDOUT:
      return TransportError::timeout;
    case CURLE_TOO_MANY_REDIRECTS:
      return TransportError::redirects;
    case CURLE_PARTIAL_FILE:
      return TransportError::partial;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
      return TransportError::tls;
    default:
      return TransportError::other;
  }
}

static HttpResponse send_once(const HttpRequest& req, const HttpOptions& opts) {
  curl_init_once();
  HttpResponse r;
  CURL* c = curl_easy_init();
  if (!c) throw Error("cannot start libcurl");
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_slist* list = nullptr;
  for (const auto& h : req.headers) list = curl_slist_append(list, (h.first + ": " + h.second).c_str());
  list = curl_slist_append(list, "Expect:");  // no 100-continue round trip
  if (req.method == "POST" || !req.body.empty()) {
    bool has_type = false;
    for (const auto& h : req.headers) has_type = has_type || lower(h.first) == "content-type";
    if (!has_type) list = curl_slist_append(list, "Content-Type:");  // not curl's form default
  }
  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  if (req.method != "GET") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opts.connect_timeout_ms));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(opts.total_timeout_ms));
  // Read timeout: abort when fewer than 1 byte/s arrive for read_timeout (curl counts whole seconds).
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, static_cast<long>(std::max(1, (opts.read_timeout_ms + 999) / 1000)));
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  BodySink sink{&r.body, opts.max_body_bytes};
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.headers);
  // A redirect would carry a signature elsewhere: only unsigned requests (photos) ask to follow.
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, opts.max_redirects > 0 ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, static_cast<long>(opts.max_redirects));
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_OK) {
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    r.status = static_cast<int>(status);
  } else {
    r.transport = sink.over ? TransportError::too_large : classify(rc);
    r.transport_detail = sink.over ? "the body is larger than " + std::to_string(opts.max_body_bytes) + " bytes"
                         : errbuf[0] ? std::string(errbuf)
                                     : std::string(curl_easy_strerror(rc));
    r.body.clear();
    r.headers.clear();
  }
  curl_slist_free_all(list);
  curl_easy_cleanup(c);
  return r;
}

static int backoff_ms(int retry, const HttpOptions& opts, const HttpResponse& last) {
  // Exponential with "equal jitter": half the step fixed, half random, so concurrent clients spread.
  double step = std::min<double>(opts.backoff_max_ms, opts.backoff_base_ms * std::pow(2.0, retry - 1));
  thread_local std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> jitter(0.0, step / 2);
  int ms = static_cast<int>(step / 2 + jitter(rng));
  std::string after = last.header("Retry-After");
  if (!after.empty() && std::all_of(after.begin(), after.end(), ::isdigit) && after.size() < 6)
    ms = std::max(ms, std::min(opts.backoff_max_ms, std::stoi(after) * 1000));
  return ms;
}

static std::string short_reason(const HttpResponse& r) {
  if (r.transport != TransportError::none) return r.transport_detail;
  std::string code = http_error_code(r);
  return "HTTP " + std::to_string(r.status) + (code.empty() ? "" : " " + code);
}

HttpResponse http_send(const HttpRequest& req, const HttpOptions& opts) {
  ParsedUrl url = parse_url(req.url);  // fail early and clearly on a bad URL
  int attempts = std::max(1, opts.max_attempts);
  HttpResponse r;
  for (int attempt = 1; attempt <= attempts; ++attempt) {
    r = send_once(req, opts);
    r.attempts = attempt;
    if (!http_retryable(r) || attempt == attempts) break;
    int wait = backoff_ms(attempt, opts, r);
    char note[512];
    std::snprintf(note, sizeof note, "%s%s: %s, retrying in %.1f s (attempt %d of %d)", url.host_header().c_str(),
                  url.path.c_str(), short_reason(r).c_str(), wait / 1000.0, attempt + 1, attempts);
    if (opts.log) opts.log(note);
    else std::fprintf(stderr, "%s\n", note);
    std::this_thread::sleep_for(std::chrono::milliseconds(wait));
  }
  return r;
}

std::string transport_error_text(const HttpResponse& r, const std::string& host) {
  std::string tries = r.attempts > 1 ? " (after " + std::to_string(r.attempts) + " attempts)" : "";
  switch (r.transport) {
    case TransportError::dns:
      return "cannot resolve host " + host + ": no such name (DNS)" + tries;
    case TransportError::connect:
      return "cannot connect to " + host + ": " + r.transport_detail + tries;
    case TransportError::timeout:
      return "timed out talking to " + host + ": " + r.transport_detail + tries;
    case TransportError::tls:
      return "TLS failure with " + host + ": " + r.transport_detail;
    case TransportError::too_large:
      return "too large from " + host + ": " + r.transport_detail;
    case TransportError::redirects:
      return "too many redirects from " + host + ": " + r.transport_detail;
    case TransportError::partial:
      return "truncated answer from " + host + ": " + r.transport_detail + tries;
    case TransportError::other:
      return "network error with " + host + ": " + r.transport_detail + tries;
    case TransportError::none:
      break;
  }
  return "";
}

std::string redact(std::string text, const std::vector<std::string>& secrets) {
  for (const auto& s : secrets) {
    if (s.empty()) continue;
    size_t pos = 0;
    while ((pos = text.find(s, pos)) != std::string::npos) {
      text.replace(pos, s.size(), "[redacted]");
      pos += 10;
    }
  }
  return text;
}

// [start, at) of the user info in scheme://userinfo@host/..., or at == npos when there is none.
static std::pair<size_t, size_t> userinfo_span(const std::string& url) {
  size_t scheme = url.find("://");
  size_t start = scheme == std::string::npos ? 0 : scheme + 3;
  size_t end = url.find_first_of("/?#", start);
  size_t at = url.rfind('@', end == std::string::npos ? std::string::npos : end);
  if (at == std::string::npos || at < start) return {start, std::string::npos};
  return {start, at};
}

std::string url_without_userinfo(const std::string& url) {
  auto [start, at] = userinfo_span(url);
  return at == std::string::npos ? url : url.substr(0, start) + url.substr(at + 1);
}

std::string url_userinfo_password(const std::string& url) {
  auto [start, at] = userinfo_span(url);
  if (at == std::string::npos) return "";
  size_t colon = url.find(':', start);
  return colon == std::string::npos || colon > at ? "" : url.substr(colon + 1, at - colon - 1);
}

}  // namespace tailor
