// Photos (and catalog tables) at an http(s) URL or s3://bucket/key, fetched once into a
// content-addressed local cache: <cache>/objects/<sha256 of the bytes>, and <cache>/urls/<sha256 of
// the URL> naming the object, so a second run (or a second product with the same photo) reads the
// disk. Downloads retry with back-off on 429, 5xx and network errors (util/http_client.h), have
// timeouts and a size limit, and follow redirects (plain URLs only). S3 requests are signed with
// SigV4 (util/sigv4.h) with the credentials chain and region of util/aws_config.h, virtual-hosted
// (bucket.endpoint/key) or path style (endpoint/bucket/key). Every failure has a stable reason and
// a detail naming the URL (never a credential); nothing is cached from a failure.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "util/s3.h"
#include "util/sigv4.h"

namespace tailor {

// Why a download failed (stable: prepare's manifest counts them).
extern const char* const kSkipHttpStatus;        // "HTTP error": 4xx/5xx (after retries for 5xx)
extern const char* const kSkipDownloadTimeout;   // "download timed out"
extern const char* const kSkipDownloadTruncated; // "truncated download": closed before Content-Length
extern const char* const kSkipDownloadTooLarge;  // "download too large"
extern const char* const kSkipDownloadNetwork;   // "network error": DNS, connect, TLS, redirects, other

struct DownloadOptions {
  std::string cache_dir;        // required for remote files
  int concurrency = 16;         // downloads in flight (prepare's worker threads when fetching)
  int max_attempts = 4;
  int connect_timeout_ms = 10000;
  int timeout_ms = 60000;       // a whole download
  int64_t max_bytes = 50 << 20; // a photo larger than this is refused
  int max_redirects = 5;
  std::string region;           // S3: --region (else AWS_REGION, ...)
  std::string endpoint_url;     // S3: --endpoint-url (else AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, AWS's)
  bool path_style = false;      // S3: endpoint/bucket/key instead of bucket.endpoint/key
};

struct Download {
  std::string path;            // the cached file ("" on failure)
  std::string reason, detail;  // reason "" = fetched (or found in the cache)
  bool from_cache = false;
};

bool is_remote_location(const std::string& location);  // http://, https:// or s3://

// s3_object_url (the https URL of an s3://bucket/key) is util/s3.h's.

class DownloadCache {
 public:
  explicit DownloadCache(DownloadOptions options);
  // Fetches `location` into the cache (once). Thread-safe. `max_bytes` overrides the photo limit
  // (catalog tables are larger). Throws Error only for a run-wide problem (no cache dir, no AWS
  // credentials or region for s3://).
  Download fetch(const std::string& location, int64_t max_bytes = 0);
  const DownloadOptions& options() const { return o_; }

 private:
  Download download(const std::string& location, int64_t max_bytes);
  void resolve_s3();  // credentials, region, endpoint: once, on the first s3:// location
  DownloadOptions o_;
  std::mutex s3_mu_;
  bool s3_ready_ = false;
  AwsCredentials creds_;
  std::string region_, endpoint_;
};

}  // namespace tailor
