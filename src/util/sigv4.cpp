#include "util/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <ctime>
#include <map>

#include "util/error.h"
#include "util/text.h"

namespace tailor {

std::string hex_lower(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

std::string sha256_hex(const std::string& data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1)
    throw Error("SHA-256 failed (OpenSSL)");
  return hex_lower(std::string(reinterpret_cast<char*>(md), len));
}

std::string hmac_sha256(const std::string& key, const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len))
    throw Error("HMAC-SHA256 failed (OpenSSL)");
  return std::string(reinterpret_cast<char*>(md), len);
}

static bool is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

std::string uri_encode(const std::string& s, bool keep_slash) {
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    if (is_unreserved(c) || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(digits[c >> 4]);
      out.push_back(digits[c & 15]);
    }
  }
  return out;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
        hex_value(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);  // a lone '%' is kept as a byte (and encoded again as %25)
    }
  }
  return out;
}

std::string sigv4_canonical_uri(const std::string& path, bool normalize, bool encode) {
  if (path.empty()) return "/";
  if (!normalize) return encode ? uri_encode(path, true) : path;
  // Split on '/', drop empty and "." segments, let ".." remove its parent (as the SDKs'
  // posix-style normalisation does); keep a trailing slash.
  std::vector<std::string> segments;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    std::string seg = path.substr(start, slash - start);
    if (seg == "..") {
      if (!segments.empty()) segments.pop_back();
    } else if (!seg.empty() && seg != ".") {
      segments.push_back(seg);
    }
    start = slash + 1;
  }
  if (segments.empty()) return "/";
  std::string out;
  for (const auto& seg : segments) out += "/" + (encode ? uri_encode(seg, false) : seg);
  if (path.back() == '/') out += "/";
  return out;
}

std::string sigv4_canonical_query(const std::string& query) {
  std::vector<std::pair<std::string, std::string>> params;
  size_t start = 0;
  while (start < query.size()) {
    size_t amp = query.find('&', start);
    if (amp == std::string::npos) amp = query.size();
    std::string part = query.substr(start, amp - start);
    if (!part.empty()) {
      size_t eq = part.find('=');
      std::string key = eq == std::string::npos ? part : part.substr(0, eq);
      std::string value = eq == std::string::npos ? "" : part.substr(eq + 1);
      // Decode first so that raw and already-encoded input give the same canonical form.
      params.push_back({uri_encode(percent_decode(key), false), uri_encode(percent_decode(value), false)});
    }
    start = amp + 1;
  }
  std::sort(params.begin(), params.end());  // by encoded name, then value (byte order)
  std::string out;
  for (const auto& p : params) out += (out.empty() ? "" : "&") + p.first + "=" + p.second;
  return out;
}

// Header value as SigV4 wants it: lines of a folded value joined with ',', each trimmed, and runs
// of spaces collapsed to one (quoted text included, as the spec says).
static std::string canonical_header_value(const std::string& value) {
  std::string joined;
  size_t start = 0;
  while (start <= value.size()) {
    size_t nl = value.find('\n', start);
    if (nl == std::string::npos) nl = value.size();
    std::string line = trim(value.substr(start, nl - start));
    if (!line.empty()) joined += (joined.empty() ? "" : ",") + line;
    start = nl + 1;
  }
  std::string out;
  for (char c : joined) {
    bool space = c == ' ' || c == '\t';
    if (space && !out.empty() && out.back() == ' ') continue;
    out.push_back(space ? ' ' : c);
  }
  return out;
}

static std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

SigV4Result sigv4_sign(const SigV4Request& req, const AwsCredentials& creds, const SigV4Options& opts) {
  if (opts.amz_date.size() != 16 || opts.amz_date[8] != 'T' || opts.amz_date[15] != 'Z')
    throw Error("SigV4: amz_date must look like 20150830T123600Z, got \"" + opts.amz_date + "\"");
  if (opts.region.empty() || opts.service.empty()) throw Error("SigV4: region and service are required");
  if (creds.access_key_id.empty() || creds.secret_access_key.empty())
    throw Error("SigV4: no access key id / secret access key");

  // Same-named headers are combined in sending order; names sorted.
  std::map<std::string, std::string> headers;
  for (const auto& h : req.headers) {
    std::string name = lower(trim(h.first));
    std::string value = canonical_header_value(h.second);
    auto it = headers.find(name);
    if (it == headers.end()) headers[name] = value;
    else it->second += "," + value;
  }
  std::string canonical_headers, signed_headers;
  for (const auto& h : headers) {
    canonical_headers += h.first + ":" + h.second + "\n";
    signed_headers += (signed_headers.empty() ? "" : ";") + h.first;
  }

  SigV4Result r;
  r.signed_headers = signed_headers;
  r.canonical_request = req.method + "\n" + sigv4_canonical_uri(req.path, opts.normalize_path, opts.encode_path) +
                        "\n" + sigv4_canonical_query(req.query) + "\n" + canonical_headers + "\n" +
                        signed_headers + "\n" + sha256_hex(req.body);

  std::string date = opts.amz_date.substr(0, 8);
  std::string scope = date + "/" + opts.region + "/" + opts.service + "/aws4_request";
  r.string_to_sign = "AWS4-HMAC-SHA256\n" + opts.amz_date + "\n" + scope + "\n" + sha256_hex(r.canonical_request);

  std::string k_date = hmac_sha256("AWS4" + creds.secret_access_key, date);
  std::string k_region = hmac_sha256(k_date, opts.region);
  std::string k_service = hmac_sha256(k_region, opts.service);
  std::string k_signing = hmac_sha256(k_service, "aws4_request");
  r.signature = hex_lower(hmac_sha256(k_signing, r.string_to_sign));
  r.authorization = "AWS4-HMAC-SHA256 Credential=" + creds.access_key_id + "/" + scope +
                    ", SignedHeaders=" + signed_headers + ", Signature=" + r.signature;
  return r;
}

SigV4Result sigv4_sign_request(SigV4Request& req, const std::string& host, const AwsCredentials& creds,
                               const SigV4Options& opts) {
  req.headers.push_back({"Host", host});
  req.headers.push_back({"X-Amz-Date", opts.amz_date});
  if (!creds.session_token.empty() && opts.sign_session_token)
    req.headers.push_back({"X-Amz-Security-Token", creds.session_token});
  SigV4Result r = sigv4_sign(req, creds, opts);
  if (!creds.session_token.empty() && !opts.sign_session_token)
    req.headers.push_back({"X-Amz-Security-Token", creds.session_token});
  req.headers.push_back({"Authorization", r.authorization});
  return r;
}

std::string amz_date_from_unix(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

}  // namespace tailor
