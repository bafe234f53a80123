// Any OpenAI-compatible server (OpenAI, vLLM, llama.cpp's server, Ollama): POST {base}/chat/completions
// with the system and user prompts; the text is choices[0].message.content.
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "write/writer.h"

namespace tailor {

namespace {

class OpenAIWriter : public Writer {
 public:
  explicit OpenAIWriter(const WriterConfig& config) : config_(config) {
    model_ = config.model.empty() ? kDefaultOpenAIModel : config.model;
    if (!config.api_key_env.empty()) {
      const char* k = std::getenv(config.api_key_env.c_str());
      if (!k || !*k)
        throw Error("the openai writer needs an API key in $" + config.api_key_env +
                    " (or --api-key-env \"\" for a server that takes no key)");
      key_ = k;
    }
    std::string base = config.base_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    url_ = base + "/chat/completions";
    parsed_ = parse_url(url_);
    shown_url_ = url_without_userinfo(url_);
    // A password in the base URL (http://user:pw@host/v1) is a secret like the key.
    url_password_ = url_userinfo_password(url_);
  }

  std::string name() const override { return "openai"; }
  std::string model() const override { return model_; }

  std::string write(const ProductAttributes& attributes) const override {
    nlohmann::json body = {{"model", model_},
                           {"messages",
                            {{{"role", "system"}, {"content", config_.system_prompt}},
                             {{"role", "user"}, {"content", user_prompt(config_, attributes)}}}},
                           {"max_tokens", config_.max_tokens},
                           {"temperature", config_.temperature}};
    HttpRequest req;
    req.url = url_;
    req.body = body.dump();
    req.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
    if (!key_.empty()) req.headers.push_back({"Authorization", "Bearer " + key_});
    HttpResponse r = http_send(req, config_.http);
    if (r.transport != TransportError::none || r.status < 200 || r.status > 299)
      throw Error(redact(error_text(r), secrets()));
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_discarded())
      throw Error(redact(shown_url_ + " answered HTTP " + std::to_string(r.status) + " with a body that is not JSON: " +
                             error_body_message(r.body, secrets()), secrets()));
    const nlohmann::json* content = nullptr;
    if (j.is_object() && j.contains("choices") && j["choices"].is_array() && !j["choices"].empty() &&
        j["choices"][0].is_object() && j["choices"][0].contains("message") && j["choices"][0]["message"].is_object() &&
        j["choices"][0]["message"].contains("content"))
      content = &j["choices"][0]["message"]["content"];
    if (!content || !content->is_string())
      throw Error(redact(shown_url_ + ": the answer has no choices[0].message.content (model \"" + model_ +
                             "\"): " + error_body_message(r.body, secrets()), secrets()));
    std::string text = content->get<std::string>();
    add_usage(usage_of_answer(j));
    if (text.empty()) throw Error(shown_url_ + " returned an empty description (model \"" + model_ + "\")");
    return text;
  }

 private:
  std::vector<std::string> secrets() const { return known_secrets({key_, url_password_}); }

  std::string error_text(const HttpResponse& r) const {
    std::string where = shown_url_ + " (model \"" + model_ + "\")";
    if (r.transport != TransportError::none) return where + ": " + transport_error_text(r, parsed_.host_header());
    std::string code = http_error_code(r);
    std::string detail = "(HTTP " + std::to_string(r.status) + (code.empty() ? "" : " " + code) + ": " +
                         error_body_message(r.body, secrets()) + ")";
    std::string key_from = config_.api_key_env.empty() ? "no API key was sent" : "the key is from $" + config_.api_key_env;
    if (r.status == 401) return "the API key was rejected by " + where + " " + detail + "; " + key_from;
    if (r.status == 403) return "access denied to " + where + " " + detail + "; " + key_from;
    if (r.status == 404 || code == "model_not_found")
      return "unknown model or wrong base URL: " + where + " " + detail;
    if (http_retryable(r))
      return where + " kept failing after " + std::to_string(r.attempts) + " attempts " + detail;
    return where + " refused the request " + detail;
  }

  WriterConfig config_;
  std::string model_, key_, url_;
  std::string shown_url_;     // url_ without user:password@, for messages
  std::string url_password_;  // from the base URL's user info, if any
  ParsedUrl parsed_;
};

}  // namespace

std::unique_ptr<Writer> make_openai_writer(const WriterConfig& config) {
  return std::make_unique<OpenAIWriter>(config);
}

}  // namespace tailor
