// OpenAI's Batch API: the records as a JSON Lines file ({"custom_id", "method": "POST", "url":
// "/v1/chat/completions", "body"}) uploaded with POST /files (purpose "batch", multipart/form-data),
// POST /batches (completion_window 24h), GET /batches/{id} until it ends, then the output and error
// files (GET /files/{id}/content), joined by custom_id.
#include <nlohmann/json.hpp>
#include <random>

#include "util/error.h"
#include "util/text.h"
#include "write/batch.h"

namespace tailor {

namespace {

using json = nlohmann::json;

class OpenAIBatch : public BatchService {
 public:
  OpenAIBatch(const WriterConfig& config, const BatchOptions& options) : config_(config), o_(options) {
    model_ = config.model.empty() ? kDefaultOpenAIModel : config.model;
    if (!config.api_key_env.empty()) {
      const char* k = std::getenv(config.api_key_env.c_str());
      if (!k || !*k)
        throw Error("describe --batch with --writer openai needs an API key in $" + config.api_key_env +
                    " (or --api-key-env \"\" for a server that takes no key)");
      key_ = k;
    }
    base_ = config.base_url;
    while (!base_.empty() && base_.back() == '/') base_.pop_back();
    shown_base_ = url_without_userinfo(base_);
    url_password_ = url_userinfo_password(base_);
  }

  std::string name() const override { return "OpenAI Batch API"; }
  int64_t min_records() const override { return 1; }

  std::string input_line(const std::string& record_id, const ProductAttributes& facts) const override {
    json body = {{"model", model_},
                 {"messages",
                  {{{"role", "system"}, {"content", config_.system_prompt}},
                   {{"role", "user"}, {"content", user_prompt(config_, facts)}}}},
                 {"max_tokens", config_.max_tokens},
                 {"temperature", config_.temperature}};
    return json{{"custom_id", record_id}, {"method", "POST"}, {"url", "/v1/chat/completions"}, {"body", body}}.dump();
  }

  void submit(BatchJob& job, const std::string& input_jsonl, const std::function<void()>& save) override {
    if (job.phase == "prepared") {
      job.input = upload(job.name + ".jsonl", input_jsonl);
      job.phase = "uploaded";
      save();
    }
    // A run killed after POST /batches but before saving its id: the batch made from our input
    // file is found instead of a second one being created.
    if (job.phase == "creating") job.id = find_batch_of(job.input);
    if (job.id.empty()) {
      job.phase = "creating";
      save();
      json body = {{"input_file_id", job.input},
                   {"endpoint", "/v1/chat/completions"},
                   {"completion_window", "24h"},
                   {"metadata", {{"tailor_job", job.name}}}};
      HttpResponse r = send("POST", "/batches", body.dump(), "application/json");
      if (!ok(r)) throw Error(error_text("creating the batch for " + job.name, r));
      json j = json::parse(r.body, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("id") || !j["id"].is_string())
        throw Error(shown_base_ + "/batches: the answer for " + job.name + " has no id: " +
                    error_body_message(r.body, secrets()));
      job.id = j["id"].get<std::string>();
      job.status = j.value("status", "validating");
    }
    job.phase = "submitted";
    save();
  }

  BatchPoll poll(BatchJob& job) override {
    HttpResponse r = send("GET", "/batches/" + job.id, "", "");
    if (!ok(r)) throw Error(error_text("reading batch " + job.id, r));
    json j = json::parse(r.body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("status") || !j["status"].is_string())
      throw Error(shown_base_ + "/batches/" + job.id + ": the answer has no status: " + error_body_message(r.body, secrets()));
    job.status = j["status"].get<std::string>();
    auto id_of = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string(); };
    job.output = id_of("output_file_id");
    job.error_output = id_of("error_file_id");
    job.message.clear();
    if (j.contains("errors") && j["errors"].is_object() && j["errors"].contains("data") && j["errors"]["data"].is_array())
      for (const auto& e : j["errors"]["data"])
        if (e.is_object() && e.contains("message") && e["message"].is_string())
          job.message += (job.message.empty() ? "" : "; ") + e["message"].get<std::string>();
    BatchPoll p;
    p.progress = job.status;
    if (j.contains("request_counts") && j["request_counts"].is_object()) {
      const json& c = j["request_counts"];
      p.progress += ", " + std::to_string(c.value("completed", 0)) + " of " + std::to_string(c.value("total", 0)) +
                    " requests completed, " + std::to_string(c.value("failed", 0)) + " failed";
    }
    if (!job.message.empty()) p.progress += ": " + redact(job.message, secrets());
    p.finished = job.status == "completed" || job.status == "failed" || job.status == "expired" ||
                 job.status == "cancelled";
    // An expired or cancelled batch keeps what it finished in its output file.
    p.has_output = p.finished && job.status != "failed";
    return p;
  }

  std::vector<BatchResult> results(const BatchJob& job) override {
    std::vector<BatchResult> out;
    for (const std::string& file : {job.output, job.error_output}) {
      if (file.empty()) continue;
      HttpResponse r = send("GET", "/files/" + file + "/content", "", "");
      if (!ok(r)) throw Error(error_text("downloading file " + file + " of batch " + job.id, r));
      int line_no = 0;
      for (const std::string& line : text_lines(r.body)) {
        ++line_no;
        if (trim(line).empty()) continue;
        std::string where = "file " + file + " of batch " + job.id + ", line " + std::to_string(line_no);
        out.push_back(result_of(line, where, job.id));
      }
    }
    return out;
  }

 private:
  static bool ok(const HttpResponse& r) { return r.transport == TransportError::none && r.status >= 200 && r.status < 300; }
  std::vector<std::string> secrets() const { return known_secrets({key_, url_password_}); }

  BatchResult result_of(const std::string& line, const std::string& where, const std::string& batch_id) const {
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("custom_id") || !j["custom_id"].is_string())
      throw Error(where + ": not a batch output line (a JSON object with \"custom_id\")");
    BatchResult r;
    r.record_id = j["custom_id"].get<std::string>();
    const json none;
    const json& resp = j.contains("response") && j["response"].is_object() ? j["response"] : none;
    int status = resp.is_object() && resp.contains("status_code") && resp["status_code"].is_number_integer()
                     ? resp["status_code"].get<int>()
                     : 0;
    const json& body = resp.is_object() && resp.contains("body") ? resp["body"] : none;
    if (j.contains("error") && j["error"].is_object()) {
      // No record id in the reason: the summary groups products by reason and names their ids.
      r.error = "OpenAI batch " + batch_id + ": the request failed: " +
                error_body_message(json{{"error", j["error"]}}.dump(), secrets());
      return r;
    }
    if (status != 200) {
      r.error = "OpenAI batch " + batch_id + ": the request failed (HTTP " + std::to_string(status) +
                "): " + error_body_message(body.is_null() ? line : body.dump(), secrets());
      return r;
    }
    r.usage = usage_of_answer(body);
    if (body.is_object() && body.contains("choices") && body["choices"].is_array() && !body["choices"].empty() &&
        body["choices"][0].is_object() && body["choices"][0].contains("message") &&
        body["choices"][0]["message"].is_object() && body["choices"][0]["message"].contains("content") &&
        body["choices"][0]["message"]["content"].is_string())
      r.text = trim(body["choices"][0]["message"]["content"].get<std::string>());
    if (r.text.empty()) r.error = "OpenAI batch " + batch_id + ": the answer has no choices[0].message.content";
    return r;
  }

  // The id of the batch made from `input_file_id` (GET /batches, newest first); "" when none.
  std::string find_batch_of(const std::string& input_file_id) {
    HttpResponse r = send("GET", "/batches?limit=100", "", "");
    if (!ok(r)) throw Error(error_text("listing batches", r));
    json j = json::parse(r.body, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("data") && j["data"].is_array())
      for (const auto& b : j["data"])
        if (b.is_object() && b.value("input_file_id", "") == input_file_id && b.contains("id") && b["id"].is_string())
          return b["id"].get<std::string>();
    return "";
  }

  // POST /files, purpose "batch", the file as multipart/form-data; returns its id.
  std::string upload(const std::string& filename, const std::string& data) {
    std::random_device rd;
    std::string boundary = "tailor-" + std::to_string(rd()) + std::to_string(rd());
    std::string body = "--" + boundary + "\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n" +
                       "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + filename +
                       "\"\r\nContent-Type: application/jsonl\r\n\r\n" + data + "\r\n--" + boundary + "--\r\n";
    HttpResponse r = send("POST", "/files", body, "multipart/form-data; boundary=" + boundary);
    if (!ok(r)) throw Error(error_text("uploading the batch input " + filename, r));
    json j = json::parse(r.body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("id") || !j["id"].is_string())
      throw Error(shown_base_ + "/files: the answer for " + filename + " has no id: " + error_body_message(r.body, secrets()));
    return j["id"].get<std::string>();
  }

  HttpResponse send(const std::string& method, const std::string& path, const std::string& body,
                    const std::string& content_type) const {
    HttpRequest req;
    req.method = method;
    req.url = base_ + path;
    req.body = body;
    req.headers = {{"Accept", "application/json"}};
    if (!content_type.empty()) req.headers.push_back({"Content-Type", content_type});
    if (!key_.empty()) req.headers.push_back({"Authorization", "Bearer " + key_});
    return http_send(req, config_.http);
  }

  std::string error_text(const std::string& what, const HttpResponse& r) const {
    std::string where = shown_base_ + " (" + what + ")";
    if (r.transport != TransportError::none)
      return redact(where + ": " + transport_error_text(r, parse_url(base_).host_header()), secrets());
    std::string code = http_error_code(r);
    std::string t = where + " failed: HTTP " + std::to_string(r.status) + (code.empty() ? "" : " " + code) + ": " +
                    error_body_message(r.body, secrets()) +
                    (r.attempts > 1 ? " (after " + std::to_string(r.attempts) + " attempts)" : "");
    if (r.status == 401)
      t += "; the key is from $" + (config_.api_key_env.empty() ? std::string("(none sent)") : config_.api_key_env);
    return redact(t, secrets());
  }

  WriterConfig config_;
  BatchOptions o_;
  std::string model_, key_, base_, shown_base_, url_password_;
};

}  // namespace

std::unique_ptr<BatchService> make_openai_batch(const WriterConfig& config, const BatchOptions& options) {
  return std::make_unique<OpenAIBatch>(config, options);
}

}  // namespace tailor
