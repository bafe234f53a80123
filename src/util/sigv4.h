// AWS Signature Version 4, written from AWS's specification ("Create a signed AWS API request"):
// canonical request -> string to sign -> signing key -> signature -> Authorization header.
// Hashing and HMAC come from OpenSSL. Checked against AWS's test suite (tests/util/sigv4_test.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace tailor {

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty for long-term keys
  std::string source;         // where they came from, for messages ("environment", "profile dev in ...")
};

struct SigV4Request {
  std::string method;  // "POST"
  // The path as sent on the wire: already percent-encoded where the URL needed it (the Bedrock
  // model id "a:0" is sent as "a%3A0"). Raw bytes (spaces, UTF-8) are allowed and get encoded.
  std::string path;
  std::string query;  // without '?', as sent; may be empty
  std::vector<std::pair<std::string, std::string>> headers;  // name, value, in sending order
  std::string body;
};

struct SigV4Options {
  std::string region;   // "us-east-1"
  std::string service;  // "bedrock"
  std::string amz_date;  // "20150830T123600Z" (UTC); the date part scopes the key
  // Every service except S3: remove "." / ".." / empty segments, then percent-encode each segment
  // of the path as sent (so an already encoded "%3A" becomes "%253A", as the AWS SDKs do).
  // S3 signs the path exactly as sent: set both false.
  bool normalize_path = true;
  bool encode_path = true;
  // With a session token: true adds X-Amz-Security-Token before signing (it is signed, as most
  // services, Bedrock included, expect); false leaves it to the caller to add after signing.
  bool sign_session_token = true;
};

struct SigV4Result {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;  // "host;x-amz-date"
  std::string signature;       // hex
  std::string authorization;   // the whole Authorization header value
};

// Computes the signature of `req` as given: the caller puts Host and X-Amz-Date (and, with
// sign_session_token, X-Amz-Security-Token) in req.headers first; sigv4_sign_request does that.
SigV4Result sigv4_sign(const SigV4Request& req, const AwsCredentials& creds, const SigV4Options& opts);

// Adds Host, X-Amz-Date, X-Amz-Security-Token (when the credentials have one) and Authorization
// to req.headers. `host` is the Host header value (with ":port" when not the default).
SigV4Result sigv4_sign_request(SigV4Request& req, const std::string& host, const AwsCredentials& creds,
                               const SigV4Options& opts);

// --- pieces, exposed for tests and for the mock server's independent check -----------------------
std::string sha256_hex(const std::string& data);
std::string hmac_sha256(const std::string& key, const std::string& data);  // raw 32 bytes
std::string hex_lower(const std::string& bytes);
// RFC 3986 encoding as SigV4 wants it: A-Z a-z 0-9 - _ . ~ stay, every other byte becomes %XX
// (upper-case hex); '/' stays only when keep_slash.
std::string uri_encode(const std::string& s, bool keep_slash);
std::string percent_decode(const std::string& s);
std::string sigv4_canonical_uri(const std::string& path, bool normalize, bool encode);
std::string sigv4_canonical_query(const std::string& query);
// "20150830T123600Z" for the given Unix time.
std::string amz_date_from_unix(int64_t unix_seconds);

}  // namespace tailor
