// The services a batch run talks to, simulated on mock::Server (mock_server.h) for the batch tests:
// S3 (objects, multipart uploads), Bedrock's control plane (CreateModelInvocationJob,
// GetModelInvocationJob: Submitted → InProgress → Completed, the output written from the input
// with some records failed) and OpenAI's Files + Batches API. Every AWS request's SigV4 signature
// is recomputed independently (mock::verify_sigv4) and every OpenAI request's bearer key checked;
// problems land in the servers' `problems`.
#pragma once
#include <atomic>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "mock_server.h"

namespace mock {

// The answer a mock model gives for a prompt: names its facts, so a wrong join shows.
inline std::string description_for(const std::string& user_prompt) {
  size_t a = user_prompt.find("<product_attributes>"), b = user_prompt.find("</product_attributes>");
  std::string facts = a == std::string::npos ? user_prompt : user_prompt.substr(a + 20, b - a - 20);
  return "Described: " + facts;
}

// Whether the mock fails record number n of a job (1-based): every 7th, from the 3rd.
inline bool record_fails(int n) { return n % 7 == 3; }

struct S3 {
  Server server;
  std::string key_id, secret, region;
  std::map<std::string, std::string> objects;  // "bucket/key" (decoded) →
  std::map<std::string, std::map<int, std::string>> uploads;  // upload id → parts
  int multipart_completed = 0, aborted = 0, next_upload = 0;

  S3(std::string key_id_, std::string secret_, std::string region_)
      : key_id(std::move(key_id_)), secret(std::move(secret_)), region(std::move(region_)) {
    server.check = [this](const httplib::Request& r) { return verify_sigv4(r, key_id, secret, region, "s3", true); };
    server.respond = [this](const httplib::Request& r) { return handle(r); };
  }

  static Reply xml(int status, const std::string& body) { return {status, body, {{"Content-Type", "application/xml"}}}; }

  Reply handle(const httplib::Request& r) {
    std::string key = r.path.substr(1);  // path style: bucket/key
    if (r.method == "PUT" && r.has_param("partNumber")) {
      auto up = uploads.find(r.get_param_value("uploadId"));
      if (up == uploads.end()) return xml(404, "<Error><Code>NoSuchUpload</Code></Error>");
      int n = std::stoi(r.get_param_value("partNumber"));
      up->second[n] = r.body;
      return {200, "", {{"ETag", "\"etag-" + std::to_string(n) + "-" + sha256(r.body).substr(0, 8) + "\""}}};
    }
    if (r.method == "PUT") {
      objects[key] = r.body;
      return {200, "", {{"ETag", "\"" + sha256(r.body).substr(0, 16) + "\""}}};
    }
    if (r.method == "POST" && r.has_param("uploads")) {
      std::string id = "upload-" + std::to_string(++next_upload);
      uploads[id] = {};
      return xml(200, "<InitiateMultipartUploadResult><Bucket>b</Bucket><UploadId>" + id +
                          "</UploadId></InitiateMultipartUploadResult>");
    }
    if (r.method == "POST" && r.has_param("uploadId")) {
      auto up = uploads.find(r.get_param_value("uploadId"));
      if (up == uploads.end()) return xml(404, "<Error><Code>NoSuchUpload</Code></Error>");
      std::string whole;
      for (const auto& [n, part] : up->second) {
        std::string etag = "\"etag-" + std::to_string(n) + "-" + sha256(part).substr(0, 8) + "\"";
        if (r.body.find("<PartNumber>" + std::to_string(n) + "</PartNumber><ETag>" + etag + "</ETag>") == std::string::npos)
          return xml(400, "<Error><Code>InvalidPart</Code><Message>part " + std::to_string(n) + "</Message></Error>");
        whole += part;
      }
      objects[key] = whole;
      uploads.erase(up);
      multipart_completed++;
      return xml(200, "<CompleteMultipartUploadResult><Key>" + key + "</Key></CompleteMultipartUploadResult>");
    }
    if (r.method == "DELETE" && r.has_param("uploadId")) {
      uploads.erase(r.get_param_value("uploadId"));
      aborted++;
      return {204, ""};
    }
    if (r.method == "GET") {
      auto it = objects.find(key);
      if (it == objects.end()) return xml(404, "<Error><Code>NoSuchKey</Code><Message>no " + key + "</Message></Error>");
      return {200, it->second};
    }
    return xml(400, "<Error><Code>Unexpected</Code></Error>");
  }
};

// "s3://bucket/key" → the S3 mock's "bucket/key".
inline std::string s3_key(const std::string& uri) { return uri.substr(5); }

struct BedrockControl {
  Server server;
  S3& s3;
  std::string key_id, secret, region;
  struct Job {
    std::string arn, name, input, output, model, role;
    int polls = 0;
    std::string status = "Submitted";
  };
  std::map<std::string, Job> jobs;           // arn →
  std::map<std::string, std::string> by_token;  // clientRequestToken → arn
  int creates = 0, gets = 0;
  std::atomic<int> in_progress_polls{2};  // polls answered InProgress before Completed (large: wait)
  std::atomic<int> throttle_every{0};     // > 0: every n-th GET answers 429 ThrottlingException first
  std::atomic<int> fail_every{0};         // > 0: every n-th GET answers 500 first
  std::atomic<bool> fail_jobs{false};     // jobs end Failed (no output) instead of Completed

  BedrockControl(S3& s3_, std::string key_id_, std::string secret_, std::string region_)
      : s3(s3_), key_id(std::move(key_id_)), secret(std::move(secret_)), region(std::move(region_)) {
    server.check = [this](const httplib::Request& r) { return verify_sigv4(r, key_id, secret, region, "bedrock"); };
    server.respond = [this](const httplib::Request& r) { return handle(r); };
  }

  Reply handle(const httplib::Request& r) {
    using json = nlohmann::json;
    if (r.method == "POST" && r.path == "/model-invocation-job") {
      creates++;
      json b = json::parse(r.body, nullptr, false);
      if (b.is_discarded()) return {400, R"({"message":"body is not JSON"})"};
      std::string token = b.value("clientRequestToken", "");
      if (by_token.count(token)) return {200, json{{"jobArn", by_token[token]}}.dump()};  // idempotent
      Job j;
      j.arn = "arn:aws:bedrock:" + region + ":123456789012:model-invocation-job/job" + std::to_string(jobs.size() + 1);
      j.name = b.value("jobName", "");
      j.model = b.value("modelId", "");
      j.role = b.value("roleArn", "");
      j.input = b["inputDataConfig"]["s3InputDataConfig"].value("s3Uri", "");
      j.output = b["outputDataConfig"]["s3OutputDataConfig"].value("s3Uri", "");
      if (j.name.empty() || j.role.empty() || j.input.empty() || j.output.empty() || j.model.empty())
        return {400, R"({"message":"missing field"})", {{"x-amzn-ErrorType", "ValidationException"}}};
      if (!s3.objects.count(s3_key(j.input)))
        return {400, R"({"message":"no input object"})", {{"x-amzn-ErrorType", "ValidationException"}}};
      if (!token.empty()) by_token[token] = j.arn;
      jobs[j.arn] = j;
      return {200, json{{"jobArn", j.arn}}.dump()};
    }
    const std::string prefix = "/model-invocation-job/";
    if (r.method == "GET" && r.path.rfind(prefix, 0) == 0) {
      gets++;
      if (throttle_every > 0 && gets % throttle_every == 0)
        return {429, R"({"message":"Rate exceeded"})", {{"x-amzn-ErrorType", "ThrottlingException"}}};
      if (fail_every > 0 && gets % fail_every == 1 && gets > 1) return {500, R"({"message":"internal"})"};
      auto it = jobs.find(r.path.substr(prefix.size()));
      if (it == jobs.end()) return {404, R"({"message":"no such job"})", {{"x-amzn-ErrorType", "ResourceNotFoundException"}}};
      Job& j = it->second;
      j.polls++;
      if (j.polls == 1) j.status = "Submitted";
      else if (j.polls <= 1 + in_progress_polls) j.status = "InProgress";
      else if (fail_jobs) j.status = "Failed";
      else if (j.status != "Completed") run(j);
      json answer = {{"jobArn", j.arn}, {"jobName", j.name}, {"status", j.status}, {"modelId", j.model}};
      if (j.status == "Failed") answer["message"] = "The role cannot read the input";
      return {200, answer.dump()};
    }
    return {404, R"({"message":"unknown route"})"};
  }

  // Writes {output}{job id}/input.jsonl.out from the input: Anthropic answers, some records failed.
  void run(Job& j) {
    using json = nlohmann::json;
    std::string in = s3.objects[s3_key(j.input)], out;
    size_t s = 0;
    int n = 0;
    while (s < in.size()) {
      size_t e = in.find('\n', s);
      if (e == std::string::npos) e = in.size();
      json rec = json::parse(in.substr(s, e - s));
      s = e + 1;
      ++n;
      json line = {{"recordId", rec["recordId"]}, {"modelInput", rec["modelInput"]}};
      if (record_fails(n)) {
        line["error"] = {{"errorCode", 400}, {"errorMessage", "Malformed input request, please reformat"}};
      } else {
        std::string user = rec["modelInput"]["messages"][0]["content"];
        line["modelOutput"] = {{"content", {{{"type", "text"}, {"text", description_for(user)}}}},
                               {"usage", {{"input_tokens", 100 + n}, {"output_tokens", 50}}}};
      }
      out += line.dump() + "\n";
    }
    std::string id = j.arn.substr(j.arn.rfind('/') + 1);
    s3.objects[s3_key(j.output) + id + "/input.jsonl.out"] = out;
    s3.objects[s3_key(j.output) + id + "/manifest.json.out"] = json{{"totalRecordCount", n}}.dump();
    j.status = "Completed";
  }
};

struct OpenAIBatches {
  Server server;
  std::string key;
  std::map<std::string, std::string> files;  // id → content
  struct Batch {
    std::string id, input, output, errors;
    int polls = 0;
    std::string status = "validating";
  };
  std::map<std::string, Batch> batches;
  int creates = 0, uploads = 0;
  std::atomic<int> in_progress_polls{2};

  explicit OpenAIBatches(std::string key_) : key(std::move(key_)) {
    server.check = [this](const httplib::Request& r) -> std::string {
      if (r.get_header_value("Authorization") != "Bearer " + key) return "bad Authorization on " + r.method + " " + r.path;
      return "";
    };
    server.respond = [this](const httplib::Request& r) { return handle(r); };
  }

  Reply handle(const httplib::Request& r) {
    using json = nlohmann::json;
    if (r.method == "POST" && r.path == "/v1/files") {
      uploads++;
      if (!r.is_multipart_form_data() || !r.has_file("file") || !r.has_file("purpose"))
        return {400, R"({"error":{"message":"expected multipart purpose + file"}})"};
      if (r.get_file_value("purpose").content != "batch") return {400, R"({"error":{"message":"purpose"}})"};
      std::string id = "file-in-" + std::to_string(files.size() + 1);
      files[id] = r.get_file_value("file").content;
      return {200, json{{"id", id}, {"object", "file"}, {"purpose", "batch"}}.dump()};
    }
    if (r.method == "POST" && r.path == "/v1/batches") {
      creates++;
      json b = json::parse(r.body, nullptr, false);
      if (b.is_discarded() || b.value("endpoint", "") != "/v1/chat/completions" || b.value("completion_window", "") != "24h" ||
          !files.count(b.value("input_file_id", "")))
        return {400, R"({"error":{"message":"bad batch request"}})"};
      Batch batch;
      batch.id = "batch_" + std::to_string(batches.size() + 1);
      batch.input = b["input_file_id"];
      batches[batch.id] = batch;
      return {200, json{{"id", batch.id}, {"status", batch.status}, {"input_file_id", batch.input}}.dump()};
    }
    if (r.method == "GET" && r.path == "/v1/batches") {
      json data = json::array();
      for (const auto& [id, b] : batches) data.push_back({{"id", id}, {"input_file_id", b.input}, {"status", b.status}});
      return {200, json{{"object", "list"}, {"data", data}}.dump()};
    }
    if (r.method == "GET" && r.path.rfind("/v1/batches/", 0) == 0) {
      auto it = batches.find(r.path.substr(12));
      if (it == batches.end()) return {404, R"({"error":{"message":"no such batch"}})"};
      Batch& b = it->second;
      b.polls++;
      if (b.polls == 1) b.status = "validating";
      else if (b.polls <= 1 + in_progress_polls) b.status = "in_progress";
      else if (b.polls == 2 + in_progress_polls) b.status = "finalizing";
      else if (b.status != "completed") run(b);
      json j = {{"id", b.id}, {"status", b.status}, {"input_file_id", b.input},
                {"request_counts", {{"total", 0}, {"completed", 0}, {"failed", 0}}}};
      if (!b.output.empty()) j["output_file_id"] = b.output;
      if (!b.errors.empty()) j["error_file_id"] = b.errors;
      return {200, j.dump()};
    }
    if (r.method == "GET" && r.path.rfind("/v1/files/", 0) == 0) {
      std::string id = r.path.substr(10, r.path.find("/content") - 10);
      if (!files.count(id)) return {404, R"({"error":{"message":"no such file"}})"};
      return {200, files[id]};
    }
    return {404, R"({"error":{"message":"unknown route"}})"};
  }

  void run(Batch& b) {
    using json = nlohmann::json;
    std::string in = files[b.input], ok, bad;
    size_t s = 0;
    int n = 0;
    while (s < in.size()) {
      size_t e = in.find('\n', s);
      if (e == std::string::npos) e = in.size();
      json rec = json::parse(in.substr(s, e - s));
      s = e + 1;
      ++n;
      if (record_fails(n)) {
        bad += json{{"id", "req_" + std::to_string(n)}, {"custom_id", rec["custom_id"]},
                    {"response", {{"status_code", 400}, {"body", {{"error", {{"message", "Invalid request"}}}}}}},
                    {"error", nullptr}}.dump() + "\n";
      } else {
        std::string user = rec["body"]["messages"][1]["content"];
        json body = {{"choices", {{{"message", {{"role", "assistant"}, {"content", description_for(user)}}}}}},
                     {"usage", {{"prompt_tokens", 200 + n}, {"completion_tokens", 60}}}};
        ok += json{{"id", "req_" + std::to_string(n)}, {"custom_id", rec["custom_id"]},
                   {"response", {{"status_code", 200}, {"body", body}}}, {"error", nullptr}}.dump() + "\n";
      }
    }
    b.output = "file-out-" + b.id;
    b.errors = "file-err-" + b.id;
    files[b.output] = ok;
    files[b.errors] = bad;
    b.status = "completed";
  }
};

}  // namespace mock
