// tailor's model server: SageMaker's bring-your-own-container contract over HTTP, in three layers
// (see /work/shared/STYLE.md item 8): this HTTP adapter (routes, parsing, limits, errors, metrics,
// logs) → RequestQueue (bounded, futures) → Batcher (owns the model, dynamic batching).
//
//   GET  /ping         200 once the model is loaded, 503 while loading (or when the load failed)
//   POST /invocations  JSON {"image": base64, "prompt"?: str, "parameters"?: {...}} or a raw
//                      image/jpeg | image/png body; answers {"<Attribute>": "<value>", ...,
//                      "generated_text": {"<Attribute>": "<raw model text>", ...}}
//   POST /describe     JSON {"image": base64, "attributes"?: {known}, "parameters"?: {...}} or a raw
//                      image → {"attributes": {...}, "predicted": {...}, "generated_text": {...},
//                      "description"?: str}
//   GET  /metrics      Prometheus text
//   GET  /execution-parameters  batch transform's settings (MaxConcurrentTransforms, BatchStrategy
//                      MULTI_RECORD, MaxPayloadInMB)
// POST /invocations and /describe also take JSON Lines (application/jsonlines: batch transform's
// MultiRecord with SplitType Line): one request per line, one answer line per line, in order; a bad
// record gets {"error": ..., "status": ...} on its line and the others are answered.
// The full contract is in docs/serving.md.
#pragma once
#include <atomic>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "serve/batcher.h"
#include "serve/http.h"
#include "serve/metrics.h"
#include "serve/queue.h"


namespace tailor {

// Writes a product description from attributes (the writers of the describe stage). May throw.
using Describer = std::function<std::string(const std::map<std::string, std::string>& attributes)>;

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                  // 0: any free port (start() returns it)
  size_t max_batch = 32;            // questions per model call
  int max_wait_ms = 5;              // longest a queued request waits for company
  size_t queue_capacity = 256;      // requests waiting for the model; one more gets 503
  int timeout_ms = 30000;           // per request, from queueing to answer; then 504
  size_t max_payload_bytes = 6u << 20;  // a body as read and as inflated (gzip/deflate); then 413
  std::string auth_token;           // non-empty: every route but /ping needs "Authorization: Bearer <token>"
  // Threads running requests (a request holds one from its last byte read to its answer; reading
  // and idle connections hold none). 0: enough for a full queue plus a batch in the model, so
  // back-pressure comes from the queue (503).
  int http_threads = 0;
  int request_deadline_ms = 30000;  // a request's headers and body must arrive within this; then 408
  int idle_timeout_ms = 5000;       // a keep-alive connection with no request is closed after this
  size_t max_connections = 10000;   // open connections (lowered to what RLIMIT_NOFILE allows); then 503
  int max_new_tokens_limit = 512;   // largest accepted parameters.max_new_tokens
  int max_num_beams = 8;            // largest accepted parameters.num_beams
  size_t max_prompt_bytes = 4096;
  uint64_t max_image_pixels = 50'000'000;  // one image; refused from its header, before decoding (400)
  // Decoded pixels of all requests being served together (3 bytes each); a request that would pass
  // it gets 503 (a lone image always fits).
  uint64_t max_pixels_in_flight = 200'000'000;
  AnswerMode answer_mode = AnswerMode::Choice;  // requests may ask otherwise: parameters.answer
  Describer describer;              // null: /describe returns attributes only
  // One JSON line per request; default (null) writes it to stderr.
  std::function<void(const std::string& line)> log_line;
};

class Server {
 public:
  Server(ServeOptions options, AnswererFactory factory);
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts listening, then starts the batcher thread that loads the model. Returns the
  // bound port. Throws Error when the address cannot be bound.
  int start();
  // Graceful: stops accepting connections, lets every request in flight finish (the batcher keeps
  // answering until the queue is drained), then joins all threads. Idempotent, any thread.
  void stop();

  bool ready() const { return batcher_.ready(); }
  bool load_failed() const { return batcher_.load_failed(); }
  std::string load_error() const { return batcher_.load_error(); }
  size_t queue_depth() const { return queue_.depth(); }
  size_t connections() const;  // open HTTP connections
  int port() const { return port_; }

 private:
  struct Reply;
  ServerResponse route(const ServerRequest& req);
  void log_request(const ServerRequest& req, const ServerResponse& res);
  Reply handle_invocations(const std::string& content_type, const std::string& body);
  Reply handle_describe(const std::string& content_type, const std::string& body);
  // A JSON Lines body: every line through `one` (JSON), answers in order, errors on their lines.
  Reply handle_records(const std::string& body, Reply (Server::*one)(const std::string&, const std::string&));

  ServeOptions options_;
  AnswererFactory factory_;
  Metrics metrics_;
  RequestQueue queue_;
  Batcher batcher_;
  std::unique_ptr<HttpServer> http_;
  std::atomic<uint64_t> pixels_in_flight_{0};
  int port_ = 0;
  std::mutex stop_mutex_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace tailor
