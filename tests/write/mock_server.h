// Test helpers for the writers: a scripted HTTP server on 127.0.0.1 (cpp-httplib) and an
// independent SigV4 check of a received request, written here with OpenSSL directly (not with
// src/write/sigv4.cpp), the way the AWS service side checks it.
#pragma once
#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mock {

struct Reply {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  int delay_ms = 0;
};

// Serves requests on 127.0.0.1 from a script of replies (the last one repeats), or from `respond`
// when set (a stateful service: S3's objects, a batch job's states); each received request is kept,
// and `check` (if set) may record a problem with it. POST, GET, PUT and DELETE.
struct Server {
  httplib::Server svr;
  std::thread thread;
  int port = 0;
  std::mutex mu;
  std::vector<Reply> script;
  size_t next = 0;
  std::vector<httplib::Request> received;
  std::vector<std::string> problems;  // from check()
  std::function<std::string(const httplib::Request&)> check;  // "" = fine
  std::function<Reply(const httplib::Request&)> respond;      // called under the lock

  Server() {
    auto handle = [this](const httplib::Request& req, httplib::Response& res) {
      Reply r;
      {
        std::lock_guard<std::mutex> lock(mu);
        received.push_back(req);
        if (check) {
          std::string why = check(req);
          if (!why.empty()) problems.push_back(why);
        }
        if (respond) r = respond(req);
        else r = script.empty() ? Reply{500, "{\"message\":\"no script\"}"} : script[std::min(next, script.size() - 1)];
        next++;
      }
      if (r.delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(r.delay_ms));
      res.status = r.status;
      for (const auto& h : r.headers) res.set_header(h.first.c_str(), h.second);
      res.set_content(r.body, "application/json");
    };
    svr.Post(R"(/.*)", handle);
    svr.Get(R"(/.*)", handle);
    svr.Put(R"(/.*)", handle);
    svr.Delete(R"(/.*)", handle);
    port = svr.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { svr.listen_after_bind(); });
    while (!svr.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~Server() {
    svr.stop();
    if (thread.joinable()) thread.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu);
    return received.size();
  }
};

inline std::string hex(const unsigned char* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s.push_back(d[p[i] >> 4]);
    s.push_back(d[p[i] & 15]);
  }
  return s;
}

inline std::string sha256(const std::string& data) {
  unsigned char md[32];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  return hex(md, n);
}

inline std::string hmac(const std::string& key, const std::string& data) {
  unsigned char md[32];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), (int)key.size(), (const unsigned char*)data.data(), data.size(), md, &n);
  return std::string((const char*)md, n);
}

// What the server does with the path it received: encode every byte of each segment except
// RFC 3986 unreserved characters.
inline std::string encode_segment(const std::string& s) {
  std::string out;
  char buf[4];
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back((char)c);
    } else {
      snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

inline std::string field(const std::string& auth, const std::string& key) {
  size_t p = auth.find(key + "=");
  if (p == std::string::npos) return "";
  p += key.size() + 1;
  size_t e = auth.find_first_of(", ", p);
  return auth.substr(p, e == std::string::npos ? std::string::npos : e - p);
}

inline std::string decode_percent(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back((char)std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// The canonical query string of the raw target: each name and value decoded, then encoded as
// RFC 3986 unreserved-only, pairs sorted by name then value, "name=value" joined with '&'.
inline std::string canonical_query_of(const std::string& target) {
  size_t q = target.find('?');
  if (q == std::string::npos) return "";
  std::string query = target.substr(q + 1);
  std::vector<std::pair<std::string, std::string>> pairs;
  size_t s = 0;
  while (s <= query.size()) {
    size_t amp = query.find('&', s);
    if (amp == std::string::npos) amp = query.size();
    std::string part = query.substr(s, amp - s);
    if (!part.empty()) {
      size_t eq = part.find('=');
      std::string name = eq == std::string::npos ? part : part.substr(0, eq);
      std::string value = eq == std::string::npos ? "" : part.substr(eq + 1);
      pairs.push_back({encode_segment(decode_percent(name)), encode_segment(decode_percent(value))});
    }
    s = amp + 1;
  }
  std::sort(pairs.begin(), pairs.end());
  std::string out;
  for (const auto& p : pairs) out += (out.empty() ? "" : "&") + p.first + "=" + p.second;
  return out;
}

// Recomputes the signature of `req` from what arrived on the wire; "" when it matches. S3 signs
// the path as sent (`s3_path`); every other service encodes each segment of it once more.
inline std::string verify_sigv4(const httplib::Request& req, const std::string& access_key, const std::string& secret,
                                const std::string& region, const std::string& service, bool s3_path = false) {
  std::string auth = req.get_header_value("Authorization");
  if (auth.rfind("AWS4-HMAC-SHA256 ", 0) != 0) return "no SigV4 Authorization header";
  std::string cred = field(auth, "Credential"), signed_list = field(auth, "SignedHeaders"),
              sig = field(auth, "Signature");
  std::string date = req.get_header_value("X-Amz-Date");
  if (date.size() != 16) return "bad X-Amz-Date " + date;
  std::string scope = date.substr(0, 8) + "/" + region + "/" + service + "/aws4_request";
  if (cred != access_key + "/" + scope) return "bad credential scope " + cred;
  if (signed_list.find("host") == std::string::npos || signed_list.find("x-amz-date") == std::string::npos)
    return "host/x-amz-date not signed: " + signed_list;
  // Canonical URI from the raw target.
  std::string target = req.target.substr(0, req.target.find('?'));
  std::string curi;
  size_t start = 1;
  while (start <= target.size()) {
    size_t slash = target.find('/', start);
    if (slash == std::string::npos) slash = target.size();
    std::string segment = target.substr(start, slash - start);
    curi += "/" + (s3_path ? segment : encode_segment(segment));
    start = slash + 1;
  }
  std::string cheaders;
  size_t s = 0;
  while (s <= signed_list.size()) {
    size_t semi = signed_list.find(';', s);
    if (semi == std::string::npos) semi = signed_list.size();
    std::string name = signed_list.substr(s, semi - s);
    if (!req.has_header(name.c_str())) return "signed header missing: " + name;
    std::string v = req.get_header_value(name.c_str());
    cheaders += name + ":" + v + "\n";
    s = semi + 1;
  }
  // S3 also signs the body's hash it is sent in x-amz-content-sha256: it must be the body's.
  if (req.has_header("x-amz-content-sha256") && req.get_header_value("x-amz-content-sha256") != sha256(req.body))
    return "x-amz-content-sha256 is not the body's hash";
  std::string creq = req.method + "\n" + curi + "\n" + canonical_query_of(req.target) + "\n" + cheaders + "\n" + signed_list + "\n" + sha256(req.body);
  std::string sts = "AWS4-HMAC-SHA256\n" + date + "\n" + scope + "\n" + sha256(creq);
  std::string k = hmac("AWS4" + secret, date.substr(0, 8));
  k = hmac(k, region);
  k = hmac(k, service);
  k = hmac(k, "aws4_request");
  std::string h = hmac(k, sts);
  std::string want = hex((const unsigned char*)h.data(), h.size());
  if (want != sig) return "signature mismatch; server canonical request:\n" + creq;
  return "";
}

// Clears every variable the writers read, so tests start from nothing.
inline void clear_env() {
  for (const char* v : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                        "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_REGION", "AWS_DEFAULT_REGION",
                        "AWS_BEARER_TOKEN_BEDROCK", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
                        "AWS_ENDPOINT_URL_BEDROCK", "AWS_ENDPOINT_URL_S3",
                        "OPENAI_API_KEY", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                        "all_proxy"})
    unsetenv(v);
}

}  // namespace mock
