// Amazon S3 objects over util's http_client and sigv4: s3:// URIs, object URLs (virtual-hosted or
// path style), and a small client that puts (multipart above a part size), gets and deletes objects
// with SigV4-signed requests (service "s3": the path is signed as sent, the body's SHA-256 in
// x-amz-content-sha256). Used by the catalog's downloads and by describe's batch jobs.
#pragma once
#include <cstdint>
#include <string>

#include "util/http_client.h"
#include "util/sigv4.h"

namespace tailor {

struct S3Uri {
  std::string bucket, key;  // key may be empty for s3://bucket or s3://bucket/ (a prefix)
};
// s3://bucket/key or s3://bucket/prefix; throws Error naming the URI when it is not one.
S3Uri parse_s3_uri(const std::string& uri);

// The https URL an s3://bucket/key is fetched from (its key percent-encoded as S3 signs it).
// Throws Error for a URI without a key.
std::string s3_object_url(const std::string& s3_uri, const std::string& endpoint, bool path_style);

// A request to S3 with its SigV4 headers (Host, X-Amz-Date, x-amz-content-sha256, the session token
// and Authorization; `extra_headers` are signed too) for `url` (path as sent, query without '?').
HttpRequest s3_signed_request(const std::string& method, const std::string& url, const std::string& body,
                              const HttpHeaders& extra_headers, const AwsCredentials& creds, const std::string& region);

struct S3ClientOptions {
  std::string region;
  std::string endpoint;           // resolved (util/aws_config.h resolve_s3_endpoint)
  bool path_style = false;
  int64_t part_bytes = 8 << 20;   // objects larger than this go up in parts of this size (S3: >= 5 MiB)
  HttpOptions http;
};

class S3Client {
 public:
  S3Client(AwsCredentials creds, S3ClientOptions options);
  // Throws Error naming s3://bucket/key, the HTTP status and S3's error code (never a credential).
  void put_object(const std::string& s3_uri, const std::string& body, const std::string& content_type);
  std::string get_object(const std::string& s3_uri);

 private:
  HttpResponse send(const std::string& method, const std::string& s3_uri, const std::string& query,
                    const std::string& body, const HttpHeaders& extra_headers);
  void put_multipart(const std::string& s3_uri, const std::string& body, const std::string& content_type);
  std::string error_text(const std::string& what, const std::string& s3_uri, const HttpResponse& r) const;
  AwsCredentials creds_;
  S3ClientOptions o_;
};

}  // namespace tailor
