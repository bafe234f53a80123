#include "catalog/download_cache.h"

#include "util/aws_config.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/http_client.h"
#include "util/s3.h"

namespace tailor {

const char* const kSkipHttpStatus = "HTTP error";
const char* const kSkipDownloadTimeout = "download timed out";
const char* const kSkipDownloadTruncated = "truncated download";
const char* const kSkipDownloadTooLarge = "download too large";
const char* const kSkipDownloadNetwork = "network error";

// Objects are written under one lock: two URLs may name the same bytes, and write_file_atomic's
// temporary file is per process, not per thread.
static std::mutex g_write_mu;

bool is_remote_location(const std::string& s) {
  return s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0 || s.rfind("s3://", 0) == 0;
}

DownloadCache::DownloadCache(DownloadOptions options) : o_(std::move(options)) {}

void DownloadCache::resolve_s3() {
  std::lock_guard<std::mutex> lock(s3_mu_);
  if (s3_ready_) return;
  creds_ = resolve_aws_credentials();
  region_ = resolve_aws_region(o_.region);
  endpoint_ = resolve_s3_endpoint(o_.endpoint_url, region_);
  s3_ready_ = true;
}

Download DownloadCache::fetch(const std::string& location, int64_t max_bytes) {
  if (o_.cache_dir.empty()) throw Error("a remote photo or table (" + location + ") needs a download cache directory");
  const std::string index = join_path(join_path(o_.cache_dir, "urls"), sha256_hex(location));
  if (file_exists(index)) {
    std::string object = join_path(join_path(o_.cache_dir, "objects"), read_file(index));
    if (file_exists(object)) return Download{object, "", "", true};
  }
  return download(location, max_bytes > 0 ? max_bytes : o_.max_bytes);
}

Download DownloadCache::download(const std::string& location, int64_t max_bytes) {
  HttpRequest req;
  req.method = "GET";
  HttpOptions http;
  http.connect_timeout_ms = o_.connect_timeout_ms;
  http.read_timeout_ms = o_.timeout_ms;
  http.total_timeout_ms = o_.timeout_ms;
  http.max_attempts = o_.max_attempts;
  http.backoff_base_ms = 200;
  http.max_body_bytes = max_bytes;
  http.log = [](const std::string&) {};  // each failure is reported once, with its product
  std::vector<std::string> secrets;
  if (location.rfind("s3://", 0) == 0) {
    resolve_s3();
    req.url = s3_object_url(location, endpoint_, o_.path_style);
    req = s3_signed_request("GET", req.url, "", {}, creds_, region_);
    secrets = {creds_.secret_access_key, creds_.session_token};
  } else {
    req.url = location;
    http.max_redirects = o_.max_redirects;
  }
  // Signed headers are dated: a retry re-signs only by coming through here again, so S3 requests
  // retry within the signature's 15 minutes, which the attempts and timeouts stay well inside.
  HttpResponse r = http_send(req, http);
  Download d;
  const std::string host = parse_url(req.url).host_header();
  if (r.transport != TransportError::none) {
    d.reason = r.transport == TransportError::timeout     ? kSkipDownloadTimeout
               : r.transport == TransportError::partial   ? kSkipDownloadTruncated
               : r.transport == TransportError::too_large ? kSkipDownloadTooLarge
                                                          : kSkipDownloadNetwork;
    d.detail = redact(transport_error_text(r, host), secrets);
    return d;
  }
  if (r.status < 200 || r.status >= 300) {
    std::string code = http_error_code(r);
    d.reason = kSkipHttpStatus;
    d.detail = "HTTP " + std::to_string(r.status) + (code.empty() ? "" : " " + code) + " from " + host +
               (r.attempts > 1 ? " (after " + std::to_string(r.attempts) + " attempts)" : "");
    return d;
  }
  const std::string hash = sha256_hex(r.body);
  const std::string objects = join_path(o_.cache_dir, "objects"), urls = join_path(o_.cache_dir, "urls");
  d.path = join_path(objects, hash);
  {
    std::lock_guard<std::mutex> lock(g_write_mu);
    make_dirs(objects);
    make_dirs(urls);
    if (!file_exists(d.path)) write_file_atomic(d.path, r.body);
    write_file_atomic(join_path(urls, sha256_hex(location)), hash);
  }
  return d;
}

}  // namespace tailor
