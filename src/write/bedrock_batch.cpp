// Bedrock batch inference: the records as JSON Lines in S3 ({"recordId", "modelInput": the model's
// own InvokeModel body}), CreateModelInvocationJob and GetModelInvocationJob on the control plane
// (bedrock.{region}.amazonaws.com, SigV4 service "bedrock"), and the output
// {s3 output}/{job id}/{input file}.out read back: {"recordId", "modelInput", "modelOutput"} or
// {"recordId", ..., "error": {"errorCode", "errorMessage"}} per record.
#include <chrono>
#include <nlohmann/json.hpp>

#include "util/aws_config.h"
#include "util/error.h"
#include "util/s3.h"
#include "util/sigv4.h"
#include "util/text.h"
#include "write/batch.h"

namespace tailor {

namespace {

using json = nlohmann::json;

// The model family decides the body: a cross-region profile ("us.anthropic...") is its model's.
std::string model_family(const std::string& model) {
  std::string m = model;
  for (const char* profile : {"us.", "eu.", "apac.", "global."})
    if (m.rfind(profile, 0) == 0) m = m.substr(std::string(profile).size());
  for (const char* family : {"anthropic.", "amazon.nova", "meta.llama3"})
    if (m.rfind(family, 0) == 0) return family;
  throw Error("describe --batch with Bedrock writes each record in its model's own InvokeModel body and knows "
              "Anthropic (anthropic.*), Amazon Nova (amazon.nova-*) and Meta Llama 3 (meta.llama3*) models; \"" +
              model + "\" is none of them (describe it on demand: without --batch, the Converse API takes any model)");
}

json native_body(const WriterConfig& c, const std::string& family, const ProductAttributes& facts) {
  std::string user = user_prompt(c, facts);
  if (family == "anthropic.")
    return {{"anthropic_version", "bedrock-2023-05-31"},
            {"system", c.system_prompt},
            {"messages", {{{"role", "user"}, {"content", user}}}},
            {"max_tokens", c.max_tokens},
            {"temperature", c.temperature}};
  if (family == "amazon.nova")
    return {{"schemaVersion", "messages-v1"},
            {"system", {{{"text", c.system_prompt}}}},
            {"messages", {{{"role", "user"}, {"content", {{{"text", user}}}}}}},
            {"inferenceConfig", {{"maxTokens", c.max_tokens}, {"temperature", c.temperature}}}};
  // Llama 3's chat template, as Bedrock's InvokeModel takes a prompt string for Meta models.
  std::string prompt = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" + c.system_prompt +
                       "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n" + user +
                       "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
  return {{"prompt", prompt}, {"max_gen_len", c.max_tokens}, {"temperature", c.temperature}};
}

// The description in a model's InvokeModel answer; "" when it has none where the family puts it.
std::string native_text(const std::string& family, const json& out) {
  const json* text = nullptr;
  if (family == "anthropic." && out.is_object() && out.contains("content") && out["content"].is_array() &&
      !out["content"].empty() && out["content"][0].is_object() && out["content"][0].contains("text"))
    text = &out["content"][0]["text"];
  if (family == "amazon.nova" && out.is_object() && out.contains("output") && out["output"].is_object() &&
      out["output"].contains("message") && out["output"]["message"].is_object() &&
      out["output"]["message"].contains("content") && out["output"]["message"]["content"].is_array() &&
      !out["output"]["message"]["content"].empty() && out["output"]["message"]["content"][0].is_object() &&
      out["output"]["message"]["content"][0].contains("text"))
    text = &out["output"]["message"]["content"][0]["text"];
  if (family == "meta.llama3" && out.is_object() && out.contains("generation")) text = &out["generation"];
  return text && text->is_string() ? trim(text->get<std::string>()) : std::string();
}

class BedrockBatch : public BatchService {
 public:
  BedrockBatch(const WriterConfig& config, const BatchOptions& options) : config_(config), o_(options) {
    model_ = config.model.empty() ? kDefaultBedrockModel : config.model;
    family_ = model_family(model_);
    if (o_.s3_prefix.empty())
      throw Error("describe --batch with --writer bedrock needs --batch-s3 s3://bucket/prefix (where the job's "
                  "records and output go)");
    S3Uri prefix = parse_s3_uri(o_.s3_prefix);
    prefix_ = "s3://" + prefix.bucket + "/" + prefix.key;
    while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
    if (o_.role_arn.empty())
      throw Error("describe --batch with --writer bedrock needs --batch-role-arn: the IAM service role Bedrock reads "
                  "and writes " + prefix_ + " with");
    // S3 takes no Bedrock API key: the batch path signs everything with AWS credentials.
    try {
      creds_ = resolve_aws_credentials();
    } catch (const Error& e) {
      throw Error(std::string("describe --batch with Bedrock signs its S3 and job requests with AWS credentials (a "
                              "Bedrock API key is not enough for S3): ") + e.what());
    }
    region_ = resolve_aws_region(config.region);
    control_ = resolve_bedrock_control_endpoint(o_.control_endpoint, region_);
    S3ClientOptions so;
    so.region = region_;
    so.endpoint = resolve_s3_endpoint(o_.s3_endpoint, region_);
    so.path_style = o_.s3_path_style;
    so.part_bytes = o_.s3_part_bytes;
    so.http = config.http;
    s3_ = std::make_unique<S3Client>(creds_, so);
  }

  std::string name() const override { return "Bedrock batch inference"; }
  int64_t min_records() const override { return 100; }

  std::string input_line(const std::string& record_id, const ProductAttributes& facts) const override {
    return json{{"recordId", record_id}, {"modelInput", native_body(config_, family_, facts)}}.dump();
  }

  void submit(BatchJob& job, const std::string& input_jsonl, const std::function<void()>& save) override {
    const std::string folder = prefix_ + "/" + job.name;
    if (job.phase == "prepared") {
      job.input = folder + "/input.jsonl";  // Bedrock wants the .jsonl extension
      job.output = folder + "/output/";
      s3_->put_object(job.input, input_jsonl, "application/jsonl");
      job.phase = "uploaded";
      save();
    }
    // The job name is the clientRequestToken too: after a crash here the same request returns
    // the job already created instead of a second one.
    json body = {{"jobName", job.name},
                 {"clientRequestToken", job.name},
                 {"roleArn", o_.role_arn},
                 {"modelId", model_},
                 {"inputDataConfig", {{"s3InputDataConfig", {{"s3Uri", job.input}, {"s3InputFormat", "JSONL"}}}}},
                 {"outputDataConfig", {{"s3OutputDataConfig", {{"s3Uri", job.output}}}}},
                 {"timeoutDurationInHours", o_.timeout_hours}};
    HttpResponse r = control("POST", "/model-invocation-job", body.dump());
    if (!ok(r)) throw Error(control_error("CreateModelInvocationJob for " + job.name, r));
    json j = json::parse(r.body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("jobArn") || !j["jobArn"].is_string())
      throw Error("Bedrock's CreateModelInvocationJob answer for " + job.name + " has no jobArn: " +
                  error_body_message(r.body, secrets()));
    job.id = j["jobArn"].get<std::string>();
    job.status = "Submitted";
    job.phase = "submitted";
    save();
  }

  BatchPoll poll(BatchJob& job) override {
    HttpResponse r = control("GET", "/model-invocation-job/" + uri_encode(job.id, false), "");
    if (!ok(r)) throw Error(control_error("GetModelInvocationJob " + job.id, r));
    json j = json::parse(r.body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("status") || !j["status"].is_string())
      throw Error("Bedrock's GetModelInvocationJob answer for " + job.id + " has no status: " +
                  error_body_message(r.body, secrets()));
    job.status = j["status"].get<std::string>();
    job.message = j.contains("message") && j["message"].is_string() ? j["message"].get<std::string>() : "";
    BatchPoll p;
    p.progress = job.status;
    auto count = [&](const char* k) { return j.contains(k) && j[k].is_number_integer() ? j[k].get<int64_t>() : -1; };
    if (count("processedRecordCount") >= 0 && count("totalRecordCount") > 0)
      p.progress += ", " + std::to_string(count("processedRecordCount")) + " of " +
                    std::to_string(count("totalRecordCount")) + " records processed";
    if (!job.message.empty() && job.status != "InProgress") p.progress += ": " + job.message;
    // Stopped and Expired jobs may have written part of the output; Failed ones have none.
    p.finished = job.status == "Completed" || job.status == "PartiallyCompleted" || job.status == "Failed" ||
                 job.status == "Stopped" || job.status == "Expired";
    p.has_output = job.status == "Completed" || job.status == "PartiallyCompleted" || job.status == "Stopped" ||
                   job.status == "Expired";
    return p;
  }

  std::vector<BatchResult> results(const BatchJob& job) override {
    // {output}/{job id: the ARN's last segment}/{input file name}.out
    std::string job_id = job.id.substr(job.id.rfind('/') + 1);
    std::string uri = job.output + job_id + "/input.jsonl.out";
    std::string text;
    try {
      text = s3_->get_object(uri);
    } catch (const Error& e) {
      if (job.status == "Completed" || job.status == "PartiallyCompleted") throw;
      return {};  // a stopped job may have written nothing
    }
    std::vector<BatchResult> out;
    int line_no = 0;
    for (const std::string& line : text_lines(text)) {
      ++line_no;
      if (trim(line).empty()) continue;
      std::string where = uri + ":" + std::to_string(line_no);
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("recordId") || !j["recordId"].is_string())
        throw Error(where + ": not a batch output record (a JSON object with \"recordId\")");
      BatchResult r;
      r.record_id = j["recordId"].get<std::string>();
      if (j.contains("error") && !j["error"].is_null()) {
        const json& e = j["error"];
        std::string code = e.is_object() && e.contains("errorCode") ? e["errorCode"].dump() : "";
        std::string msg = e.is_object() && e.contains("errorMessage") && e["errorMessage"].is_string()
                              ? e["errorMessage"].get<std::string>()
                              : e.dump();
        // No record id in the reason: the summary groups products by reason and names their ids.
        r.error = "Bedrock batch job " + job_id + ": the record failed" +
                  (code.empty() ? "" : " (error " + code + ")") + ": " + redact(msg, secrets());
      } else if (!j.contains("modelOutput")) {
        r.error = uri + ": a record has neither modelOutput nor error";
      } else {
        r.text = native_text(family_, j["modelOutput"]);
        r.usage = usage_of_answer(j["modelOutput"]);
        if (r.text.empty())
          r.error = uri + ": a record has no description in its modelOutput (model \"" + model_ + "\")";
      }
      out.push_back(std::move(r));
    }
    return out;
  }

 private:
  static bool ok(const HttpResponse& r) { return r.transport == TransportError::none && r.status >= 200 && r.status < 300; }

  std::vector<std::string> secrets() const {
    return known_secrets({creds_.secret_access_key, creds_.session_token, creds_.access_key_id});
  }

  // A SigV4-signed request to the control plane; `path` is as sent (the ARN percent-encoded once).
  HttpResponse control(const std::string& method, const std::string& path, const std::string& body) const {
    HttpRequest req;
    req.method = method;
    req.url = control_ + path;
    req.body = body;
    req.headers = {{"Accept", "application/json"}};
    if (method == "POST") req.headers.push_back({"Content-Type", "application/json"});
    ParsedUrl u = parse_url(req.url);
    SigV4Request sreq{method, u.path, u.query, req.headers, req.body};
    SigV4Options so;
    so.region = region_;
    so.service = "bedrock";
    so.amz_date = amz_date_from_unix(std::chrono::duration_cast<std::chrono::seconds>(
                                         std::chrono::system_clock::now().time_since_epoch()).count());
    sigv4_sign_request(sreq, u.host_header(), creds_, so);
    req.headers = sreq.headers;
    return http_send(req, config_.http);
  }

  std::string control_error(const std::string& what, const HttpResponse& r) const {
    if (r.transport != TransportError::none)
      return redact("Bedrock " + what + ": " + transport_error_text(r, parse_url(control_).host_header()), secrets());
    std::string code = http_error_code(r);
    std::string t = "Bedrock " + what + " failed (HTTP " + std::to_string(r.status) + (code.empty() ? "" : " " + code) +
                    ": " + error_body_message(r.body, secrets()) + ")" +
                    (r.attempts > 1 ? " after " + std::to_string(r.attempts) + " attempts" : "");
    if (code == "AccessDeniedException" || r.status == 403)
      t += ": allow bedrock:CreateModelInvocationJob, bedrock:GetModelInvocationJob and iam:PassRole for " + o_.role_arn +
           " to the credentials from " + creds_.source;
    if (code == "ValidationException")
      t += ": check --batch-role-arn, --batch-s3 and the model id (\"" + model_ + "\" in " + region_ + ")";
    return redact(t, secrets());
  }

  WriterConfig config_;
  BatchOptions o_;
  std::string model_, family_, prefix_, region_, control_;
  AwsCredentials creds_;
  std::unique_ptr<S3Client> s3_;
};

}  // namespace

std::unique_ptr<BatchService> make_bedrock_batch(const WriterConfig& config, const BatchOptions& options) {
  return std::make_unique<BedrockBatch>(config, options);
}

}  // namespace tailor
