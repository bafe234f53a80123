#include "app/review_server.h"

#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "app/charts.h"
#include "app/review_export.h"
#include "app/review_page.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/signals.h"

namespace tailor {

using httplib::Request;
using httplib::Response;

// A request that cannot be done, with the HTTP status that says why (shown on an error page).
struct ReviewHttpError {
  int status;
  std::string message;
};

struct ReviewContext {
  ReviewStore& store;
  ReviewOptions options;
  std::unique_ptr<Writer> writer;
  std::vector<AttributeSpec> specs;                               // questions (the model's task or the defaults)
  std::map<std::string, std::vector<std::string>> task_values;    // from the model's tailor_task.json
  std::mutex sessions_mutex;
  std::set<std::string> sessions;                                 // session cookie values of logged-in browsers

  void log(const std::string& line) const {
    if (options.log) options.log(line);
    else std::fprintf(stderr, "%s\n", line.c_str());
  }
};

namespace {

const char* const kSessionCookie = "tailor_session";
const char* const kReviewerCookie = "tailor_reviewer";
const size_t kMaxDescriptionBytes = 20000;
const size_t kQueueRowsShown = 500;

// Compares without an early exit, so the time taken says nothing about the secret.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.empty() ? 1 : b.size())]);
  return diff == 0 && !b.empty();
}

std::string random_hex(size_t bytes) {
  std::ifstream in("/dev/urandom", std::ios::binary);
  std::string raw(bytes, '\0');
  if (!in.read(&raw[0], static_cast<std::streamsize>(bytes))) throw Error("cannot read /dev/urandom for a session id");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

std::string cookie(const Request& req, const std::string& name) {
  std::string all = req.get_header_value("Cookie");
  size_t pos = 0;
  while (pos < all.size()) {
    size_t end = all.find(';', pos);
    if (end == std::string::npos) end = all.size();
    std::string part = all.substr(pos, end - pos);
    size_t start = part.find_first_not_of(' ');
    if (start != std::string::npos) part = part.substr(start);
    if (part.compare(0, name.size() + 1, name + "=") == 0) return part.substr(name.size() + 1);
    pos = end + 1;
  }
  return "";
}

void send_html(Response& res, int status, const std::string& html) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(html, "text/html; charset=utf-8");
}

void redirect(Response& res, const std::string& location) {
  res.status = 303;
  res.set_header("Location", location);
}

QueueFilter parse_filter(const Request& req) {
  QueueFilter f;
  if (req.has_param("status") && !req.get_param_value("status").empty()) f.status = req.get_param_value("status");
  if (f.status != "all" && !is_review_status(f.status))
    throw ReviewHttpError{400, "field status: \"" + f.status + "\" is not one of pending, approved, rejected, skipped, all"};
  f.attribute = req.get_param_value("attribute");
  f.article_type = req.get_param_value("article_type");
  std::string c = req.get_param_value("max_confidence");
  if (!c.empty()) {
    char* end = nullptr;
    double v = std::strtod(c.c_str(), &end);
    if (*end != '\0' || !(v >= 0 && v <= 1))
      throw ReviewHttpError{400, "field max_confidence: \"" + c + "\" is not a number between 0 and 1"};
    f.max_confidence = v;
  }
  return f;
}

// The values a reviewer may choose for each attribute: the model's task, the data, the current one.
std::map<std::string, std::vector<std::string>> allowed_values(const ReviewContext& c, const ReviewProduct& p) {
  std::map<std::string, std::vector<std::string>> allowed = c.store.values_seen();
  for (const auto& [name, values] : c.task_values)
    for (const auto& v : values)
      if (std::find(allowed[name].begin(), allowed[name].end(), v) == allowed[name].end()) allowed[name].push_back(v);
  for (auto& [name, values] : allowed) std::sort(values.begin(), values.end());
  for (const auto& a : p.attributes)
    for (const std::string* v : {&a.value, &a.predicted})
      if (std::find(allowed[a.name].begin(), allowed[a.name].end(), *v) == allowed[a.name].end())
        allowed[a.name].push_back(*v);
  return allowed;
}

ProductView product_view(const ReviewContext& c, const ReviewProduct& p, const QueueFilter& filter, const Request& req) {
  ProductView v;
  v.product = p;
  v.allowed = allowed_values(c, p);
  v.filter = filter;
  v.counts = c.store.counts();
  v.reviewer = httplib::detail::decode_url(cookie(req, kReviewerCookie), true);
  std::vector<std::string> ids = c.store.queue_ids(filter);
  auto it = std::find(ids.begin(), ids.end(), p.id);
  v.queue_size = ids.size();
  if (it != ids.end()) {
    v.position = static_cast<size_t>(it - ids.begin()) + 1;
    if (it != ids.begin()) v.prev_id = *(it - 1);
    if (it + 1 != ids.end()) v.next_id = *(it + 1);
  } else if (!ids.empty()) {
    v.next_id = ids.front();  // decided already: "next" is the queue's first
  }
  return v;
}

// The form's change, checked field by field; a bad field throws ReviewHttpError naming it.
ReviewChange parse_change(const ReviewContext& c, const ReviewProduct& p, const Request& req) {
  ReviewChange change;
  change.id = p.id;
  std::string version = req.get_param_value("version");
  char* end = nullptr;
  long long v = std::strtoll(version.c_str(), &end, 10);
  if (version.empty() || *end != '\0' || v < 1)
    throw ReviewHttpError{400, "field version: \"" + version + "\" is not a version number (reload the page)"};
  change.expected_version = v;
  change.action = req.get_param_value("action");
  static const std::map<std::string, std::string> status_of = {
      {"approve", kStatusApproved}, {"reject", kStatusRejected}, {"skip", kStatusSkipped},
      {"reopen", kStatusPending},   {"save", ""},                {"regenerate", ""}};
  auto s = status_of.find(change.action);
  if (s == status_of.end())
    throw ReviewHttpError{400, "field action: \"" + change.action + "\" is not one of approve, reject, skip, save, regenerate, reopen"};
  change.status = s->second;
  change.reviewer = req.get_param_value("reviewer");
  if (change.reviewer.size() > 100) throw ReviewHttpError{400, "field reviewer: longer than 100 characters"};
  if (change.reviewer.empty()) change.reviewer = "(unnamed reviewer)";

  std::map<std::string, std::vector<std::string>> allowed = allowed_values(c, p);
  for (const auto& [key, value] : req.params) {
    if (key.rfind("attr:", 0) != 0) continue;
    std::string name = key.substr(5);
    bool known = std::any_of(p.attributes.begin(), p.attributes.end(), [&](const auto& a) { return a.name == name; });
    if (!known) throw ReviewHttpError{400, "field " + key + ": product " + p.id + " has no attribute \"" + name + "\""};
    const auto& ok = allowed[name];
    if (std::find(ok.begin(), ok.end(), value) == ok.end()) {
      std::string list;
      for (size_t i = 0; i < ok.size() && i < 30; ++i) list += (i ? ", " : "") + ok[i];
      throw ReviewHttpError{400, "field " + key + ": \"" + value + "\" is not an allowed value (allowed: " + list + ")"};
    }
    change.attributes[name] = value;
  }
  if (req.has_param("description")) {
    std::string d = req.get_param_value("description");
    d.erase(std::remove(d.begin(), d.end(), '\r'), d.end());  // browsers send CRLF in textareas
    if (d.size() > kMaxDescriptionBytes)
      throw ReviewHttpError{400, "field description: " + std::to_string(d.size()) + " bytes, at most " +
                                     std::to_string(kMaxDescriptionBytes) + " are accepted"};
    change.description = d;
  }
  return change;
}

// "regenerate": the configured writer on the attributes as the form now has them.
void regenerate_description(const ReviewContext& c, const ReviewProduct& p, ReviewChange& change) {
  ProductAttributes attributes;
  for (const auto& a : p.attributes) {
    auto it = change.attributes.find(a.name);
    attributes.push_back({a.name, it != change.attributes.end() ? it->second : a.value});
  }
  try {
    change.description = c.writer->write(attributes);
  } catch (const std::exception& e) {
    throw ReviewHttpError{502, "the " + c.writer->name() + " writer failed, nothing was saved: " + e.what()};
  }
}

void handle_post_product(ReviewContext& c, const Request& req, Response& res) {
  std::string id = req.matches[1];
  QueueFilter filter = parse_filter(req);
  std::optional<ReviewProduct> p = c.store.product(id);
  if (!p) throw ReviewHttpError{404, "no product with id \"" + id + "\""};
  ReviewChange change;
  try {
    change = parse_change(c, *p, req);
    if (change.action == "regenerate") regenerate_description(c, *p, change);
  } catch (const ReviewHttpError& e) {
    ProductView v = product_view(c, *p, filter, req);
    v.message = e.message;
    v.message_is_error = true;
    send_html(res, e.status, render_product(v));
    return;
  }
  ReviewProduct saved;
  try {
    saved = c.store.apply(change);
  } catch (const ConflictError& e) {
    ProductView v = product_view(c, *c.store.product(id), filter, req);
    v.message = e.what();
    v.message_is_error = true;
    send_html(res, 409, render_product(v));
    return;
  }
  res.set_header("Set-Cookie", std::string(kReviewerCookie) + "=" + url_encode(change.reviewer) +
                                   "; Path=/; Max-Age=31536000; SameSite=Strict");
  std::string q = filter_query(filter);
  if (change.status == kStatusPending || change.status.empty()) {
    redirect(res, "/product/" + url_encode(id) + "?" + q);
    return;
  }
  for (const auto& next : c.store.queue_ids(filter))
    if (next != id) {
      redirect(res, "/product/" + url_encode(next) + "?" + q);
      return;
    }
  redirect(res, "/?" + q);
}

void handle_queue(ReviewContext& c, const Request& req, Response& res) {
  QueueView v;
  v.filter = parse_filter(req);
  v.products = c.store.queue(v.filter, kQueueRowsShown);
  v.counts = c.store.counts();
  v.attributes = c.store.attribute_names();
  v.article_types = c.store.article_types();
  size_t total = c.store.queue_ids(v.filter).size();
  if (total > v.products.size())
    v.message = "showing the first " + std::to_string(v.products.size()) + " of " + std::to_string(total);
  send_html(res, 200, render_queue(v));
}

void handle_photo(ReviewContext& c, const Request& req, Response& res) {
  std::optional<ReviewProduct> p = c.store.product(req.matches[1]);
  if (!p) throw ReviewHttpError{404, "no product with id \"" + std::string(req.matches[1]) + "\""};
  if (p->image.empty()) throw ReviewHttpError{404, p->image_error};
  if (!file_exists(p->image)) throw ReviewHttpError{404, "photo " + p->image + " of product " + p->id + " is gone"};
  std::string bytes = read_file(p->image);
  bool png = p->image.size() > 4 && p->image.compare(p->image.size() - 4, 4, ".png") == 0;
  res.set_header("Cache-Control", "private, max-age=3600");
  res.set_content(bytes, png ? "image/png" : "image/jpeg");
}

// Charts from the reviewers' verdicts: the model's value against the one a reviewer let stand.
ChartData review_chart_data(const ReviewContext& c) {
  ChartData data;
  data.loss = read_loss_curve(c.options.train_log);
  std::map<std::string, std::map<std::string, int64_t>> truth_counts;
  std::map<std::string, AttributeScore> scores;
  for (const auto& p : c.store.all_products()) {
    if (p.status != kStatusApproved && p.status != kStatusRejected) continue;
    for (const auto& a : p.attributes) {
      bool asked = std::any_of(c.specs.begin(), c.specs.end(), [&](const auto& s) { return s.name == a.name; });
      if (!asked) continue;
      AttributeScore& s = scores[a.name];
      s.attribute = a.name;
      s.n++;
      s.accuracy += a.value == a.predicted ? 1 : 0;
      truth_counts[a.name][a.value]++;
      data.confusions[a.name][a.value][a.predicted]++;
    }
  }
  for (const auto& spec : c.specs) {
    auto it = scores.find(spec.name);
    if (it == scores.end()) continue;
    AttributeScore s = it->second;
    s.accuracy /= static_cast<double>(s.n);
    for (const auto& [value, n] : truth_counts[spec.name])
      if (static_cast<double>(n) / s.n > s.majority_accuracy) {
        s.majority_accuracy = static_cast<double>(n) / s.n;
        s.majority_value = value;
      }
    data.scores.push_back(s);
  }
  return data;
}

void handle_summary(ReviewContext& c, const Request&, Response& res) {
  SummaryView v;
  v.counts = c.store.counts();
  v.charts = charts_html(review_chart_data(c), "reviewed", "model");
  v.notes = "Accuracy: how often the model's value was kept, over the products approved or rejected so far; "
            "baseline: always answering the value reviewers chose most. ";
  v.notes += c.options.train_log.empty() ? "No --train-log given: no loss curve."
                                         : "Loss: " + c.options.train_log + ".";
  send_html(res, 200, render_summary(v));
}

void handle_export(ReviewContext& c, const Request& req, Response& res) {
  std::string what = req.matches[1];
  if (what != "approved.jsonl" && what != "approved.csv" && what != "corrections.jsonl")
    throw ReviewHttpError{404, "no export named \"" + what + "\" (approved.jsonl, approved.csv, corrections.jsonl)"};
  std::vector<ReviewProduct> products = c.store.all_products();
  res.set_header("Content-Disposition", "attachment; filename=\"" + what + "\"");
  if (what == "approved.jsonl") res.set_content(approved_jsonl(products), "application/x-ndjson; charset=utf-8");
  else if (what == "approved.csv") res.set_content(approved_csv(products), "text/csv; charset=utf-8");
  else res.set_content(pairs_jsonl(correction_pairs(products, c.specs)), "application/x-ndjson; charset=utf-8");
}

// Login: true when the request may go on. Open when no token is configured; else a bearer header
// or a session cookie from POST /login. Pages redirect to the login form, the rest get 401.
bool authorized(ReviewContext& c, const Request& req, Response& res) {
  if (c.options.auth_token.empty() || req.path == "/login" || req.path.rfind("/static/", 0) == 0) return true;
  std::string h = req.get_header_value("Authorization");
  if (h.rfind("Bearer ", 0) == 0 && same_secret(h.substr(7), c.options.auth_token)) return true;
  std::string session = cookie(req, kSessionCookie);
  if (!session.empty()) {
    std::lock_guard<std::mutex> lock(c.sessions_mutex);
    for (const auto& s : c.sessions)
      if (same_secret(session, s)) return true;
  }
  if (req.method == "GET" && req.path.rfind("/export/", 0) != 0) {
    redirect(res, "/login");
  } else {
    res.status = 401;
    res.set_header("WWW-Authenticate", "Bearer");
    res.set_content(h.empty() ? "log in first (POST /login) or send Authorization: Bearer <token>\n" : "wrong bearer token\n",
                    "text/plain; charset=utf-8");
  }
  return false;
}

void handle_login(ReviewContext& c, const Request& req, Response& res) {
  if (c.options.auth_token.empty()) {
    redirect(res, "/");
    return;
  }
  if (!same_secret(req.get_param_value("password"), c.options.auth_token)) {
    send_html(res, 401, render_login("wrong password or token"));
    return;
  }
  std::string session = random_hex(32);
  {
    std::lock_guard<std::mutex> lock(c.sessions_mutex);
    c.sessions.insert(session);
  }
  res.set_header("Set-Cookie", std::string(kSessionCookie) + "=" + session + "; Path=/; HttpOnly; SameSite=Strict");
  redirect(res, "/");
}

// Wraps a handler: ReviewHttpError and Error become an error page with the reason.
template <typename Handler>
httplib::Server::Handler page(ReviewContext& c, Handler handler) {
  return [&c, handler](const Request& req, Response& res) {
    try {
      handler(c, req, res);
    } catch (const ReviewHttpError& e) {
      ReviewCounts counts = c.store.counts();
      send_html(res, e.status, render_message("Cannot do that", e.message, &counts));
    } catch (const std::exception& e) {
      send_html(res, 500, render_message("Internal error", e.what(), nullptr));
    }
  };
}

void install_routes(httplib::Server& http, ReviewContext& c) {
  http.set_pre_routing_handler([&c](const Request& req, Response& res) {
    // No script but our own file, no framing, no sniffing: catalog text stays text.
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
                   "frame-ancestors 'none'; base-uri 'none'");
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Referrer-Policy", "no-referrer");
    return authorized(c, req, res) ? httplib::Server::HandlerResponse::Unhandled
                                   : httplib::Server::HandlerResponse::Handled;
  });
  http.Get("/static/review.js", [](const Request&, Response& res) {
    res.set_content(kReviewScript, "text/javascript; charset=utf-8");
  });
  http.Get("/static/review.css", [](const Request&, Response& res) {
    res.set_content(kReviewStyle, "text/css; charset=utf-8");
  });
  http.Get("/login", [](const Request&, Response& res) { send_html(res, 200, render_login("")); });
  http.Post("/login", page(c, handle_login));
  http.Get("/", page(c, handle_queue));
  http.Get(R"(/product/([^/]+))", page(c, [](ReviewContext& c, const Request& req, Response& res) {
             QueueFilter filter = parse_filter(req);
             std::optional<ReviewProduct> p = c.store.product(req.matches[1]);
             if (!p) throw ReviewHttpError{404, "no product with id \"" + std::string(req.matches[1]) + "\""};
             send_html(res, 200, render_product(product_view(c, *p, filter, req)));
           }));
  http.Post(R"(/product/([^/]+))", page(c, handle_post_product));
  http.Get(R"(/photo/([^/]+))", page(c, handle_photo));
  http.Get("/summary", page(c, handle_summary));
  http.Get(R"(/export/([^/]+))", page(c, handle_export));
  // Method, path and status only: bodies (passwords, cookies) are never logged.
  http.set_logger([&c](const Request& req, const Response& res) {
    c.log("tailor review: " + req.method + " " + req.path + " " + std::to_string(res.status));
  });
}

// The model's attributes and values, or the default attributes without a model.
TaskInfo review_task(const std::string& model_dir) {
  if (!model_dir.empty()) return load_task_info(model_dir);
  TaskInfo task;
  task.attributes = default_attributes();
  return task;
}

}  // namespace

ReviewServer::ReviewServer(ReviewStore& store, const ReviewOptions& options)
    : context_(new ReviewContext{store, options, nullptr, {}, {}, {}, {}}) {
  context_->writer = make_writer(options.writer);  // a bad writer configuration fails now, not on a click
  TaskInfo task = review_task(options.model_dir);
  context_->specs = task.attributes;
  context_->task_values = task.values;
}

ReviewServer::~ReviewServer() { stop(); }

int ReviewServer::start() {
  std::lock_guard<std::mutex> lock(stop_mutex_);
  if (started_) throw Error("the review server is already started");
  http_ = std::make_unique<httplib::Server>();
  http_->new_task_queue = [] { return new httplib::ThreadPool(16); };
  http_->set_payload_max_length(1 << 20);
  http_->set_socket_options([](int sock) {  // SO_REUSEADDR only: no second server on the same port
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  install_routes(*http_, *context_);
  const ReviewOptions& o = context_->options;
  int port = o.port;
  if (port == 0) {
    port = http_->bind_to_any_port(o.host);
    if (port <= 0) throw Error("cannot bind " + o.host + " to a free port");
  } else if (!http_->bind_to_port(o.host, port)) {
    throw Error("cannot listen on " + o.host + ":" + std::to_string(port) + " (address in use or not available)");
  }
  listener_ = std::thread([this] { http_->listen_after_bind(); });
  for (int i = 0; i < 5000 && !http_->is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (!http_->is_running()) {
    listener_.join();
    throw Error("the HTTP listener on " + o.host + ":" + std::to_string(port) + " did not start");
  }
  started_ = true;
  return port;
}

void ReviewServer::stop() {
  std::lock_guard<std::mutex> lock(stop_mutex_);
  if (!started_) return;
  http_->stop();
  if (listener_.joinable()) listener_.join();
  started_ = false;
}

void run_review(const ReviewOptions& options) {
  if (options.describe_path.empty()) throw Error("review needs --describe (the JSONL `tailor describe` wrote)");
  auto log = [&](const std::string& s) {
    if (options.log) options.log(s);
    else std::fprintf(stderr, "%s\n", s.c_str());
  };
  std::string db_path = options.db_path.empty() ? options.describe_path + ".review.sqlite" : options.db_path;
  ReviewStore store(db_path);
  ImportSummary imported = store.import_describe(options.describe_path, options.photos);
  log("tailor review: " + std::to_string(imported.lines) + " products in " + options.describe_path + ", " +
      std::to_string(imported.added) + " new; database " + db_path);
  for (size_t i = 0; i < imported.missing_photos.size() && i < 10; ++i) log("tailor review: warning: " + imported.missing_photos[i]);
  if (imported.missing_photos.size() > 10)
    log("tailor review: warning: " + std::to_string(imported.missing_photos.size()) + " products have no photo");

  if (!options.export_dir.empty()) {
    TaskInfo task = review_task(options.model_dir);
    ExportSummary s = write_review_exports(store, options.export_dir, task.attributes);
    log("tailor review: exported " + std::to_string(s.approved) + " approved products and " +
        std::to_string(s.corrections) + " corrected attributes to " + options.export_dir);
    return;
  }
  // SIGTERM/SIGINT are taken by sigwaitinfo below; blocked before any thread starts.
  sigset_t signals = block_stop_signals();
  ReviewServer server(store, options);
  int port = server.start();
  log("tailor review: listening on http://" + options.host + ":" + std::to_string(port) +
      (options.auth_token.empty() ? "" : " (login required)"));
  int s = -1;
  while (s != SIGTERM && s != SIGINT) s = sigwaitinfo(&signals, nullptr);  // -1: EINTR, wait on
  log(std::string("tailor review: ") + (s == SIGTERM ? "SIGTERM" : "SIGINT") + ", stopping");
  server.stop();
}

}  // namespace tailor
