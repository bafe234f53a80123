// tailor-test: base
// The server under test is the real one (HTTP adapter + queue + batcher) on 127.0.0.1; the model is
// a deterministic test double whose answers are computed from the image's mean colour, so every
// answer says which image it came from.
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "serve/base64.h"
#include "serve/server.h"
#include "test_images.h"
#include "test_util.h"
#include "util/text.h"

namespace tailor {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

struct Gate {
  std::mutex m;
  std::condition_variable cv;
  bool is_open = false;
  void wait() {
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [&] { return is_open; });
  }
  void open() {
    {
      std::lock_guard<std::mutex> lock(m);
      is_open = true;
    }
    cv.notify_all();
  }
};

// What the test sees of the model: every call it got, and knobs to slow it down or hold it.
struct Probe {
  struct Call {
    size_t questions;
    size_t distinct_images;
    GenerationOptions options;
    std::vector<std::string> prompts;
  };
  std::mutex m;
  std::vector<Call> calls;
  std::atomic<int> entered{0};
  int delay_ms = 0;
  Gate* hold = nullptr;  // answer() waits for this gate when set
  bool colour_values = false;  // the model knows baseColour's values (Red, Green, Blue): choice answers
  std::vector<Call> snapshot() {
    std::lock_guard<std::mutex> lock(m);
    return calls;
  }
};

struct Mean {
  int r, g, b;
};
Mean mean_colour(const ImageRGB& img) {
  uint64_t s[3] = {0, 0, 0};
  for (size_t i = 0; i < img.pixels.size(); i += 3)
    for (int c = 0; c < 3; ++c) s[c] += img.pixels[i + c];
  uint64_t n = img.pixels.size() / 3;
  return {int((s[0] + n / 2) / n), int((s[1] + n / 2) / n), int((s[2] + n / 2) / n)};
}
std::string rgb_text(Mean m) {
  return "rgb(" + std::to_string(m.r) + "," + std::to_string(m.g) + "," + std::to_string(m.b) + ")";
}

class ColourAnswerer : public Answerer {
 public:
  explicit ColourAnswerer(std::shared_ptr<Probe> probe) : probe_(std::move(probe)) {
    task_.attributes = default_attributes();
    if (probe_->colour_values) task_.values["baseColour"] = {"Red", "Green", "Blue"};
  }
  std::vector<Answer> answer(const std::vector<AnswerRequest>& requests, const GenerationOptions& options) override {
    ++probe_->entered;
    if (probe_->hold) probe_->hold->wait();
    if (probe_->delay_ms) std::this_thread::sleep_for(std::chrono::milliseconds(probe_->delay_ms));
    Probe::Call call{requests.size(), 0, options, {}};
    std::set<const ImageRGB*> images;
    for (const AnswerRequest& r : requests) {
      images.insert(r.image.get());
      call.prompts.push_back(r.prompt);
    }
    call.distinct_images = images.size();
    {
      std::lock_guard<std::mutex> lock(probe_->m);
      probe_->calls.push_back(call);
    }
    std::vector<Answer> out;
    for (const AnswerRequest& r : requests) {
      if (r.prompt.find("FAIL") != std::string::npos) throw Error("the test model cannot answer FAIL");
      Mean m = mean_colour(*r.image);
      std::string attribute;
      for (const AttributeSpec& a : task_.attributes)
        if (wrap_prompt(a.question) == r.prompt) attribute = a.name;
      if (!r.candidates.empty()) {  // choice: the colour's candidate, sure when the photo is one colour
        std::string want = answer_text(attribute, m.r >= m.g && m.r >= m.b ? "Red" : m.g >= m.b ? "Green" : "Blue");
        Answer a;
        a.text = want;
        a.confidence = (m.r == 0) + (m.g == 0) + (m.b == 0) == 2 ? 0.9 : 0.4;
        for (const std::string& c : r.candidates) a.log_likelihoods.push_back(c == want ? -1.0 : -3.0);
        out.push_back(a);
      } else if (attribute == "baseColour")
        out.push_back({answer_text(attribute, m.r >= m.g && m.r >= m.b ? "Red" : m.g >= m.b ? "Green" : "Blue")});
      else if (!attribute.empty())
        out.push_back({answer_text(attribute, rgb_text(m))});
      else
        out.push_back({rgb_text(m) + " beams=" + std::to_string(options.num_beams)});
    }
    return out;
  }
  const TaskInfo& task() const override { return task_; }
  std::string name() const override { return "colour-test-model"; }

 private:
  std::shared_ptr<Probe> probe_;
  TaskInfo task_;
};

ServeOptions test_options() {
  ServeOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.max_wait_ms = 5;
  o.http_threads = 32;
  return o;
}

struct TestServer {
  std::shared_ptr<Probe> probe = std::make_shared<Probe>();
  std::shared_ptr<std::mutex> log_mutex = std::make_shared<std::mutex>();
  std::shared_ptr<std::vector<std::string>> logs = std::make_shared<std::vector<std::string>>();
  std::unique_ptr<Server> server;
  int port = 0;

  explicit TestServer(ServeOptions o = test_options(), Gate* load_gate = nullptr, bool wait = true,
                      bool colour_values = false) {
    probe->colour_values = colour_values;
    auto lm = log_mutex;
    auto lg = logs;
    o.log_line = [lm, lg](const std::string& line) {
      std::lock_guard<std::mutex> lock(*lm);
      lg->push_back(line);
    };
    auto p = probe;
    server = std::make_unique<Server>(o, [p, load_gate]() -> std::unique_ptr<Answerer> {
      if (load_gate) load_gate->wait();
      return std::make_unique<ColourAnswerer>(p);
    });
    port = server->start();
    if (wait) wait_ready();
  }
  void wait_ready() {
    for (int i = 0; i < 500 && !server->ready(); ++i) std::this_thread::sleep_for(10ms);
    ASSERT_TRUE(server->ready());
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(20, 0);
    return c;
  }
  std::vector<std::string> log_lines() {
    std::lock_guard<std::mutex> lock(*log_mutex);
    return *logs;
  }
};

std::string png_of(uint8_t r, uint8_t g, uint8_t b, int w = 16, int h = 12) {
  return test::as_string(encode_png(test::solid_image(w, h, r, g, b)));
}
std::string b64(const std::string& bytes) {
  return encode_base64(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}
std::string question_of(const std::string& attribute) {
  for (const auto& a : default_attributes())
    if (a.name == attribute) return a.question;
  return "";
}

// The status and parsed JSON of a response (no response: status -1).
struct Reply {
  int status = -1;
  json body;
  std::string text;
};
Reply reply_of(const httplib::Result& r) {
  Reply out;
  if (!r) {
    out.text = "no response: " + httplib::to_string(r.error());
    return out;
  }
  out.status = r->status;
  out.text = r->body;
  out.body = json::parse(r->body, nullptr, false);
  return out;
}
Reply post_json(const TestServer& s, const json& body, const std::string& path = "/invocations") {
  auto c = s.client();
  return reply_of(c.Post(path.c_str(), body.dump(), "application/json"));
}
Reply post_raw(const TestServer& s, const std::string& body, const std::string& type,
               const std::string& path = "/invocations") {
  auto c = s.client();
  return reply_of(c.Post(path.c_str(), body, type.c_str()));
}

// Value of one sample line in Prometheus text, e.g. metric("tailor_queue_depth").
double metric(const std::string& text, const std::string& sample) {
  size_t at = 0;
  while ((at = text.find(sample + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + sample.size() + 1));
    at += sample.size();
  }
  return -1;
}

TEST(Serve, PingIs503WhileLoadingAnd200After) {
  Gate load;
  TestServer s(test_options(), &load, /*wait=*/false);
  auto c = s.client();
  auto ping = reply_of(c.Get("/ping"));
  EXPECT_EQ(ping.status, 503);
  EXPECT_EQ(ping.body["status"], "loading");
  Reply early = post_json(s, {{"image", b64(png_of(1, 2, 3))}});
  EXPECT_EQ(early.status, 503);
  EXPECT_NE(early.body.value("error", "").find("loading"), std::string::npos) << early.text;
  load.open();
  s.wait_ready();
  ping = reply_of(c.Get("/ping"));
  EXPECT_EQ(ping.status, 200);
  EXPECT_EQ(ping.body["model"], "colour-test-model");
}

TEST(Serve, FailedLoadKeepsPingUnhealthy) {
  ServeOptions o = test_options();
  o.log_line = [](const std::string&) {};
  Server server(o, []() -> std::unique_ptr<Answerer> { throw Error("weights.safetensors: missing key x"); });
  int port = server.start();
  for (int i = 0; i < 500 && !server.load_failed(); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(server.load_failed());
  EXPECT_NE(server.load_error().find("missing key x"), std::string::npos);
  httplib::Client c("127.0.0.1", port);
  Reply ping = reply_of(c.Get("/ping"));
  EXPECT_EQ(ping.status, 503);
  EXPECT_EQ(ping.body["status"], "failed");
}

TEST(Serve, PortInUseIsAClearError) {
  TestServer first;
  ServeOptions o = test_options();
  o.port = first.port;
  Server second(o, factory_of(std::make_unique<ColourAnswerer>(first.probe)));
  try {
    second.start();
    ADD_FAILURE() << "a second server started on port " << first.port;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen on 127.0.0.1:" + std::to_string(first.port)), std::string::npos)
        << e.what();
  }
}

TEST(Serve, PromptIsWrappedAndAnsweredAsAttribute) {
  TestServer s;
  std::string image = b64(png_of(200, 30, 60));
  Reply r = post_json(s, {{"image", image}, {"prompt", question_of("Sleeve Length")}});
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(r.body, json::parse(R"J({"Sleeve Length": "rgb(200,30,60)",
                                    "generated_text": {"Sleeve Length": "Sleeve Length: rgb(200,30,60)"}})J"));
  // Already wrapped: not wrapped twice (the model only recognises the exact template).
  r = post_json(s, {{"image", image}, {"prompt", wrap_prompt(question_of("baseColour"))}});
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(r.body["baseColour"], "Red");
  // A question the model was not trained with: its text comes back under "answer".
  r = post_json(s, {{"image", image},
                    {"prompt", "Is this a shirt?"},
                    {"parameters", {{"max_new_tokens", 7}, {"num_beams", 3}}}});
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(r.body["answer"], "rgb(200,30,60) beams=3");
  auto calls = s.probe->snapshot();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0].prompts.at(0), "Question: " + question_of("Sleeve Length") + " Answer: ");
  EXPECT_EQ(calls[2].prompts.at(0), "Question: Is this a shirt? Answer: ");
  EXPECT_EQ(calls[2].options.max_new_tokens, 7);
  EXPECT_EQ(calls[2].options.num_beams, 3);
  EXPECT_EQ(calls[0].options.max_new_tokens, 20);  // defaults when no parameters are given
}

TEST(Serve, ChoiceAnswersCarryConfidenceBesideTheFlatValues) {
  TestServer s(test_options(), nullptr, true, /*colour_values=*/true);
  std::string image = b64(png_of(200, 0, 0));
  Reply r = post_json(s, {{"image", image}});
  ASSERT_EQ(r.status, 200) << r.text;
  // The original client's flat form: every attribute a string value.
  for (const auto& a : default_attributes()) EXPECT_TRUE(r.body[a.name].is_string()) << a.name;
  EXPECT_EQ(r.body["baseColour"], "Red");
  // Beside it: the confidence of each choice answer (only baseColour has known values here).
  EXPECT_EQ(r.body["confidence"], json::parse(R"({"baseColour": 0.9})")) << r.text;
  auto calls = s.probe->snapshot();
  ASSERT_EQ(calls.size(), 1u);
  // A request may ask for free text: no candidates, no confidence.
  r = post_json(s, {{"image", b64(png_of(90, 80, 10))}, {"parameters", {{"answer", "free"}}}});
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_FALSE(r.body.contains("confidence")) << r.text;
  EXPECT_EQ(r.body["baseColour"], "Red");
  // /describe reports the confidences too; a doubtful photo gets its lower confidence.
  r = post_json(s, {{"image", b64(png_of(90, 80, 10))}}, "/describe");
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(r.body["confidence"], json::parse(R"({"baseColour": 0.4})")) << r.text;
  r = post_json(s, {{"image", image}, {"parameters", {{"answer", "maybe"}}}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.text.find("parameters.answer"), std::string::npos) << r.text;
}

void expect_all_attributes(const Reply& r, Mean m) {
  ASSERT_EQ(r.status, 200) << r.text;
  std::vector<std::string> keys;
  for (auto it = r.body.begin(); it != r.body.end(); ++it) keys.push_back(it.key());
  ASSERT_EQ(r.body.size(), default_attributes().size() + 1) << r.text;
  for (const auto& a : default_attributes()) {
    std::string want = a.name == "baseColour" ? (m.r >= m.g && m.r >= m.b ? "Red" : m.g >= m.b ? "Green" : "Blue")
                                              : rgb_text(m);
    EXPECT_EQ(r.body.value(a.name, ""), want) << a.name;
    EXPECT_EQ(r.body["generated_text"].value(a.name, ""), a.name + ": " + want);
  }
}

TEST(Serve, NoPromptAsksEveryAttributeInOneCallSharingTheImage) {
  TestServer s;
  expect_all_attributes(post_json(s, {{"image", b64(png_of(10, 220, 30))}}), {10, 220, 30});
  auto calls = s.probe->snapshot();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].questions, default_attributes().size());
  EXPECT_EQ(calls[0].distinct_images, 1u);  // one decoded image shared by all questions
}

TEST(Serve, RequestLargerThanMaxBatchIsSplitIntoModelCalls) {
  ServeOptions o = test_options();
  o.max_batch = 3;
  TestServer s(o);
  expect_all_attributes(post_json(s, {{"image", b64(png_of(40, 50, 60))}}), {40, 50, 60});
  auto calls = s.probe->snapshot();
  ASSERT_EQ(calls.size(), 3u);  // 8 questions: 3 + 3 + 2
  EXPECT_EQ(calls[0].questions, 3u);
  EXPECT_EQ(calls[1].questions, 3u);
  EXPECT_EQ(calls[2].questions, 2u);
}

TEST(Serve, RawImageBodiesAskEveryAttribute) {
  TestServer s;
  expect_all_attributes(post_raw(s, png_of(5, 6, 250), "image/png"), {5, 6, 250});
  // A real catalog photo as image/jpeg.
  std::string jpeg = read_file(test::fashion_catalog() + "/images/10000.jpg");
  Mean m = mean_colour(decode_image(reinterpret_cast<const uint8_t*>(jpeg.data()), jpeg.size()));
  expect_all_attributes(post_raw(s, jpeg, "image/jpeg"), m);
  // Base64 in JSON, as a data URL, gives the same answers.
  expect_all_attributes(post_json(s, {{"image", "data:image/jpeg;base64," + b64(jpeg)}}), m);
}

TEST(Serve, DescribeWithoutWriterReturnsAttributes) {
  TestServer s;
  Reply r = post_json(s, {{"image", b64(png_of(90, 80, 70))}, {"attributes", {{"Sleeve Length", "Short Sleeves"}, {"Brand", "Acme"}}}},
                      "/describe");
  ASSERT_EQ(r.status, 200) << r.text;
  EXPECT_FALSE(r.body.contains("description"));
  EXPECT_EQ(r.body["attributes"]["Sleeve Length"], "Short Sleeves");  // known: not asked
  EXPECT_EQ(r.body["attributes"]["Brand"], "Acme");
  EXPECT_EQ(r.body["attributes"]["Fabric"], "rgb(90,80,70)");
  EXPECT_EQ(r.body["attributes"]["baseColour"], "Red");
  EXPECT_FALSE(r.body["predicted"].contains("Sleeve Length"));
  EXPECT_EQ(r.body["predicted"].size(), default_attributes().size() - 1);
  auto calls = s.probe->snapshot();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].questions, default_attributes().size() - 1);
}

TEST(Serve, DescribeWithWriter) {
  ServeOptions o = test_options();
  o.describer = [](const std::map<std::string, std::string>& a) {
    if (a.count("Brand") && a.at("Brand") == "Broken") throw Error("writer unavailable");
    std::string text;
    for (const auto& [k, v] : a) text += k + "=" + v + ";";
    return text;
  };
  TestServer s(o);
  Reply r = post_raw(s, png_of(0, 0, 255), "image/png", "/describe");
  ASSERT_EQ(r.status, 200) << r.text;
  std::string want;  // the describer sees a std::map: sorted attribute names
  std::map<std::string, std::string> expected;
  for (const auto& a : default_attributes()) expected[a.name] = a.name == "baseColour" ? "Blue" : "rgb(0,0,255)";
  for (const auto& [k, v] : expected) want += k + "=" + v + ";";
  EXPECT_EQ(r.body["description"], want);
  Reply broken = post_json(s, {{"image", b64(png_of(1, 1, 1))}, {"attributes", {{"Brand", "Broken"}}}}, "/describe");
  EXPECT_EQ(broken.status, 502);
  EXPECT_NE(broken.body.value("error", "").find("writer unavailable"), std::string::npos) << broken.text;
}

struct BadCase {
  std::string name, content_type, body, path;
  int status;
  std::string error_has;
};

TEST(Serve, BadInputsGetStatusAndJsonError) {
  ServeOptions o = test_options();
  o.max_payload_bytes = 256 * 1024;
  TestServer s(o);
  std::string png = png_of(1, 2, 3);
  std::string img = b64(png);
  std::vector<BadCase> cases = {
      {"not JSON", "application/json", "{\"image\": ", "/invocations", 400, "invalid JSON"},
      {"JSON array", "application/json", "[1,2]", "/invocations", 400, "must be an object"},
      {"no image", "application/json", R"({"prompt": "x"})", "/invocations", 400, "missing field \"image\""},
      {"image not string", "application/json", R"({"image": 12})", "/invocations", 400, "base64 string"},
      {"bad base64", "application/json", R"({"image": "iVBO*w0K"})", "/invocations", 400, "'*' at offset 4"},
      {"empty image", "application/json", R"({"image": ""})", "/invocations", 400, "empty"},
      {"not an image", "application/json", json{{"image", b64("hello world")}}.dump(), "/invocations", 400, "image"},
      {"truncated PNG", "application/json", json{{"image", b64(png.substr(0, png.size() / 2))}}.dump(), "/invocations", 400,
       "field \"image\""},
      {"tokens as string", "application/json", json{{"image", img}, {"parameters", {{"max_new_tokens", "20"}}}}.dump(),
       "/invocations", 400, "max_new_tokens must be an integer"},
      {"tokens zero", "application/json", json{{"image", img}, {"parameters", {{"max_new_tokens", 0}}}}.dump(),
       "/invocations", 400, "max_new_tokens must be in [1, 512]"},
      {"tokens fraction", "application/json", json{{"image", img}, {"parameters", {{"max_new_tokens", 2.5}}}}.dump(),
       "/invocations", 400, "max_new_tokens must be an integer"},
      {"beams too many", "application/json", json{{"image", img}, {"parameters", {{"num_beams", 1000}}}}.dump(),
       "/invocations", 400, "num_beams must be in [1, 8]"},
      {"do_sample not bool", "application/json", json{{"image", img}, {"parameters", {{"do_sample", 1}}}}.dump(),
       "/invocations", 400, "do_sample"},
      {"top_p out of range", "application/json", json{{"image", img}, {"parameters", {{"top_p", 0}}}}.dump(),
       "/invocations", 400, "top_p"},
      {"parameters not object", "application/json", json{{"image", img}, {"parameters", 5}}.dump(), "/invocations", 400,
       "parameters must be an object"},
      {"unknown parameter", "application/json", json{{"image", img}, {"parameters", {{"max_tokens", 5}}}}.dump(),
       "/invocations", 400, "unknown field \"max_tokens\""},
      {"unknown field", "application/json", json{{"image", img}, {"promt", "x"}}.dump(), "/invocations", 400,
       "unknown field \"promt\""},
      {"prompt not string", "application/json", json{{"image", img}, {"prompt", {1}}}.dump(), "/invocations", 400,
       "\"prompt\" must be a string"},
      {"prompt empty", "application/json", json{{"image", img}, {"prompt", "  "}}.dump(), "/invocations", 400,
       "\"prompt\" is empty"},
      {"empty raw jpeg", "image/jpeg", "", "/invocations", 400, "empty"},
      {"garbage raw png", "image/png", "\x89PNG\r\n\x1a\nrubbish", "/invocations", 400, "image body"},
      {"text body", "text/plain", "hello", "/invocations", 415, "Content-Type"},
      {"known attribute not string", "application/json", json{{"image", img}, {"attributes", {{"Brand", 3}}}}.dump(),
       "/describe", 400, "attributes[\"Brand\"] must be a string"},
      {"too large", "application/octet-stream", std::string(300 * 1024, 'x'), "/invocations", 413, "too large"},
  };
  for (const BadCase& c : cases) {
    Reply r = post_raw(s, c.body, c.content_type, c.path);
    EXPECT_EQ(r.status, c.status) << c.name << ": " << r.text;
    ASSERT_TRUE(r.body.is_object()) << c.name << ": " << r.text;
    EXPECT_NE(r.body.value("error", "").find(c.error_has), std::string::npos) << c.name << ": " << r.text;
  }
  auto c = s.client();
  Reply nf = reply_of(c.Get("/nothing"));
  EXPECT_EQ(nf.status, 404);
  EXPECT_NE(nf.body.value("error", "").find("/nothing"), std::string::npos);
  EXPECT_EQ(s.probe->snapshot().size(), 0u);  // nothing bad reached the model
  EXPECT_EQ(reply_of(c.Get("/ping")).status, 200);
}

TEST(Serve, OversizedImagesAreRefusedBeforeDecoding) {
  std::string jpeg = read_file(test::fashion_catalog() + "/images/10000.jpg");
  ImageRGB real = decode_image(reinterpret_cast<const uint8_t*>(jpeg.data()), jpeg.size());
  ServeOptions o = test_options();
  o.max_image_pixels = uint64_t(real.width) * real.height - 1;  // the real photo is one pixel too many
  TestServer s(o);
  std::string size = std::to_string(real.width) + "x" + std::to_string(real.height) + " pixels";
  Reply r = post_raw(s, jpeg, "image/jpeg");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.value("error", "").find(size), std::string::npos) << r.text;
  // A PNG whose header claims 30000 x 30000 (a decompression bomb) is refused from its header.
  std::string png = png_of(1, 2, 3, 1, 1);
  const unsigned char dims[8] = {0, 0, 0x75, 0x30, 0, 0, 0x75, 0x30};
  png.replace(16, 8, reinterpret_cast<const char*>(dims), 8);
  r = post_json(s, {{"image", b64(png)}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.value("error", "").find("30000x30000 pixels"), std::string::npos) << r.text;
  EXPECT_EQ(post_raw(s, png_of(1, 2, 3), "image/png").status, 200);  // small ones still pass
  EXPECT_EQ(s.probe->snapshot().size(), 1u);
}

TEST(Serve, RandomBodiesNeverCrashTheServer) {
  TestServer s;
  std::mt19937 rng(1234);
  std::string png = png_of(4, 5, 6);
  const char* types[] = {"application/json", "image/png", "image/jpeg", ""};
  for (int i = 0; i < 60; ++i) {
    std::string body;
    int kind = i % 3;
    if (kind == 0) {  // random bytes
      body.resize(rng() % 2000);
      for (char& ch : body) ch = static_cast<char>(rng());
    } else if (kind == 1) {  // a PNG with random bytes flipped
      body = png;
      for (int k = 0; k < 5; ++k) body[8 + rng() % (body.size() - 8)] = static_cast<char>(rng());
    } else {  // JSON with a random value for image/parameters
      json v = rng() % 2 ? json(static_cast<int64_t>(rng())) : json(std::string(rng() % 40, 'A'));
      body = json{{"image", v}, {"parameters", {{"num_beams", v}}}}.dump();
    }
    Reply r = post_raw(s, body, types[i % 4]);
    ASSERT_NE(r.status, -1) << "no response to case " << i;
    EXPECT_TRUE(r.status == 200 || r.status == 400 || r.status == 415) << i << ": " << r.status << " " << r.text;
    if (r.status != 200) EXPECT_TRUE(r.body.contains("error")) << r.text;
  }
  EXPECT_EQ(reply_of(s.client().Get("/ping")).status, 200);
}

// SageMaker batch transform: /execution-parameters, and MultiRecord JSON Lines bodies — one answer
// line per record, in order, each the record's own /invocations answer; a bad record gets an error
// line and the others are still answered.
TEST(Serve, BatchTransformJsonLines) {
  ServeOptions o = test_options();
  o.max_batch = 2;  // records go to the model a batch at a time: 5 records take several waves
  TestServer s(o);
  auto c = s.client();
  Reply p = reply_of(c.Get("/execution-parameters"));
  ASSERT_EQ(p.status, 200) << p.text;
  EXPECT_EQ(p.body["BatchStrategy"], "MULTI_RECORD");
  EXPECT_EQ(p.body["MaxPayloadInMB"], static_cast<int64_t>(o.max_payload_bytes >> 20));
  EXPECT_GE(p.body["MaxConcurrentTransforms"].get<int64_t>(), 1);

  std::vector<json> records = {
      {{"image", b64(png_of(200, 30, 60))}, {"prompt", question_of("Sleeve Length")}},
      {{"image", b64(png_of(10, 20, 30))}},
      {{"image", "not base64 at all!"}},
      {{"image", b64(png_of(1, 2, 3))}, {"prompt", question_of("baseColour")}},
      {{"image", b64(png_of(40, 50, 60))}, {"prompt", question_of("Neck")}},
  };
  std::string body;
  for (const json& r : records) body += r.dump() + "\n";
  auto res = c.Post("/invocations", body, "application/jsonlines");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/jsonlines");
  std::vector<std::string> lines = text_lines(res->body);
  ASSERT_EQ(lines.size(), records.size()) << res->body;
  for (size_t i = 0; i < records.size(); ++i) {
    Reply alone = post_json(s, records[i]);  // the same record on its own
    json line = json::parse(lines[i]);
    if (i == 2) {
      EXPECT_EQ(line["status"], 400) << lines[i];
      EXPECT_NE(line["error"].get<std::string>().find("record 3"), std::string::npos) << lines[i];
      EXPECT_EQ(alone.status, 400);
    } else {
      ASSERT_EQ(alone.status, 200) << alone.text;
      EXPECT_EQ(line, alone.body) << "record " << i + 1;
    }
  }
  // A blank line in the middle is a record too (an error line keeps the lines aligned).
  res = c.Post("/invocations", records[1].dump() + "\n\n" + records[3].dump() + "\n", "application/jsonlines");
  ASSERT_TRUE(res);
  lines = text_lines(res->body);
  ASSERT_EQ(lines.size(), 3u) << res->body;
  EXPECT_NE(lines[1].find("empty line"), std::string::npos) << lines[1];
}

TEST(Serve, BearerTokenAuth) {
  ServeOptions o = test_options();
  o.auth_token = "s3cret-Token-value";
  TestServer s(o);
  auto c = s.client();
  EXPECT_EQ(reply_of(c.Get("/ping")).status, 200);  // health checks need no token
  std::string body = json{{"image", b64(png_of(1, 2, 3))}, {"prompt", "x"}}.dump();
  Reply none = reply_of(c.Post("/invocations", body, "application/json"));
  EXPECT_EQ(none.status, 401);
  EXPECT_TRUE(none.body.contains("error"));
  httplib::Headers wrong = {{"Authorization", "Bearer s3cret-Token-valuX"}};
  EXPECT_EQ(reply_of(c.Post("/invocations", wrong, body, "application/json")).status, 401);
  EXPECT_EQ(reply_of(c.Get("/metrics")).status, 401);
  httplib::Headers right = {{"Authorization", "Bearer s3cret-Token-value"}};
  EXPECT_EQ(reply_of(c.Post("/invocations", right, body, "application/json")).status, 200);
  EXPECT_EQ(reply_of(c.Get("/metrics", right)).status, 200);
  for (const std::string& line : s.log_lines()) EXPECT_EQ(line.find("s3cret"), std::string::npos) << line;
}

TEST(Serve, ConcurrentClientsGetTheirOwnAnswersInSharedBatches) {
  ServeOptions o = test_options();
  o.max_batch = 32;
  o.max_wait_ms = 20;
  TestServer s(o);
  s.probe->delay_ms = 20;  // a slow model: requests pile up behind each call
  const int kClients = 16, kEach = 4;
  std::atomic<int> wrong{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&, t] {
      auto c = s.client();
      uint8_t r = uint8_t(10 + t * 14), g = uint8_t(200 - t * 11), b = uint8_t(t * 3);
      std::string body = json{{"image", b64(png_of(r, g, b))}, {"prompt", question_of("Pattern")}}.dump();
      for (int i = 0; i < kEach; ++i) {
        Reply rep = reply_of(c.Post("/invocations", body, "application/json"));
        if (rep.status != 200 || rep.body.value("Pattern", "") != rgb_text({r, g, b})) {
          ++wrong;
          ADD_FAILURE() << "client " << t << " request " << i << ": " << rep.status << " " << rep.text;
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(wrong.load(), 0);

  auto c = s.client();
  std::string m = reply_of(c.Get("/metrics")).text;
  double batches = metric(m, "tailor_batch_size_count");
  double singles = metric(m, "tailor_batch_size_bucket{le=\"1\"}");
  EXPECT_EQ(metric(m, "tailor_batch_size_sum"), kClients * kEach);
  EXPECT_LT(batches, kClients * kEach);  // fewer model calls than requests...
  EXPECT_LT(singles, batches);          // ...because some calls held more than one question
  EXPECT_EQ(metric(m, "tailor_requests_total{route=\"/invocations\",status=\"200\"}"), kClients * kEach);
  EXPECT_EQ(metric(m, "tailor_request_duration_seconds_count{route=\"/invocations\"}"), kClients * kEach);
  EXPECT_EQ(metric(m, "tailor_queue_depth"), 0);
  size_t largest = 0;
  for (const auto& call : s.probe->snapshot()) largest = std::max(largest, call.questions);
  EXPECT_GT(largest, 1u);
  EXPECT_LE(largest, o.max_batch);
}

TEST(Serve, LoneRequestDoesNotWaitForTheBatchTimer) {
  ServeOptions o = test_options();
  o.max_wait_ms = 500;
  TestServer s(o);
  auto c = s.client();
  std::string body = json{{"image", b64(png_of(9, 9, 9))}, {"prompt", question_of("Fit")}}.dump();
  ASSERT_EQ(reply_of(c.Post("/invocations", body, "application/json")).status, 200);  // warm the connection
  for (int i = 0; i < 3; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    Reply r = reply_of(c.Post("/invocations", body, "application/json"));
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_EQ(r.status, 200);
    EXPECT_LT(ms, 250.0) << "a lone request waited for the 500 ms batch timer";
  }
}

TEST(Serve, FullQueueAnswers503) {
  ServeOptions o = test_options();
  o.max_batch = 1;
  o.queue_capacity = 2;
  o.http_threads = 0;  // the default: sized from the queue, so the queue is what fills up
  TestServer s(o);
  Gate hold;
  s.probe->hold = &hold;
  std::string body = json{{"image", b64(png_of(1, 2, 3))}, {"prompt", question_of("Neck")}}.dump();
  std::vector<int> statuses(3, 0);
  std::vector<std::thread> waiting;
  waiting.emplace_back([&] { statuses[0] = post_raw(s, body, "application/json").status; });
  for (int i = 0; i < 200 && s.probe->entered == 0; ++i) std::this_thread::sleep_for(5ms);
  ASSERT_EQ(s.probe->entered, 1);  // the model holds the first request
  for (int k = 1; k < 3; ++k) waiting.emplace_back([&, k] { statuses[k] = post_raw(s, body, "application/json").status; });
  for (int i = 0; i < 400 && s.server->queue_depth() < 2; ++i) std::this_thread::sleep_for(5ms);
  ASSERT_EQ(s.server->queue_depth(), 2u);
  httplib::Client c = s.client();
  auto full_result = c.Post("/invocations", body, "application/json");
  ASSERT_TRUE(full_result);
  EXPECT_EQ(full_result->get_header_value("Retry-After"), "1");
  Reply full = reply_of(full_result);
  EXPECT_EQ(full.status, 503);
  EXPECT_NE(full.body.value("error", "").find("queue is full"), std::string::npos) << full.text;
  std::string m = reply_of(s.client().Get("/metrics")).text;
  EXPECT_EQ(metric(m, "tailor_queue_depth"), 2);
  EXPECT_EQ(metric(m, "tailor_requests_in_flight"), 4);  // one in the model, two queued, this one
  hold.open();
  for (auto& t : waiting) t.join();
  EXPECT_EQ(statuses, std::vector<int>({200, 200, 200}));
}

TEST(Serve, SlowModelTimesOutWith504) {
  ServeOptions o = test_options();
  o.timeout_ms = 200;
  TestServer s(o);
  Gate hold;
  s.probe->hold = &hold;
  Reply r = post_json(s, {{"image", b64(png_of(1, 2, 3))}});
  EXPECT_EQ(r.status, 504);
  EXPECT_NE(r.body.value("error", "").find("timed out after 200 ms"), std::string::npos) << r.text;
  hold.open();
}

TEST(Serve, FailedBatchFailsEveryRequestInIt) {
  ServeOptions o = test_options();
  TestServer s(o);
  Gate hold;
  s.probe->hold = &hold;
  std::string image = b64(png_of(1, 2, 3));
  Reply first, bad, good;
  std::thread t1([&] { first = post_json(s, {{"image", image}, {"prompt", question_of("Neck")}}); });
  for (int i = 0; i < 200 && s.probe->entered == 0; ++i) std::this_thread::sleep_for(5ms);
  std::thread t2([&] { bad = post_json(s, {{"image", image}, {"prompt", "FAIL please"}}); });
  std::thread t3([&] { good = post_json(s, {{"image", image}, {"prompt", question_of("Fit")}}); });
  for (int i = 0; i < 400 && s.server->queue_depth() < 2; ++i) std::this_thread::sleep_for(5ms);
  ASSERT_EQ(s.server->queue_depth(), 2u);
  hold.open();
  t1.join();
  t2.join();
  t3.join();
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(bad.status, 500);
  EXPECT_EQ(good.status, 500);  // same batch as the failing question
  EXPECT_NE(good.body.value("error", "").find("cannot answer FAIL"), std::string::npos) << good.text;
  EXPECT_EQ(post_json(s, {{"image", image}, {"prompt", question_of("Fit")}}).status, 200);  // server goes on
  std::string m = reply_of(s.client().Get("/metrics")).text;
  EXPECT_EQ(metric(m, "tailor_batch_failures_total"), 1);
}

TEST(Serve, StopFinishesRequestsInFlight) {
  ServeOptions o = test_options();
  o.max_batch = 1;
  TestServer s(o);
  Gate hold;
  s.probe->hold = &hold;
  std::string body = json{{"image", b64(png_of(7, 8, 9))}, {"prompt", question_of("Collar")}}.dump();
  std::vector<Reply> replies(4);
  std::vector<std::thread> clients;
  for (int k = 0; k < 4; ++k) clients.emplace_back([&, k] { replies[k] = post_raw(s, body, "application/json"); });
  for (int i = 0; i < 400 && (s.probe->entered == 0 || s.server->queue_depth() < 3); ++i)
    std::this_thread::sleep_for(5ms);
  ASSERT_EQ(s.server->queue_depth(), 3u);  // one in the model, three queued
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    s.server->stop();
    stopped = true;
  });
  bool refused = false;  // no new connections once stopping
  for (int i = 0; i < 300 && !refused; ++i) {
    httplib::Client late("127.0.0.1", s.port);
    late.set_connection_timeout(1, 0);
    refused = !late.Get("/ping");
    if (!refused) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(refused);
  EXPECT_FALSE(stopped.load());  // but stop() waits for the requests in flight
  hold.open();
  stopper.join();
  for (int k = 0; k < 4; ++k) {
    clients[k].join();
    EXPECT_EQ(replies[k].status, 200) << k;
    EXPECT_EQ(replies[k].body.value("Collar", ""), "rgb(7,8,9)");
  }
  EXPECT_EQ(s.probe->snapshot().size(), 4u);
}

TEST(Serve, OneJsonLogLinePerRequestAndPrometheusMetrics) {
  TestServer s;
  post_json(s, {{"image", b64(png_of(1, 2, 3))}, {"prompt", question_of("Fit")}});
  post_json(s, {{"image", "!!"}});
  auto c = s.client();
  std::string m = reply_of(c.Get("/metrics")).text;
  for (const char* line : {"# TYPE tailor_requests_total counter", "# TYPE tailor_request_duration_seconds histogram",
                           "# TYPE tailor_batch_size histogram", "# TYPE tailor_queue_depth gauge"})
    EXPECT_NE(m.find(line), std::string::npos) << line;
  EXPECT_EQ(metric(m, "tailor_requests_total{route=\"/invocations\",status=\"400\"}"), 1);
  EXPECT_EQ(metric(m, "tailor_request_duration_seconds_bucket{route=\"/invocations\",le=\"+Inf\"}"), 2);
  EXPECT_EQ(metric(m, "tailor_model_ready"), 1);
  EXPECT_EQ(metric(m, "tailor_requests_in_flight"), 1);  // the metrics request itself
  auto lines = s.log_lines();
  ASSERT_EQ(lines.size(), 3u);  // two invocations, then the metrics GET itself
  json ok = json::parse(lines[0]);
  EXPECT_EQ(ok["method"], "POST");
  EXPECT_EQ(ok["path"], "/invocations");
  EXPECT_EQ(ok["status"], 200);
  EXPECT_EQ(ok["questions"], 1);
  EXPECT_TRUE(ok["ms"].is_number());
  json bad = json::parse(lines[1]);
  EXPECT_EQ(bad["status"], 400);
  EXPECT_NE(bad.value("error", "").find("base64"), std::string::npos);
  EXPECT_EQ(json::parse(lines[2])["path"], "/metrics");
}

// ---- hostile and slow clients (issue #23) ----------------------------------------------------------

// A raw connection: what httplib's client would not send (chunked bodies of any size, no length,
// slow drips). Reads the answer until the server closes or `timeout_ms` passes.
struct RawConn {
  int fd = -1;
  explicit RawConn(int port) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  ~RawConn() {
    if (fd >= 0) ::close(fd);
  }
  bool send_all(const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;  // the server closed (it answered early)
      done += static_cast<size_t>(n);
    }
    return true;
  }
  std::string read_answer(int timeout_ms = 10000) {
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string out;
    char buf[65536];
    while (true) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
      size_t head = out.find("\r\n\r\n");
      size_t cl = out.find("Content-Length: ");
      if (head != std::string::npos && cl != std::string::npos && cl < head &&
          out.size() >= head + 4 + std::stoul(out.substr(cl + 16)))
        break;
    }
    return out;
  }
};

Reply raw_reply(const std::string& answer) {
  Reply r;
  r.text = answer;
  if (answer.rfind("HTTP/1.1 ", 0) != 0) return r;
  r.status = std::stoi(answer.substr(9, 3));
  size_t head = answer.find("\r\n\r\n");
  if (head != std::string::npos) r.body = json::parse(answer.substr(head + 4), nullptr, false);
  return r;
}

std::string chunked(const std::string& body, size_t chunk) {
  std::string out;
  char size[32];
  for (size_t at = 0; at < body.size(); at += chunk) {
    size_t n = std::min(chunk, body.size() - at);
    std::snprintf(size, sizeof size, "%zx\r\n", n);
    out += size + body.substr(at, n) + "\r\n";
  }
  return out + "0\r\n\r\n";
}

std::string deflated(const std::string& data, bool gzip) {
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, gzip ? 15 + 16 : 15, 9, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, data.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

TEST(ServeLimits, ChunkedBodyOverTheLimitIs413NamingIt) {
  ServeOptions o = test_options();
  o.max_payload_bytes = 256 * 1024;
  TestServer s(o);
  RawConn c(s.port);
  // 8 MiB in 64 KiB chunks: refused once the decoded body passes the limit, not read whole.
  std::string head = "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n";
  c.send_all(head + chunked(std::string(8u << 20, 'x'), 64 * 1024));
  Reply r = raw_reply(c.read_answer());
  EXPECT_EQ(r.status, 413) << r.text.substr(0, 300);
  EXPECT_NE(r.body.value("error", "").find("limit of 262144 bytes"), std::string::npos) << r.text.substr(0, 300);
  // A small chunked request is served.
  RawConn ok(s.port);
  std::string body = json{{"image", b64(png_of(1, 2, 3))}, {"prompt", question_of("Fit")}}.dump();
  ok.send_all("POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              "Transfer-Encoding: chunked\r\n\r\n" + chunked(body, 100));
  Reply good = raw_reply(ok.read_answer());
  EXPECT_EQ(good.status, 200) << good.text;
  EXPECT_EQ(good.body.value("Fit", ""), "rgb(1,2,3)") << good.text;
}

TEST(ServeLimits, DeclaredLengthOverTheLimitIs413AndNoLengthIs411) {
  ServeOptions o = test_options();
  o.max_payload_bytes = 256 * 1024;
  TestServer s(o);
  RawConn big(s.port);
  big.send_all("POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 50000000\r\n\r\n");
  Reply r = raw_reply(big.read_answer());
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(r.body.value("error", "").find("Content-Length 50000000 is over the limit of 262144 bytes"),
            std::string::npos)
      << r.text;
  // No Content-Length and no chunked: refused at once, not read until the client closes.
  RawConn none(s.port);
  none.send_all("POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n\r\n" + std::string(1000, 'x'));
  Reply n = raw_reply(none.read_answer());
  EXPECT_EQ(n.status, 411);
  EXPECT_NE(n.body.value("error", "").find("Content-Length"), std::string::npos) << n.text;
  EXPECT_EQ(s.probe->snapshot().size(), 0u);
}

TEST(ServeLimits, CompressedBodiesAreLimitedOnTheInflatedBytes) {
  ServeOptions o = test_options();
  o.max_payload_bytes = 256 * 1024;
  TestServer s(o);
  auto c = s.client();
  // 64 MiB of zeros gzip to ~64 KB: under the limit as sent, far over it inflated.
  std::string bomb = deflated(std::string(64u << 20, '\0'), true);
  ASSERT_LT(bomb.size(), o.max_payload_bytes);
  httplib::Headers gz = {{"Content-Encoding", "gzip"}};
  Reply r = reply_of(c.Post("/invocations", gz, bomb, "application/json"));
  EXPECT_EQ(r.status, 413) << r.text;
  EXPECT_NE(r.body.value("error", "").find("inflates to more than the limit of 262144 bytes"), std::string::npos)
      << r.text;
  httplib::Headers df = {{"Content-Encoding", "deflate"}};
  EXPECT_EQ(reply_of(c.Post("/invocations", df, deflated(std::string(64u << 20, '{'), false), "application/json")).status,
            413);
  // Real compressed requests are served; a corrupt one is a 400 that says so.
  std::string body = json{{"image", b64(png_of(4, 5, 6))}, {"prompt", question_of("Fit")}}.dump();
  Reply good = reply_of(c.Post("/invocations", gz, deflated(body, true), "application/json"));
  EXPECT_EQ(good.status, 200) << good.text;
  EXPECT_EQ(good.body.value("Fit", ""), "rgb(4,5,6)");
  Reply good2 = reply_of(c.Post("/invocations", df, deflated(body, false), "application/json"));
  EXPECT_EQ(good2.status, 200) << good2.text;
  Reply corrupt = reply_of(c.Post("/invocations", gz, "not gzip at all", "application/json"));
  EXPECT_EQ(corrupt.status, 400);
  EXPECT_NE(corrupt.body.value("error", "").find("gzip"), std::string::npos) << corrupt.text;
  httplib::Headers br = {{"Content-Encoding", "br"}};
  EXPECT_EQ(reply_of(c.Post("/invocations", br, body, "application/json")).status, 415);
}

TEST(ServeLimits, HeadersOverTheLimitAre431) {
  TestServer s;
  RawConn c(s.port);
  c.send_all("GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(100 * 1024, 'a') + "\r\n\r\n");
  Reply r = raw_reply(c.read_answer());
  EXPECT_EQ(r.status, 431);
  EXPECT_NE(r.body.value("error", "").find("limit of 65536 bytes"), std::string::npos) << r.text.substr(0, 300);
}

TEST(ServeLimits, RequestDeadlineCoversTheWholeRequestNotEachRead) {
  ServeOptions o = test_options();
  o.request_deadline_ms = 600;
  TestServer s(o);
  RawConn c(s.port);
  // One byte every 100 ms: each read is quick, the request as a whole is not.
  std::string request = "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'x');
  auto t0 = std::chrono::steady_clock::now();
  bool refused = false;
  for (size_t i = 0; i < request.size() && !refused; ++i) {
    refused = !c.send_all(request.substr(i, 1));
    std::this_thread::sleep_for(100ms);
    if (std::chrono::steady_clock::now() - t0 > 5s) break;
  }
  Reply r = raw_reply(c.read_answer(5000));
  EXPECT_EQ(r.status, 408) << r.text;
  EXPECT_NE(r.body.value("error", "").find("600 ms"), std::string::npos) << r.text;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST(ServeLimits, PingAndRequestsAreServedWith300SlowConnectionsOpen) {
  ServeOptions o = test_options();
  o.http_threads = 4;  // far fewer threads than slow clients
  o.idle_timeout_ms = 60000;  // the idle ones stay open while the test runs, however slow the machine
  TestServer s(o);
  std::vector<std::unique_ptr<RawConn>> slow;
  for (int i = 0; i < 300; ++i) {
    slow.push_back(std::make_unique<RawConn>(s.port));
    ASSERT_GE(slow.back()->fd, 0) << "connection " << i;
    if (i % 3 == 0) continue;  // idle: connected, sent nothing
    if (i % 3 == 1) slow.back()->send_all("POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Le");  // half the headers
    else slow.back()->send_all("POST /invocations HTTP/1.1\r\nContent-Length: 5000\r\n\r\n{\"image\":");  // part body
  }
  for (int i = 0; i < 200 && s.server->connections() < 300; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_GE(s.server->connections(), 300u);
  httplib::Client c("127.0.0.1", s.port);
  c.set_connection_timeout(1, 0);
  c.set_read_timeout(1, 0);
  c.set_write_timeout(1, 0);
  for (int k = 0; k < 5; ++k) {
    auto t0 = std::chrono::steady_clock::now();
    Reply ping = reply_of(c.Get("/ping"));
    EXPECT_EQ(ping.status, 200) << ping.text;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  }
  Reply r = post_json(s, {{"image", b64(png_of(9, 8, 7))}, {"prompt", question_of("Fit")}});
  EXPECT_EQ(r.status, 200) << r.text;
  EXPECT_EQ(r.body.value("Fit", ""), "rgb(9,8,7)");
}

TEST(ServeLimits, DecodedPixelsInFlightAreBounded) {
  ServeOptions o = test_options();
  o.max_pixels_in_flight = 20000;  // one 100x100 image; a second waits its turn (503)
  TestServer s(o);
  Gate hold;
  s.probe->hold = &hold;
  std::string body = json{{"image", b64(png_of(1, 2, 3, 100, 100))}, {"prompt", question_of("Fit")}}.dump();
  Reply first;
  std::thread t([&] { first = post_raw(s, body, "application/json"); });
  for (int i = 0; i < 400 && s.probe->entered == 0; ++i) std::this_thread::sleep_for(5ms);
  ASSERT_EQ(s.probe->entered, 1);
  Reply second = post_raw(s, json{{"image", b64(png_of(1, 2, 3, 150, 100))}}.dump(), "application/json");
  EXPECT_EQ(second.status, 503);
  EXPECT_NE(second.body.value("error", "").find("limit of 20000 pixels in flight"), std::string::npos) << second.text;
  hold.open();
  t.join();
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(post_raw(s, body, "application/json").status, 200);  // the budget was given back
}

TEST(ServeLimits, MalformedRequestsAreRefusedAndTheServerGoesOn) {
  TestServer s;
  struct Case {
    std::string name, bytes;
    int status;
    std::string error_has;
  };
  std::vector<Case> cases = {
      // The fuzzer's first finding: a refusal deep in the chunk parser freed the connection under it.
      {"bad chunk size", "POST /describe HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400,
       "bad chunk size"},
      {"no CRLF after chunk", "POST /describe HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", 400,
       "no CRLF"},
      {"length and chunked", "POST /describe HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
       "both"},
      {"two lengths", "POST /describe HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400,
       "Content-Length"},
      {"other transfer coding", "POST /describe HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "gzip"},
      {"bad request line", "HELLO\r\n\r\n", 400, "request line"},
      {"bad header", "GET /ping HTTP/1.1\r\nno colon here\r\n\r\n", 400, "header line 1"},
      {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "'/'"},
      {"wrong method", "DELETE /invocations HTTP/1.1\r\n\r\n", 405, "DELETE"},
  };
  for (const Case& k : cases) {
    RawConn c(s.port);
    c.send_all(k.bytes);
    ::shutdown(c.fd, SHUT_WR);
    Reply r = raw_reply(c.read_answer());
    EXPECT_EQ(r.status, k.status) << k.name << ": " << r.text;
    EXPECT_NE(r.body.value("error", "").find(k.error_has), std::string::npos) << k.name << ": " << r.text;
  }
  // Two requests in one write (pipelined) are both answered, in order.
  RawConn c(s.port);
  c.send_all("GET /ping HTTP/1.1\r\n\r\nGET /nothing HTTP/1.1\r\nConnection: close\r\n\r\n");
  std::string both;
  for (int i = 0; i < 2; ++i) both += c.read_answer();
  EXPECT_EQ(both.rfind("HTTP/1.1 200", 0), 0u) << both;
  EXPECT_NE(both.find("HTTP/1.1 404"), std::string::npos) << both;
  EXPECT_EQ(s.probe->snapshot().size(), 0u);
  EXPECT_EQ(reply_of(s.client().Get("/ping")).status, 200);
}

}  // namespace
}  // namespace tailor
