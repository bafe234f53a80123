#include "serve/server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <cerrno>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

#include "core/attributes.h"
#include "catalog/images.h"
#include "serve/base64.h"
#include "util/error.h"
#include "util/text.h"

namespace tailor {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

// A request that cannot be served, with the HTTP status that says why; the message goes to the
// client as {"error": message}.
struct HttpError {
  int status;
  std::string message;
};

// httplib listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, fixed when Debian built the
// library): a burst of new clients overflows it and connections get dropped. This subclass reaches
// the listening socket so start() can raise the backlog (listen(2) again on a listening socket
// only updates it).
struct HttpServer : httplib::Server {
  int listening_socket() const { return static_cast<int>(svr_sock_); }
};

struct Server::Reply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

// Per HTTP worker thread: the request being served (httplib serves one request at a time on a
// thread), so the logger can report latency and what went wrong.
struct RequestContext {
  bool active = false;
  Clock::time_point start;
  std::string error;
  size_t questions = 0;
};
static thread_local RequestContext t_request;

static std::string dump(const ordered_json& j) {
  // Model output or client strings may hold invalid UTF-8: replace it rather than throw.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

static std::string error_body(const std::string& message) {
  ordered_json j;
  j["error"] = message;
  return dump(j);
}

static std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// "image/jpeg; charset=..." -> "image/jpeg"
static std::string media_type(const std::string& content_type) {
  return trim(lower(content_type.substr(0, content_type.find(';'))));
}

enum class BodyKind { Json, Image };

static BodyKind body_kind(const std::string& content_type, const std::string& body) {
  std::string t = media_type(content_type);
  if (t == "application/json") return BodyKind::Json;
  if (t == "image/jpeg" || t == "image/png" || t == "application/x-image" || t == "application/octet-stream")
    return BodyKind::Image;
  if (t.empty()) {
    size_t i = body.find_first_not_of(" \t\r\n");
    return (i != std::string::npos && body[i] == '{') ? BodyKind::Json : BodyKind::Image;
  }
  throw HttpError{415, "unsupported Content-Type \"" + content_type +
                           "\": send application/json, image/jpeg or image/png"};
}

static json parse_json_object(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    throw HttpError{400, std::string("invalid JSON: ") + e.what()};
  }
  if (!j.is_object()) throw HttpError{400, "the JSON body must be an object, got " + std::string(j.type_name())};
  return j;
}

static void reject_unknown_fields(const json& j, const std::vector<std::string>& known, const std::string& where) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) != known.end()) continue;
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    throw HttpError{400, "unknown field \"" + it.key() + "\" in " + where + " (known: " + list + ")"};
  }
}

static int int_parameter(const json& p, const char* name, int lo, int hi) {
  const json& v = p[name];
  if (!v.is_number_integer())
    throw HttpError{400, std::string("parameters.") + name + " must be an integer, got " + v.dump()};
  int64_t x = v.get<int64_t>();
  if (x < lo || x > hi)
    throw HttpError{400, std::string("parameters.") + name + " must be in [" + std::to_string(lo) + ", " +
                             std::to_string(hi) + "], got " + std::to_string(x)};
  return static_cast<int>(x);
}

static float float_parameter(const json& p, const char* name, double lo, double hi, bool lo_open) {
  const json& v = p[name];
  if (!v.is_number()) throw HttpError{400, std::string("parameters.") + name + " must be a number, got " + v.dump()};
  double x = v.get<double>();
  if (!(lo_open ? x > lo : x >= lo) || !(x <= hi))
    throw HttpError{400, std::string("parameters.") + name + " must be in " + (lo_open ? "(" : "[") +
                             std::to_string(lo) + ", " + std::to_string(hi) + "], got " + v.dump()};
  return static_cast<float>(x);
}

static GenerationOptions parse_parameters(const json& body, const ServeOptions& limits) {
  GenerationOptions o;
  if (!body.contains("parameters") || body["parameters"].is_null()) return o;
  const json& p = body["parameters"];
  if (!p.is_object()) throw HttpError{400, "parameters must be an object, got " + std::string(p.type_name())};
  reject_unknown_fields(p,
                        {"max_new_tokens", "min_new_tokens", "num_beams", "length_penalty", "do_sample",
                         "temperature", "top_p", "seed", "answer"},
                        "parameters");
  if (p.contains("max_new_tokens")) o.max_new_tokens = int_parameter(p, "max_new_tokens", 1, limits.max_new_tokens_limit);
  if (p.contains("min_new_tokens")) o.min_new_tokens = int_parameter(p, "min_new_tokens", 0, o.max_new_tokens);
  if (p.contains("num_beams")) o.num_beams = int_parameter(p, "num_beams", 1, limits.max_num_beams);
  if (p.contains("length_penalty")) o.length_penalty = float_parameter(p, "length_penalty", -10, 10, false);
  if (p.contains("do_sample")) {
    if (!p["do_sample"].is_boolean())
      throw HttpError{400, "parameters.do_sample must be true or false, got " + p["do_sample"].dump()};
    o.do_sample = p["do_sample"].get<bool>();
  }
  if (p.contains("temperature")) o.temperature = float_parameter(p, "temperature", 0, 100, true);
  if (p.contains("top_p")) o.top_p = float_parameter(p, "top_p", 0, 1, true);
  if (p.contains("seed")) {
    if (!p["seed"].is_number_unsigned())
      throw HttpError{400, "parameters.seed must be a non-negative integer, got " + p["seed"].dump()};
    o.seed = p["seed"].get<uint64_t>();
  }
  return o;
}

// parameters.answer: "choice" (the likeliest known value, with its confidence) or "free" (generated text).
static AnswerMode parse_answer_mode_parameter(const json& body, AnswerMode default_mode) {
  if (!body.contains("parameters") || !body["parameters"].is_object() || !body["parameters"].contains("answer"))
    return default_mode;
  const json& a = body["parameters"]["answer"];
  if (a.is_string() && (a == "choice" || a == "free")) return parse_answer_mode(a.get<std::string>());
  throw HttpError{400, "parameters.answer must be \"choice\" or \"free\", got " + a.dump()};
}

// Width and height from a PNG IHDR or a JPEG SOFn header, without decoding; {0, 0} when not found
// (the decoder then says what is wrong). Lets a small compressed "bomb" be refused before it is
// inflated to gigabytes.
static std::pair<uint32_t, uint32_t> peek_image_size(const uint8_t* d, size_t n) {
  auto be16 = [&](size_t i) { return uint32_t(d[i]) << 8 | d[i + 1]; };
  auto be32 = [&](size_t i) { return be16(i) << 16 | be16(i + 2); };
  if (n >= 24 && d[0] == 0x89 && d[1] == 'P' && d[2] == 'N' && d[3] == 'G' && std::memcmp(d + 12, "IHDR", 4) == 0)
    return {be32(16), be32(20)};
  if (n < 4 || d[0] != 0xFF || d[1] != 0xD8) return {0, 0};
  size_t i = 2;
  while (i + 4 <= n) {
    if (d[i] != 0xFF) return {0, 0};
    uint8_t marker = d[i + 1];
    if (marker == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // no length field
      i += 2;
      continue;
    }
    if (marker == 0xDA || marker == 0xD9) return {0, 0};  // scan data or end before any frame header
    uint32_t len = be16(i + 2);
    bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (sof && i + 9 <= n) return {be16(i + 7), be16(i + 5)};
    i += 2 + len;
  }
  return {0, 0};
}

static std::shared_ptr<const ImageRGB> decode_image_bytes(const uint8_t* data, size_t size, const std::string& what,
                                                          uint64_t max_pixels) {
  if (size == 0) throw HttpError{400, what + " is empty"};
  auto [w, h] = peek_image_size(data, size);
  if (uint64_t(w) * h > max_pixels)
    throw HttpError{400, what + " is " + std::to_string(w) + "x" + std::to_string(h) + " pixels, over the limit of " +
                             std::to_string(max_pixels) + " pixels"};
  auto img = std::make_shared<ImageRGB>();
  try {
    *img = decode_image(data, size);
  } catch (const std::bad_alloc&) {
    throw HttpError{400, what + ": too large to decode"};
  } catch (const std::exception& e) {
    throw HttpError{400, what + ": " + e.what()};
  }
  if (img->width <= 0 || img->height <= 0 ||
      img->pixels.size() != static_cast<size_t>(img->width) * img->height * 3)
    throw HttpError{400, what + " decoded to an empty image (" + std::to_string(img->width) + "x" +
                             std::to_string(img->height) + ")"};
  return img;
}

// The "image" field: base64, optionally as a data URL ("data:image/png;base64,....").
static std::shared_ptr<const ImageRGB> image_from_json(const json& body, uint64_t max_pixels) {
  if (!body.contains("image")) throw HttpError{400, "missing field \"image\" (base64 JPEG or PNG)"};
  const json& v = body["image"];
  if (!v.is_string()) throw HttpError{400, "field \"image\" must be a base64 string, got " + std::string(v.type_name())};
  const std::string& text = v.get_ref<const std::string&>();
  std::string_view b64 = text;
  if (b64.rfind("data:", 0) == 0) {
    size_t comma = b64.find(',');
    if (comma == std::string_view::npos || b64.substr(0, comma).find(";base64") == std::string_view::npos)
      throw HttpError{400, "field \"image\": a data URL must be \"data:<type>;base64,<data>\""};
    b64 = b64.substr(comma + 1);
  }
  std::vector<uint8_t> bytes;
  try {
    bytes = decode_base64(b64);
  } catch (const Error& e) {
    throw HttpError{400, std::string("field \"image\": ") + e.what()};
  }
  return decode_image_bytes(bytes.data(), bytes.size(), "field \"image\"", max_pixels);
}

// Strips "Question: ... Answer:" to compare the question itself with the model's templates.
static std::string bare_question(const std::string& prompt) {
  std::string q = trim(prompt);
  if (q.rfind("Question:", 0) == 0) {
    q = q.substr(9);
    size_t a = q.rfind("Answer:");
    if (a != std::string::npos) q = q.substr(0, a);
  }
  return lower(trim(q));
}

static std::string attribute_of_prompt(const TaskInfo& task, const std::string& prompt) {
  std::string q = bare_question(prompt);
  for (const AttributeSpec& a : task.attributes)
    if (lower(trim(a.question)) == q) return a.name;
  return "";
}

struct Question {
  std::string attribute;  // empty when the prompt matches none of the model's questions
  AnswerRequest request;  // prompt wrapped, candidates for choice answers; the image is set by ask()
};

static std::vector<Question> all_questions(const TaskInfo& task, AnswerMode mode) {
  std::vector<Question> qs;
  for (const AttributeSpec& a : task.attributes) qs.push_back({a.name, attribute_request(task, a, nullptr, mode)});
  return qs;
}

// A client's own prompt: a trained attribute's question is answered like that attribute.
static Question prompt_question(const TaskInfo& task, const std::string& prompt, AnswerMode mode) {
  std::string attribute = attribute_of_prompt(task, prompt);
  for (const AttributeSpec& a : task.attributes)
    if (a.name == attribute) return {attribute, attribute_request(task, a, nullptr, mode)};
  AnswerRequest free_text;
  free_text.prompt = wrap_prompt(prompt);
  return {"", free_text};
}

// Sends the questions about one image through the queue and waits for the answers.
static std::vector<Answer> ask(Arrival& arrival, const std::shared_ptr<const ImageRGB>& image,
                                    const std::vector<Question>& questions, const GenerationOptions& options,
                                    const ServeOptions& server_options, RequestQueue& queue) {
  AnswerJob job;
  for (const Question& q : questions) {
    job.questions.push_back(q.request);
    job.questions.back().image = image;
  }
  job.options = options;
  job.deadline = Clock::now() + std::chrono::milliseconds(server_options.timeout_ms);
  const Clock::time_point deadline = job.deadline;
  std::future<std::vector<Answer>> answers;
  try {
    answers = arrival.push(std::move(job));
  } catch (const QueueFull& e) {
    throw HttpError{503, std::string(e.what()) + "; retry later"};
  } catch (const QueueClosed& e) {
    throw HttpError{503, e.what()};
  }
  t_request.questions += questions.size();
  if (answers.wait_until(deadline) != std::future_status::ready)
    throw HttpError{504, "timed out after " + std::to_string(server_options.timeout_ms) +
                             " ms waiting for the model (queue depth " + std::to_string(queue.depth()) + ")"};
  try {
    return answers.get();
  } catch (const JobExpired&) {
    throw HttpError{504, "timed out after " + std::to_string(server_options.timeout_ms) + " ms in the queue"};
  } catch (const std::exception& e) {
    throw HttpError{500, std::string("the model failed on this batch: ") + e.what()};
  }
}

// attribute -> value, the raw texts and the choice answers' confidences, in question order.
struct Answers {
  ordered_json values = ordered_json::object();
  ordered_json raw = ordered_json::object();
  ordered_json confidence = ordered_json::object();
};

static Answers parse_answers(const std::vector<Question>& questions, const std::vector<Answer>& answers) {
  Answers out;
  for (size_t i = 0; i < questions.size(); ++i) {
    auto [attribute, value] = parse_answer(answers[i].text, questions[i].attribute);
    if (attribute.empty()) attribute = "answer";
    out.values[attribute] = value;
    out.raw[attribute] = answers[i].text;
    if (answers[i].has_confidence()) out.confidence[attribute] = answers[i].confidence;
  }
  return out;
}

Server::Reply Server::handle_invocations(const std::string& content_type, const std::string& body) {
  if (!batcher_.ready()) throw HttpError{503, batcher_.load_failed() ? "the model failed to load" : "the model is loading"};
  Arrival arrival(queue_);
  const TaskInfo& task = batcher_.task();
  std::shared_ptr<const ImageRGB> image;
  std::vector<Question> questions;
  GenerationOptions options;
  AnswerMode mode = options_.answer_mode;
  if (body_kind(content_type, body) == BodyKind::Image) {
    image = decode_image_bytes(reinterpret_cast<const uint8_t*>(body.data()), body.size(), "the image body", options_.max_image_pixels);
    questions = all_questions(task, mode);
  } else {
    json j = parse_json_object(body);
    reject_unknown_fields(j, {"image", "prompt", "parameters"}, "the request");
    options = parse_parameters(j, options_);
    mode = parse_answer_mode_parameter(j, mode);
    if (j.contains("prompt") && !j["prompt"].is_null()) {
      if (!j["prompt"].is_string())
        throw HttpError{400, "field \"prompt\" must be a string, got " + std::string(j["prompt"].type_name())};
      std::string prompt = j["prompt"].get<std::string>();
      if (trim(prompt).empty()) throw HttpError{400, "field \"prompt\" is empty (leave it out to ask every attribute)"};
      if (prompt.size() > options_.max_prompt_bytes)
        throw HttpError{400, "field \"prompt\" is " + std::to_string(prompt.size()) + " bytes, over the limit of " +
                                 std::to_string(options_.max_prompt_bytes)};
      questions.push_back(prompt_question(task, prompt, mode));
    } else {
      questions = all_questions(task, mode);
    }
    image = image_from_json(j, options_.max_image_pixels);
  }
  Answers a = parse_answers(questions, ask(arrival, image, questions, options, options_, queue_));
  // The flat attribute -> value object the original client reads, then what tailor adds beside it.
  ordered_json out = a.values;
  out["generated_text"] = a.raw;
  if (!a.confidence.empty()) out["confidence"] = a.confidence;
  Reply r;
  r.body = dump(out);
  return r;
}

Server::Reply Server::handle_describe(const std::string& content_type, const std::string& body) {
  if (!batcher_.ready()) throw HttpError{503, batcher_.load_failed() ? "the model failed to load" : "the model is loading"};
  Arrival arrival(queue_);
  const TaskInfo& task = batcher_.task();
  std::shared_ptr<const ImageRGB> image;
  GenerationOptions options;
  AnswerMode mode = options_.answer_mode;
  std::map<std::string, std::string> known;
  if (body_kind(content_type, body) == BodyKind::Image) {
    image = decode_image_bytes(reinterpret_cast<const uint8_t*>(body.data()), body.size(), "the image body", options_.max_image_pixels);
  } else {
    json j = parse_json_object(body);
    reject_unknown_fields(j, {"image", "attributes", "parameters"}, "the request");
    options = parse_parameters(j, options_);
    mode = parse_answer_mode_parameter(j, mode);
    if (j.contains("attributes") && !j["attributes"].is_null()) {
      const json& k = j["attributes"];
      if (!k.is_object()) throw HttpError{400, "field \"attributes\" must be an object {attribute: value}"};
      for (auto it = k.begin(); it != k.end(); ++it) {
        if (!it.value().is_string())
          throw HttpError{400, "attributes[\"" + it.key() + "\"] must be a string, got " + it.value().dump()};
        known[it.key()] = it.value().get<std::string>();
      }
    }
    image = image_from_json(j, options_.max_image_pixels);
  }
  // Ask the model only what the caller does not already know.
  std::vector<Question> questions;
  for (const Question& q : all_questions(task, mode))
    if (!known.count(q.attribute)) questions.push_back(q);
  Answers a;
  if (!questions.empty()) a = parse_answers(questions, ask(arrival, image, questions, options, options_, queue_));

  std::map<std::string, std::string> merged = known;
  ordered_json attributes = ordered_json::object();
  for (const AttributeSpec& s : task.attributes) {  // model order first, then the caller's extras
    if (known.count(s.name)) attributes[s.name] = known[s.name];
    else if (a.values.contains(s.name)) attributes[s.name] = a.values[s.name];
  }
  for (const auto& [k, v] : known) attributes[k] = v;
  for (auto it = a.values.begin(); it != a.values.end(); ++it) {
    if (!attributes.contains(it.key())) attributes[it.key()] = it.value();
    merged.emplace(it.key(), it.value().get<std::string>());  // what the caller knows wins
  }
  ordered_json out;
  out["attributes"] = attributes;
  out["predicted"] = a.values;
  out["generated_text"] = a.raw;
  if (!a.confidence.empty()) out["confidence"] = a.confidence;
  if (options_.describer) {
    try {
      out["description"] = options_.describer(merged);
    } catch (const std::exception& e) {
      throw HttpError{502, std::string("the description writer failed: ") + e.what()};
    }
  }
  Reply r;
  r.body = dump(out);
  return r;
}

Server::Server(ServeOptions options, AnswererFactory factory)
    : options_(std::move(options)),
      factory_(std::move(factory)),
      queue_(options_.queue_capacity),
      batcher_(queue_, metrics_,
               BatcherOptions{options_.max_batch, std::chrono::microseconds(int64_t(options_.max_wait_ms) * 1000)}) {
  if (!options_.log_line) options_.log_line = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
}

Server::~Server() { stop(); }

// Constant-time comparison, so response timing does not reveal the token byte by byte.
static bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.empty() ? 1 : b.size())]);
  return diff == 0 && !b.empty();
}

static std::string utc_now_iso() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

static std::string status_message(int status) {
  switch (status) {
    case 400: return "bad request";
    case 401: return "unauthorized";
    case 404: return "no such route";
    case 405: return "method not allowed";
    case 413: return "request body too large";
    case 414: return "URI too long";
    default: return "HTTP " + std::to_string(status);
  }
}

void Server::install_routes() {
  using httplib::Request;
  using httplib::Response;
  httplib::Server& http = *http_;

  auto send = [](Response& res, const Reply& r) {
    res.status = r.status;
    res.set_content(r.body, r.content_type.c_str());
  };
  auto fail = [](Response& res, int status, const std::string& message) {
    t_request.error = message;
    res.status = status;
    if (status == 503) res.set_header("Retry-After", "1");  // loading or queue full: come back soon
    res.set_content(error_body(message), "application/json");
  };
  auto authorized = [this, fail](const Request& req, Response& res) {
    if (options_.auth_token.empty()) return true;
    std::string h = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (h.size() > prefix.size() && lower(h.substr(0, prefix.size())) == "bearer " &&
        same_secret(h.substr(prefix.size()), options_.auth_token))
      return true;
    res.set_header("WWW-Authenticate", "Bearer");
    fail(res, 401, h.empty() ? "missing Authorization: Bearer token" : "wrong bearer token");
    return false;
  };
  // Every POST route: auth, then the handler; HttpError and anything else become JSON errors.
  auto post_route = [this, send, fail, authorized](Reply (Server::*handler)(const std::string&, const std::string&)) {
    return [this, send, fail, authorized, handler](const Request& req, Response& res) {
      if (!authorized(req, res)) return;
      try {
        send(res, (this->*handler)(req.get_header_value("Content-Type"), req.body));
      } catch (const HttpError& e) {
        fail(res, e.status, e.message);
      } catch (const std::bad_alloc&) {
        fail(res, 503, "out of memory serving this request");
      } catch (const std::exception& e) {
        fail(res, 500, std::string("internal error: ") + e.what());
      }
    };
  };

  http.set_pre_routing_handler([this](const Request&, Response&) {
    if (t_request.active) metrics_.request_finished();  // the last one on this thread never reached the end
    t_request = RequestContext{};
    t_request.active = true;
    t_request.start = Clock::now();
    metrics_.request_started();
    return httplib::Server::HandlerResponse::Unhandled;
  });

  http.Get("/ping", [this](const Request&, Response& res) {
    ordered_json j;
    if (batcher_.ready()) {
      j["status"] = "ready";
      j["model"] = batcher_.model_name();
      res.status = 200;
    } else if (batcher_.load_failed()) {
      j["status"] = "failed";
      j["error"] = batcher_.load_error();
      res.status = 503;
    } else {
      j["status"] = "loading";
      res.status = 503;
    }
    res.set_content(dump(j), "application/json");
  });
  http.Post("/invocations", post_route(&Server::handle_invocations));
  http.Post("/describe", post_route(&Server::handle_describe));
  http.Get("/metrics", [this, authorized](const Request& req, Response& res) {
    if (!authorized(req, res)) return;
    res.set_content(metrics_.render(queue_.depth(), queue_.capacity(), batcher_.ready()),
                    "text/plain; version=0.0.4");
  });

  // Statuses httplib sets itself (404, 413, ...) get a JSON body too.
  http.set_error_handler(httplib::Server::HandlerWithResponse([](const Request& req, Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string message = status_message(res.status);
    if (res.status == 404) message = "no route " + req.method + " " + req.path;
    t_request.error = message;
    res.set_content(error_body(message), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler([](const Request&, Response& res, std::exception_ptr ep) {
    std::string message = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      message += std::string(": ") + e.what();
    } catch (...) {
    }
    t_request.error = message;
    res.status = 500;
    res.set_content(error_body(message), "application/json");
  });

  // One JSON line per request, and the request metrics, just before the response is written (so a
  // client that has its answer also finds it counted). Never logs headers (the bearer token).
  http.set_post_routing_handler([this](const Request& req, Response& res) {
    double seconds = t_request.active ? std::chrono::duration<double>(Clock::now() - t_request.start).count() : 0.0;
    if (t_request.active) metrics_.request_finished();
    metrics_.count_request(req.path, res.status, seconds);
    ordered_json j;
    j["time"] = utc_now_iso();
    j["method"] = req.method;
    j["path"] = req.path;
    j["status"] = res.status;
    j["ms"] = std::round(seconds * 1e5) / 100.0;
    j["bytes_in"] = req.body.size();
    j["bytes_out"] = res.body.size();
    j["remote"] = req.remote_addr;
    if (t_request.questions) j["questions"] = t_request.questions;
    if (!t_request.error.empty()) j["error"] = t_request.error;
    options_.log_line(dump(j));
    t_request = RequestContext{};
  });
}

int Server::start() {
  std::lock_guard<std::mutex> lock(stop_mutex_);
  if (started_) throw Error("the server is already started");
  http_ = std::make_unique<HttpServer>();
  int threads = options_.http_threads;
  if (threads <= 0) threads = static_cast<int>(std::min<size_t>(1024, options_.queue_capacity + options_.max_batch + 8));
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http_->set_payload_max_length(options_.max_payload_bytes);
  // httplib's default also sets SO_REUSEPORT, which lets a second server bind the same port and
  // silently take half the traffic; keep only SO_REUSEADDR (quick restarts).
  http_->set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  http_->set_tcp_nodelay(true);
  http_->set_keep_alive_timeout(5);
  http_->set_keep_alive_max_count(1000);  // httplib's default (5) reconnects busy clients all the time
  http_->set_read_timeout(30);
  http_->set_write_timeout(30);
  install_routes();

  if (options_.port == 0) {
    port_ = http_->bind_to_any_port(options_.host);
    if (port_ <= 0) throw Error("cannot bind " + options_.host + " to a free port");
  } else {
    if (!http_->bind_to_port(options_.host, options_.port))
      throw Error("cannot listen on " + options_.host + ":" + std::to_string(options_.port) +
                  " (address in use or not available)");
    port_ = options_.port;
  }
  if (::listen(static_cast<HttpServer&>(*http_).listening_socket(), SOMAXCONN) != 0)
    throw Error(std::string("cannot set the listen backlog: ") + std::strerror(errno));
  listener_ = std::thread([this] { http_->listen_after_bind(); });
  // stop() only works once httplib is running; don't hand back a server that cannot be stopped.
  for (int i = 0; i < 5000 && !http_->is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (!http_->is_running()) {
    listener_.join();  // listen_after_bind gave up at once
    throw Error("the HTTP listener on " + options_.host + ":" + std::to_string(port_) + " did not start");
  }
  started_ = true;
  // The model loads now, while /ping already answers 503.
  batcher_.start(factory_);
  return port_;
}

void Server::stop() {
  std::lock_guard<std::mutex> lock(stop_mutex_);
  if (!started_ || stopped_) return;
  stopped_ = true;
  // 1) No new connections; httplib joins its workers, i.e. waits for requests in flight, which
  //    the batcher still answers.  2) Then the queue is empty: close it and let the batcher end.
  http_->stop();
  if (listener_.joinable()) listener_.join();
  queue_.close();
  batcher_.join();
}

}  // namespace tailor
