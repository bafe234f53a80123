#include "serve/server.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <future>
#include <nlohmann/json.hpp>

#include "core/attributes.h"
#include "catalog/images.h"
#include "serve/base64.h"
#include "serve/http.h"
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

struct Server::Reply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

// Per thread: what the request being served did, for its log line. A request's handler and its
// log line run on one thread (a worker, or the loop thread for the layer's own refusals and the
// quick routes), and the log line resets it.
struct RequestContext {
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

// "image/jpeg; charset=..." -> "image/jpeg"
static std::string media_type(const std::string& content_type) {
  return trim(ascii_lower(content_type.substr(0, content_type.find(';'))));
}

enum class BodyKind { Json, Image, JsonLines };

static BodyKind body_kind(const std::string& content_type, const std::string& body) {
  std::string t = media_type(content_type);
  if (t == "application/json") return BodyKind::Json;
  if (t == "application/jsonlines" || t == "application/x-jsonlines" || t == "application/jsonl") return BodyKind::JsonLines;
  if (t == "image/jpeg" || t == "image/png" || t == "application/x-image" || t == "application/octet-stream")
    return BodyKind::Image;
  if (t.empty()) {
    size_t i = body.find_first_not_of(" \t\r\n");
    return (i != std::string::npos && body[i] == '{') ? BodyKind::Json : BodyKind::Image;
  }
  throw HttpError{415, "unsupported Content-Type \"" + content_type +
                           "\": send application/json, application/jsonlines, image/jpeg or image/png"};
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

// Decoded pixels held by the requests being served, against ServeOptions::max_pixels_in_flight, so
// memory is bounded by what is admitted, not by what clients send. Released when the request ends.
struct PixelHold {
  std::atomic<uint64_t>* used = nullptr;
  uint64_t pixels = 0;
  PixelHold() = default;
  PixelHold(const PixelHold&) = delete;
  PixelHold& operator=(const PixelHold&) = delete;
  ~PixelHold() {
    if (used) used->fetch_sub(pixels);
  }
};

struct ImageLimits {
  uint64_t max_pixels;     // one image
  uint64_t max_in_flight;  // all requests together
  std::atomic<uint64_t>* in_flight;
  PixelHold* hold;         // this request's share
};

// Takes `pixels` of the in-flight budget for this request (a lone image always fits, so a budget
// below one image's limit cannot lock every request out).
static void hold_pixels(const ImageLimits& limits, uint64_t pixels, const std::string& what) {
  uint64_t before = limits.in_flight->fetch_add(pixels);
  if (before != 0 && before + pixels > limits.max_in_flight) {
    limits.in_flight->fetch_sub(pixels);
    throw HttpError{503, "busy: images being served hold " + std::to_string(before) + " pixels and " + what + " has " +
                             std::to_string(pixels) + ", over the limit of " + std::to_string(limits.max_in_flight) +
                             " pixels in flight; retry later"};
  }
  limits.hold->used = limits.in_flight;
  limits.hold->pixels += pixels;
}

static std::string pixel_limit_message(const std::string& what, uint64_t w, uint64_t h, uint64_t max_pixels) {
  return what + " is " + std::to_string(w) + "x" + std::to_string(h) + " pixels, over the limit of " +
         std::to_string(max_pixels) + " pixels";
}

static std::shared_ptr<const ImageRGB> decode_image_bytes(const uint8_t* data, size_t size, const std::string& what,
                                                          const ImageLimits& limits) {
  if (size == 0) throw HttpError{400, what + " is empty"};
  auto [w, h] = peek_image_size(data, size);
  if (uint64_t(w) * h > limits.max_pixels) throw HttpError{400, pixel_limit_message(what, w, h, limits.max_pixels)};
  if (uint64_t(w) * h > 0) hold_pixels(limits, uint64_t(w) * h, what);
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
  uint64_t decoded = uint64_t(img->width) * img->height;
  if (decoded != uint64_t(w) * h) {  // the header peek did not find the size (or found another one)
    if (decoded > limits.max_pixels)
      throw HttpError{400, pixel_limit_message(what, img->width, img->height, limits.max_pixels)};
    hold_pixels(limits, decoded, what);
  }
  return img;
}

// The "image" field: base64, optionally as a data URL ("data:image/png;base64,....").
static std::shared_ptr<const ImageRGB> image_from_json(const json& body, const ImageLimits& limits) {
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
  return decode_image_bytes(bytes.data(), bytes.size(), "field \"image\"", limits);
}

// Strips "Question: ... Answer:" to compare the question itself with the model's templates.
static std::string bare_question(const std::string& prompt) {
  std::string q = trim(prompt);
  if (q.rfind("Question:", 0) == 0) {
    q = q.substr(9);
    size_t a = q.rfind("Answer:");
    if (a != std::string::npos) q = q.substr(0, a);
  }
  return ascii_lower(trim(q));
}

static std::string attribute_of_prompt(const TaskInfo& task, const std::string& prompt) {
  std::string q = bare_question(prompt);
  for (const AttributeSpec& a : task.attributes)
    if (ascii_lower(trim(a.question)) == q) return a.name;
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
  PixelHold hold;
  const ImageLimits limits{options_.max_image_pixels, options_.max_pixels_in_flight, &pixels_in_flight_, &hold};
  const TaskInfo& task = batcher_.task();
  std::shared_ptr<const ImageRGB> image;
  std::vector<Question> questions;
  GenerationOptions options;
  AnswerMode mode = options_.answer_mode;
  if (body_kind(content_type, body) == BodyKind::Image) {
    image = decode_image_bytes(reinterpret_cast<const uint8_t*>(body.data()), body.size(), "the image body", limits);
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
    image = image_from_json(j, limits);
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

Server::Reply Server::handle_records(const std::string& body,
                                     Reply (Server::*one)(const std::string&, const std::string&)) {
  if (!batcher_.ready()) throw HttpError{503, batcher_.load_failed() ? "the model failed to load" : "the model is loading"};
  std::vector<std::string> records = text_lines(body);
  std::vector<std::string> out(records.size());
  // Records go to the model together, a batch's worth at a time, so the batcher can batch them.
  const size_t wave = std::max<size_t>(1, options_.max_batch);
  for (size_t start = 0; start < records.size(); start += wave) {
    std::vector<std::future<void>> running;
    for (size_t i = start; i < std::min(records.size(), start + wave); ++i)
      running.push_back(std::async(std::launch::async, [&, i] {
        ordered_json err;
        try {
          if (trim(records[i]).empty()) throw HttpError{400, "record " + std::to_string(i + 1) + " is an empty line"};
          out[i] = (this->*one)("application/json", records[i]).body;
          return;
        } catch (const HttpError& e) {
          err["error"] = "record " + std::to_string(i + 1) + ": " + e.message;
          err["status"] = e.status;
        } catch (const std::exception& e) {
          err["error"] = "record " + std::to_string(i + 1) + ": internal error: " + e.what();
          err["status"] = 500;
        }
        out[i] = dump(err);
      }));
    for (auto& f : running) f.get();
  }
  Reply r;
  r.content_type = "application/jsonlines";
  for (const std::string& line : out) r.body += line + "\n";
  return r;
}

Server::Reply Server::handle_describe(const std::string& content_type, const std::string& body) {
  if (!batcher_.ready()) throw HttpError{503, batcher_.load_failed() ? "the model failed to load" : "the model is loading"};
  Arrival arrival(queue_);
  PixelHold hold;
  const ImageLimits limits{options_.max_image_pixels, options_.max_pixels_in_flight, &pixels_in_flight_, &hold};
  const TaskInfo& task = batcher_.task();
  std::shared_ptr<const ImageRGB> image;
  GenerationOptions options;
  AnswerMode mode = options_.answer_mode;
  std::map<std::string, std::string> known;
  if (body_kind(content_type, body) == BodyKind::Image) {
    image = decode_image_bytes(reinterpret_cast<const uint8_t*>(body.data()), body.size(), "the image body", limits);
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
    image = image_from_json(j, limits);
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

ServerResponse Server::route(const ServerRequest& req) {
  ServerResponse res;
  auto fail = [&res](int status, const std::string& message) {
    t_request.error = message;
    res.status = status;
    if (status == 503) res.headers.push_back({"Retry-After", "1"});  // loading or full: come back soon
    res.body = error_body(message);
    return res;
  };
  auto authorized = [&] {
    if (options_.auth_token.empty()) return true;
    std::string h = req.header("Authorization");
    const std::string prefix = "Bearer ";
    if (h.size() > prefix.size() && ascii_lower(h.substr(0, prefix.size())) == "bearer " &&
        same_secret(h.substr(prefix.size()), options_.auth_token))
      return true;
    res.headers.push_back({"WWW-Authenticate", "Bearer"});
    fail(401, h.empty() ? "missing Authorization: Bearer token" : "wrong bearer token");
    return false;
  };
  bool get = req.method == "GET" || req.method == "HEAD";
  if (req.path == "/ping" && get) {
    ordered_json j;
    if (batcher_.ready()) {
      j["status"] = "ready";
      j["model"] = batcher_.model_name();
    } else if (batcher_.load_failed()) {
      j["status"] = "failed";
      j["error"] = batcher_.load_error();
      res.status = 503;
    } else {
      j["status"] = "loading";
      res.status = 503;
    }
    res.body = dump(j);
    return res;
  }
  if (req.path == "/execution-parameters" && get) {
    // SageMaker batch transform asks this before sending records. Concurrent requests: enough to keep
    // one batch in the model and the next one filling.
    ordered_json j;
    j["MaxConcurrentTransforms"] = static_cast<int64_t>(std::clamp<size_t>(options_.queue_capacity / std::max<size_t>(1, options_.max_batch), 1, 16));
    j["BatchStrategy"] = "MULTI_RECORD";
    j["MaxPayloadInMB"] = static_cast<int64_t>(std::max<size_t>(1, options_.max_payload_bytes >> 20));
    res.body = dump(j);
    return res;
  }
  if (req.path == "/metrics" && get) {
    if (!authorized()) return res;
    res.content_type = "text/plain; version=0.0.4";
    res.body = metrics_.render(queue_.depth(), queue_.capacity(), batcher_.ready());
    return res;
  }
  if ((req.path == "/invocations" || req.path == "/describe") && req.method == "POST") {
    if (!authorized()) return res;
    try {
      const std::string content_type = req.header("Content-Type");
      auto handler = req.path == "/invocations" ? &Server::handle_invocations : &Server::handle_describe;
      Reply r = body_kind(content_type, req.body) == BodyKind::JsonLines ? handle_records(req.body, handler)
                                                                        : (this->*handler)(content_type, req.body);
      res.status = r.status;
      res.content_type = r.content_type;
      res.body = std::move(r.body);
      return res;
    } catch (const HttpError& e) {
      return fail(e.status, e.message);
    } catch (const std::bad_alloc&) {
      return fail(503, "out of memory serving this request");
    } catch (const std::exception& e) {
      return fail(500, std::string("internal error: ") + e.what());
    }
  }
  if (req.path == "/ping" || req.path == "/metrics" || req.path == "/execution-parameters" || req.path == "/invocations" ||
      req.path == "/describe") {
    res.headers.push_back({"Allow", req.path == "/invocations" || req.path == "/describe" ? "POST" : "GET, HEAD"});
    return fail(405, "method " + req.method + " not allowed on " + req.path);
  }
  return fail(404, "no route " + req.method + " " + req.path);
}

// One JSON line per request, and the request metrics, just before the response is written (so a
// client that has its answer also finds it counted). Never logs headers (the bearer token).
void Server::log_request(const ServerRequest& req, const ServerResponse& res) {
  double seconds = std::chrono::duration<double>(Clock::now() - req.start).count();
  metrics_.count_request(req.path, res.status, seconds);
  ordered_json j;
  j["time"] = utc_now_iso();
  j["method"] = req.method;
  j["path"] = req.path;
  j["status"] = res.status;
  j["ms"] = std::round(seconds * 1e5) / 100.0;
  j["bytes_in"] = req.bytes_in;
  j["bytes_out"] = res.body.size();
  j["remote"] = req.remote;
  if (t_request.questions) j["questions"] = t_request.questions;
  if (!t_request.error.empty()) j["error"] = t_request.error;
  options_.log_line(dump(j));
  t_request = RequestContext{};
}

int Server::start() {
  std::lock_guard<std::mutex> lock(stop_mutex_);
  if (started_) throw Error("the server is already started");
  HttpLimits limits;
  limits.max_body_bytes = options_.max_payload_bytes;
  limits.request_deadline_ms = options_.request_deadline_ms;
  limits.idle_timeout_ms = options_.idle_timeout_ms;
  limits.max_connections = options_.max_connections;
  int threads = options_.http_threads;
  if (threads <= 0) threads = static_cast<int>(std::min<size_t>(1024, options_.queue_capacity + options_.max_batch + 8));
  limits.workers = static_cast<size_t>(threads);
  limits.max_waiting = static_cast<size_t>(threads);
  limits.max_buffered_bytes = std::max<size_t>(256u << 20, 8 * options_.max_payload_bytes);
  HttpHandlers handlers;
  handlers.handle = [this](const ServerRequest& req) {
    metrics_.request_started();
    ServerResponse r = route(req);
    metrics_.request_finished();
    return r;
  };
  handlers.quick = [](const ServerRequest& req) {
    return req.path == "/ping" || req.path == "/metrics" || req.path == "/execution-parameters";
  };
  handlers.error = [](int status, const std::string& message) {
    t_request.error = message;
    ServerResponse r;
    r.status = status;
    r.body = error_body(message);
    return r;
  };
  handlers.done = [this](const ServerRequest& req, const ServerResponse& res) { log_request(req, res); };
  http_ = std::make_unique<HttpServer>(limits, handlers);
  port_ = http_->start(options_.host, options_.port);
  started_ = true;
  // The model loads now, while /ping already answers 503.
  batcher_.start(factory_);
  return port_;
}

void Server::stop() {
  std::lock_guard<std::mutex> lock(stop_mutex_);
  if (!started_ || stopped_) return;
  stopped_ = true;
  // 1) No new connections; requests in flight are answered (the batcher still runs) and written.
  // 2) Then the queue is empty: close it and let the batcher end.
  http_->stop();
  queue_.close();
  batcher_.join();
}

size_t Server::connections() const { return http_ ? http_->connections() : 0; }

}  // namespace tailor
