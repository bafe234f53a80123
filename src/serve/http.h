// The HTTP/1.1 layer under tailor serve's routes (server.h), written for hostile and slow clients.
//
// One event-loop thread owns every connection (epoll, non-blocking sockets). It reads each request
// whole — headers, then the body framed by Content-Length or chunked Transfer-Encoding — under
// limits on the bytes actually read, and one deadline for the whole request (first byte to last);
// then a fixed pool of worker threads inflates the body (gzip/deflate, with the same limit on the
// inflated bytes) and runs the handler, and the loop writes the response back. So:
//   - a slow or idle client costs a file descriptor and a small buffer, never a thread: /ping and
//     real requests go on being served while any number of them are open;
//   - quick routes (/ping, /metrics: cheap, never blocking) are answered on the loop thread itself,
//     so they answer even while every worker waits for the model;
//   - memory is bounded by what is admitted: request bytes held by all connections together
//     (max_buffered_bytes), complete requests waiting for a worker (max_waiting), workers.
// Refusals name the limit: 413 (body), 431 (headers), 408 (deadline), 411 (POST without a length),
// 503 (connections, buffered bytes or waiting requests at their limit), 400/501 (malformed).
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace tailor {

struct ServerRequest {
  std::string method;
  std::string path;   // the target without its query
  std::string query;  // after '?', undecoded
  std::vector<std::pair<std::string, std::string>> headers;  // in order, names as sent
  std::string body;         // inflated when the client sent Content-Encoding gzip/deflate
  size_t bytes_in = 0;      // body bytes as sent
  std::string remote;       // "ip:port"
  std::chrono::steady_clock::time_point start;  // the request's first byte arrived
  // The first header of that name (case-insensitive); "" when absent.
  std::string header(const std::string& name) const;
};

struct ServerResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

struct HttpLimits {
  size_t max_header_bytes = 64u << 10;  // request line and headers; then 431
  size_t max_body_bytes = 6u << 20;     // read and inflated; then 413
  int request_deadline_ms = 30000;      // the first byte of a request to its last; then 408
  int idle_timeout_ms = 5000;           // a keep-alive connection waiting for its next request
  int write_timeout_ms = 30000;         // writing one response
  size_t max_connections = 10000;       // open at once (lowered to what RLIMIT_NOFILE allows); then 503
  size_t workers = 64;                  // threads running handlers
  size_t max_waiting = 1024;            // complete requests waiting for a worker; then 503
  size_t max_buffered_bytes = 256u << 20;  // request bytes held by all connections; then 503
};

struct HttpHandlers {
  // Runs on a worker thread (or on the loop thread when quick() says so). Must not throw.
  std::function<ServerResponse(const ServerRequest&)> handle;
  // True: handle() is cheap and never blocks; run it on the loop thread.
  std::function<bool(const ServerRequest&)> quick;
  // The body of the layer's own refusals (413, 408, ...).
  std::function<ServerResponse(int status, const std::string& message)> error;
  // Every response, just before it is written (logs, metrics). `request` is as far as it was read.
  std::function<void(const ServerRequest& request, const ServerResponse& response)> done;
};

class HttpServer {
 public:
  HttpServer(HttpLimits limits, HttpHandlers handlers);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port (0: any free port) and starts the loop and the workers; returns the port.
  // Throws Error when the address cannot be bound.
  int start(const std::string& host, int port);
  // Graceful: closes the listening socket (new connections are refused) and connections between
  // requests, lets every request being handled finish and its response be written, then joins all
  // threads. Idempotent.
  void stop();

  // Open connections (tests, metrics).
  size_t connections() const;

  struct State;

 private:
  std::unique_ptr<State> state_;
};

enum class Inflated { Ok, TooLarge, Corrupt };
// Inflates a body sent with Content-Encoding `encoding` ("gzip", "x-gzip" or "deflate": zlib, or raw
// deflate as some clients send it) into `out`, stopping as soon as it would pass `limit` bytes.
// Corrupt: `error` says why.
Inflated inflate_body(const std::string& encoding, const std::string& in, size_t limit, std::string& out,
                      std::string& error);

}  // namespace tailor
