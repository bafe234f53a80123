#include "util/s3.h"

#include <ctime>

#include "util/error.h"

namespace tailor {

S3Uri parse_s3_uri(const std::string& uri) {
  if (uri.rfind("s3://", 0) != 0) throw Error("\"" + uri + "\" is not an s3:// URI (s3://bucket/key)");
  std::string rest = uri.substr(5);
  size_t slash = rest.find('/');
  S3Uri u;
  u.bucket = rest.substr(0, slash);
  if (slash != std::string::npos) u.key = rest.substr(slash + 1);
  if (u.bucket.empty()) throw Error("\"" + uri + "\" names no bucket (s3://bucket/key)");
  return u;
}

std::string s3_object_url(const std::string& s3_uri, const std::string& endpoint, bool path_style) {
  S3Uri u = parse_s3_uri(s3_uri);
  if (u.key.empty()) throw Error("\"" + s3_uri + "\" is not s3://bucket/key");
  ParsedUrl e = parse_url(endpoint);
  std::string port = e.port.empty() ? "" : ":" + e.port;
  std::string base = e.path == "/" ? "" : e.path;
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (path_style) return e.scheme + "://" + e.host + port + base + "/" + u.bucket + "/" + uri_encode(u.key, true);
  return e.scheme + "://" + u.bucket + "." + e.host + port + base + "/" + uri_encode(u.key, true);
}

HttpRequest s3_signed_request(const std::string& method, const std::string& url, const std::string& body,
                              const HttpHeaders& extra_headers, const AwsCredentials& creds, const std::string& region) {
  ParsedUrl u = parse_url(url);
  SigV4Request sreq;
  sreq.method = method;
  sreq.path = u.path;
  sreq.query = u.query;
  sreq.body = body;
  sreq.headers = extra_headers;
  sreq.headers.push_back({"x-amz-content-sha256", sha256_hex(body)});
  SigV4Options so;
  so.region = region;
  so.service = "s3";
  so.amz_date = amz_date_from_unix(static_cast<int64_t>(std::time(nullptr)));
  so.normalize_path = false;  // S3 signs the path exactly as sent
  so.encode_path = false;
  sigv4_sign_request(sreq, u.host_header(), creds, so);
  HttpRequest req;
  req.method = method;
  req.url = url;
  req.headers = sreq.headers;
  req.body = body;
  return req;
}

S3Client::S3Client(AwsCredentials creds, S3ClientOptions options) : creds_(std::move(creds)), o_(std::move(options)) {
  if (o_.part_bytes < 1) throw Error("S3 part size must be positive");
}

// The text of one XML element (<Code>NoSuchBucket</Code> → "NoSuchBucket"); "" when absent.
static std::string xml_element(const std::string& xml, const std::string& name) {
  size_t a = xml.find("<" + name + ">");
  if (a == std::string::npos) return "";
  a += name.size() + 2;
  size_t b = xml.find("</" + name + ">", a);
  return b == std::string::npos ? "" : xml.substr(a, b - a);
}

HttpResponse S3Client::send(const std::string& method, const std::string& s3_uri, const std::string& query,
                            const std::string& body, const HttpHeaders& extra_headers) {
  std::string url = s3_object_url(s3_uri, o_.endpoint, o_.path_style) + (query.empty() ? "" : "?" + query);
  HttpRequest req = s3_signed_request(method, url, body, extra_headers, creds_, o_.region);
  // Signed headers are dated: retries stay within the signature's 15 minutes (attempts × timeouts).
  return http_send(req, o_.http);
}

std::string S3Client::error_text(const std::string& what, const std::string& s3_uri, const HttpResponse& r) const {
  std::vector<std::string> secrets = {creds_.secret_access_key, creds_.session_token};
  if (r.transport != TransportError::none)
    return redact("S3 " + what + " " + s3_uri + ": " + transport_error_text(r, parse_url(o_.endpoint).host_header()),
                  secrets);
  std::string code = xml_element(r.body, "Code");
  std::string message = xml_element(r.body, "Message");
  std::string t = "S3 " + what + " " + s3_uri + " failed: HTTP " + std::to_string(r.status) +
                  (code.empty() ? "" : " " + code) + (message.empty() ? "" : ": " + message) +
                  (r.attempts > 1 ? " (after " + std::to_string(r.attempts) + " attempts)" : "");
  if (r.status == 403) t += "; check that the credentials from " + creds_.source + " may use the bucket";
  if (code == "NoSuchBucket") t += "; check the bucket name and --region";
  return redact(t, secrets);
}

static bool ok(const HttpResponse& r) { return r.transport == TransportError::none && r.status >= 200 && r.status < 300; }

void S3Client::put_object(const std::string& s3_uri, const std::string& body, const std::string& content_type) {
  if (static_cast<int64_t>(body.size()) > o_.part_bytes) return put_multipart(s3_uri, body, content_type);
  HttpResponse r = send("PUT", s3_uri, "", body, {{"Content-Type", content_type}});
  if (!ok(r)) throw Error(error_text("upload of", s3_uri, r));
}

// CreateMultipartUpload, UploadPart for each part_bytes slice, CompleteMultipartUpload with every
// part's ETag; on a failure AbortMultipartUpload, so no parts are left billed in the bucket.
void S3Client::put_multipart(const std::string& s3_uri, const std::string& body, const std::string& content_type) {
  HttpResponse r = send("POST", s3_uri, "uploads=", "", {{"Content-Type", content_type}});
  if (!ok(r)) throw Error(error_text("multipart upload start of", s3_uri, r));
  std::string upload_id = xml_element(r.body, "UploadId");
  if (upload_id.empty()) throw Error("S3 multipart upload start of " + s3_uri + ": the answer has no UploadId");
  const std::string id_query = "uploadId=" + uri_encode(upload_id, false);
  std::string complete = "<CompleteMultipartUpload>";
  try {
    int part = 1;
    for (size_t off = 0; off < body.size(); off += static_cast<size_t>(o_.part_bytes), ++part) {
      std::string slice = body.substr(off, static_cast<size_t>(o_.part_bytes));
      HttpResponse pr = send("PUT", s3_uri, "partNumber=" + std::to_string(part) + "&" + id_query, slice, {});
      if (!ok(pr)) throw Error(error_text("upload of part " + std::to_string(part) + " of", s3_uri, pr));
      std::string etag = pr.header("ETag");
      if (etag.empty()) throw Error("S3 upload of part " + std::to_string(part) + " of " + s3_uri + ": no ETag in the answer");
      complete += "<Part><PartNumber>" + std::to_string(part) + "</PartNumber><ETag>" + etag + "</ETag></Part>";
    }
    complete += "</CompleteMultipartUpload>";
    HttpResponse cr = send("POST", s3_uri, id_query, complete, {{"Content-Type", "application/xml"}});
    // S3 may answer 200 and still report an error in the body.
    if (!ok(cr) || cr.body.find("<Error>") != std::string::npos)
      throw Error(error_text("multipart upload completion of", s3_uri, cr));
  } catch (const Error&) {
    send("DELETE", s3_uri, id_query, "", {});
    throw;
  }
}

std::string S3Client::get_object(const std::string& s3_uri) {
  HttpResponse r = send("GET", s3_uri, "", "", {});
  if (!ok(r)) throw Error(error_text("download of", s3_uri, r));
  return r.body;
}

}  // namespace tailor
