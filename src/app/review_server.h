// `tailor review`: a web page over `tailor describe`'s output where merchandisers check, fix and
// approve what tailor wrote (docs/review.md). The HTTP side follows serve/server.cpp's style
// (cpp-httplib, one thread pool, errors as clear messages); the data lives in review_store.h.
//
//   GET  /                       the queue (filters: status, attribute, max_confidence, article_type)
//   GET  /product/<id>           one product: photo, attributes, description, decisions
//   POST /product/<id>           a form: version, action (approve|reject|skip|save|regenerate|reopen),
//                                attr:<name> values, description, reviewer → 303 to the next page;
//                                409 when someone changed the product meanwhile, 400 for a bad field
//   GET  /photo/<id>             the product's photo (its path comes from the database, never the URL)
//   GET  /summary                counts and charts (loss curve, accuracy vs baseline, confusion)
//   GET  /export/approved.jsonl | approved.csv | corrections.jsonl
//   GET  /login, POST /login     only with a token: password form → session cookie (or send
//                                "Authorization: Bearer <token>" with every request)
#pragma once
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "app/review_store.h"
#include "core/attributes.h"
#include "write/writer.h"

namespace httplib {
class Server;
}

namespace tailor {

struct ReviewOptions {
  std::string describe_path;  // tailor describe's JSONL (required)
  std::string db_path;        // "" = <describe_path>.review.sqlite
  PhotoPlaces photos;         // --catalog and/or --photos
  std::string model_dir;      // optional: its tailor_task.json gives the attributes' questions and values
  std::string train_log;      // optional: train_log.jsonl for the summary's loss curve
  std::string host = "127.0.0.1";
  int port = 8090;            // 0: any free port
  std::string auth_token;     // "" = open; else login with it (never logged or shown)
  WriterConfig writer;        // for "regenerate" (offline by default)
  std::string export_dir;     // non-empty: write the exports there and return instead of serving
  std::function<void(const std::string&)> log;  // notes and one line per request; null = stderr
};

struct ReviewContext;  // what the handlers share (review_server.cpp)

class ReviewServer {
 public:
  ReviewServer(ReviewStore& store, const ReviewOptions& options);
  ~ReviewServer();  // stop()
  ReviewServer(const ReviewServer&) = delete;
  ReviewServer& operator=(const ReviewServer&) = delete;

  int start();  // binds, starts the listener thread, returns the port; throws Error when it cannot bind
  void stop();  // idempotent

 private:
  std::unique_ptr<ReviewContext> context_;
  std::unique_ptr<httplib::Server> http_;
  std::thread listener_;
  std::mutex stop_mutex_;
  bool started_ = false;
};

// The command: opens the database, imports the describe output (new products only), then writes
// the exports (options.export_dir) or serves until SIGTERM/SIGINT.
void run_review(const ReviewOptions& options);

}  // namespace tailor
