// Amazon Bedrock: the Converse API (POST {endpoint}/model/{modelId}/converse: one request shape for
// every chat model on Bedrock — Claude, Llama, Mistral, Nova, ...) or InvokeModel with Anthropic's
// messages body (POST .../invoke), signed with SigV4 (service "bedrock") or sent with a Bedrock API
// key as a bearer token.
#include <chrono>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/aws_config.h"
#include "util/sigv4.h"
#include "write/writer.h"

namespace tailor {

namespace {

class BedrockWriter : public Writer {
 public:
  explicit BedrockWriter(const WriterConfig& config) : config_(config) {
    model_ = config.model.empty() ? kDefaultBedrockModel : config.model;
    bearer_ = bedrock_bearer_token();
    region_ = resolve_aws_region(config.region);
    if (bearer_.empty()) creds_ = resolve_aws_credentials();  // a Bedrock API key needs no AWS keys
    endpoint_ = resolve_bedrock_endpoint(config.endpoint_url, region_);
    // The model id is one path segment: ':' (and '/' of an ARN) are percent-encoded in the URL,
    // as the AWS SDKs do; SigV4 then encodes that path once more for the canonical request.
    if (config.bedrock_api != "converse" && config.bedrock_api != "invoke")
      throw Error("--bedrock-api \"" + config.bedrock_api + "\": use converse or invoke");
    converse_ = config.bedrock_api == "converse";
    url_ = endpoint_ + "/model/" + uri_encode(model_, false) + (converse_ ? "/converse" : "/invoke");
    parsed_ = parse_url(url_);
    auth_source_ = bearer_.empty() ? creds_.source : "the Bedrock API key in AWS_BEARER_TOKEN_BEDROCK";
  }

  std::string name() const override { return "bedrock"; }
  std::string model() const override { return model_; }

  std::string write(const ProductAttributes& attributes) const override {
    nlohmann::json body = converse_ ? converse_body(attributes) : invoke_body(attributes);
    HttpRequest req;
    req.method = "POST";
    req.url = url_;
    req.body = body.dump();
    req.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
    if (!bearer_.empty()) {
      req.headers.push_back({"Authorization", "Bearer " + bearer_});
    } else {
      SigV4Request sreq{"POST", parsed_.path, parsed_.query, req.headers, req.body};
      SigV4Options opts;
      opts.region = region_;
      opts.service = "bedrock";
      int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch()).count();
      opts.amz_date = amz_date_from_unix(now);
      sigv4_sign_request(sreq, parsed_.host_header(), creds_, opts);
      req.headers = sreq.headers;
    }
    HttpResponse r = http_send(req, config_.http);
    if (r.transport != TransportError::none || r.status < 200 || r.status > 299)
      throw Error(redact(error_text(r), secrets()));

    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_discarded())
      throw Error(redact("Bedrock answered HTTP " + std::to_string(r.status) + " with a body that is not JSON: " +
                             error_body_message(r.body, secrets()), secrets()));
    // Converse: output.message.content[0].text; InvokeModel (Anthropic): content[0].text.
    const char* where = converse_ ? "output.message.content[0].text" : "content[0].text";
    const nlohmann::json* content = &j;
    if (converse_)
      content = j.is_object() && j.contains("output") && j["output"].is_object() && j["output"].contains("message") &&
                        j["output"]["message"].is_object()
                    ? &j["output"]["message"]
                    : nullptr;
    if (!content || !content->is_object() || !content->contains("content") || !(*content)["content"].is_array() ||
        (*content)["content"].empty() || !(*content)["content"][0].is_object() ||
        !(*content)["content"][0].contains("text") || !(*content)["content"][0]["text"].is_string())
      throw Error(redact("Bedrock's answer has no " + std::string(where) + " (model \"" + model_ + "\"): " +
                             error_body_message(r.body, secrets()), secrets()));
    std::string text = (*content)["content"][0]["text"].get<std::string>();
    add_usage(usage_of_answer(j));
    if (text.empty()) throw Error("Bedrock returned an empty description (model \"" + model_ + "\")");
    return text;
  }

 private:
  // The original system's request: Anthropic's messages body for InvokeModel.
  nlohmann::json invoke_body(const ProductAttributes& attributes) const {
    return {{"anthropic_version", "bedrock-2023-05-31"},
            {"system", config_.system_prompt},
            {"messages", {{{"role", "user"}, {"content", user_prompt(config_, attributes)}}}},
            {"max_tokens", config_.max_tokens},
            {"temperature", config_.temperature}};
  }
  // The same prompt and parameters in the Converse API's shape.
  nlohmann::json converse_body(const ProductAttributes& attributes) const {
    return {{"system", {{{"text", config_.system_prompt}}}},
            {"messages", {{{"role", "user"}, {"content", {{{"text", user_prompt(config_, attributes)}}}}}}},
            {"inferenceConfig", {{"maxTokens", config_.max_tokens}, {"temperature", config_.temperature}}}};
  }

  std::vector<std::string> secrets() const {
    return known_secrets({creds_.secret_access_key, creds_.session_token, creds_.access_key_id, bearer_});
  }

  std::string error_text(const HttpResponse& r) const {
    std::string where = "model \"" + model_ + "\" in region " + region_;
    if (r.transport != TransportError::none) {
      std::string t = "Bedrock (" + where + "): " + transport_error_text(r, parsed_.host_header());
      if (r.transport == TransportError::dns)
        t += ": check the region (\"" + region_ + "\") or the endpoint URL (" + endpoint_ + ")";
      return t;
    }
    std::string code = http_error_code(r);
    std::string msg = error_body_message(r.body, secrets());
    std::string detail = "(HTTP " + std::to_string(r.status) + (code.empty() ? "" : " " + code) + ": " + msg + ")";
    std::string tries = r.attempts > 1 ? " after " + std::to_string(r.attempts) + " attempts" : "";
    if (code == "AccessDeniedException")
      return "access denied to Bedrock " + where + " " + detail +
             ": request access to the model in the Bedrock console and allow bedrock:InvokeModel for the "
             "credentials from " + auth_source_;
    if (code == "UnrecognizedClientException" || code == "InvalidSignatureException" ||
        code == "ExpiredTokenException" || code == "IncompleteSignatureException" ||
        code == "MissingAuthenticationTokenException" || r.status == 401)
      return "Bedrock rejected the credentials from " + auth_source_ + " " + detail;
    if (r.status == 404 || code == "ResourceNotFoundException" ||
        (code == "ValidationException" && msg.find("model identifier") != std::string::npos))
      return "unknown model: Bedrock has no " + where + " " + detail;
    if (r.status == 403) return "access denied by Bedrock for " + where + " " + detail;
    if (http_retryable(r))
      return "Bedrock kept failing" + tries + " (" + where + ") " + detail;
    return "Bedrock refused the request for " + where + " " + detail;
  }

  WriterConfig config_;
  std::string model_, bearer_, region_, endpoint_, url_, auth_source_;
  bool converse_ = true;
  AwsCredentials creds_;
  ParsedUrl parsed_;
};

}  // namespace

std::unique_ptr<Writer> make_bedrock_writer(const WriterConfig& config) {
  return std::make_unique<BedrockWriter>(config);
}

}  // namespace tailor
