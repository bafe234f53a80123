// One interface for everything that turns product attributes into a description, and the three
// writers behind it: offline (default, deterministic, no network), bedrock (Claude on Amazon
// Bedrock, SigV4 or a Bedrock API key) and openai (any OpenAI-compatible /chat/completions server).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

#include "util/http_client.h"

namespace tailor {

struct ProductAttribute {
  std::string name;   // "Sleeve Length", "baseColour", "articleType", ...
  std::string value;  // "Long Sleeves"
};
using ProductAttributes = std::vector<ProductAttribute>;  // in a meaningful order

// The original system's prompts.
extern const char* const kDefaultSystemPrompt;
extern const char* const kDefaultUserTemplate;  // "{attributes}" is replaced
extern const char* const kDefaultBedrockModel;  // anthropic.claude-3-sonnet-20240229-v1:0
extern const char* const kDefaultOpenAIModel;

struct WriterConfig {
  std::string kind = "offline";  // offline | bedrock | openai
  std::string system_prompt = kDefaultSystemPrompt;
  std::string user_template = kDefaultUserTemplate;
  std::string model;  // "" = the writer's default
  int max_tokens = 400;
  double temperature = 0.1;
  // bedrock
  std::string bedrock_api = "converse";  // converse (every chat model on Bedrock) or invoke (Anthropic's body)
  std::string region;        // "" = AWS_REGION, ...
  std::string endpoint_url;  // "" = AWS_ENDPOINT_URL_BEDROCK_RUNTIME, AWS_ENDPOINT_URL, the regional one
  // openai
  std::string base_url = "https://api.openai.com/v1";
  std::string api_key_env = "OPENAI_API_KEY";  // the variable's name; "" = send no key (local servers)
  HttpOptions http;
};

// Tokens as the APIs count them (summed over the answers that reported a count).
struct TokenUsage {
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  int64_t answers = 0;  // answers that carried a count
  void add(const TokenUsage& u) {
    input_tokens += u.input_tokens;
    output_tokens += u.output_tokens;
    answers += u.answers;
  }
};

// The token counts of one model answer, whichever API's shape it has: Converse and Nova
// (usage.inputTokens/outputTokens), Anthropic (usage.input_tokens/output_tokens), OpenAI
// (usage.prompt_tokens/completion_tokens), Llama on Bedrock (prompt_token_count/generation_token_count).
// answers = 0 when the body has none.
TokenUsage usage_of_answer(const nlohmann::json& body);

class Writer {
 public:
  virtual ~Writer() = default;
  // Thread-safe: describe calls it from several threads. Throws Error with a clear, secret-free reason.
  virtual std::string write(const ProductAttributes& attributes) const = 0;
  virtual std::string name() const = 0;   // "offline", "bedrock", "openai"
  virtual std::string model() const = 0;  // the model id used ("offline-v1" for the offline writer)
  // Tokens used so far by this writer's calls, from the APIs' own counts (the offline writer: none).
  TokenUsage usage() const {
    std::lock_guard<std::mutex> lock(usage_mu_);
    return usage_;
  }

 protected:
  void add_usage(const TokenUsage& u) const {
    std::lock_guard<std::mutex> lock(usage_mu_);
    usage_.add(u);
  }

 private:
  mutable std::mutex usage_mu_;
  mutable TokenUsage usage_;
};

// Checks the configuration (credentials, region, key variable) up front and throws Error when it
// cannot work, so a whole-catalog run fails at once rather than on every product.
std::unique_ptr<Writer> make_writer(const WriterConfig& config);

// "Fabric: Cotton, Fit: Slim Fit, ..." as the original joined them.
std::string join_attributes(const ProductAttributes& attributes);
// The user prompt: user_template with "{attributes}" replaced.
std::string user_prompt(const WriterConfig& config, const ProductAttributes& attributes);

// The offline writer's text on its own (used by make_writer and by tests).
std::string offline_description(const ProductAttributes& attributes);

// The writers (make_writer picks one by config.kind).
std::unique_ptr<Writer> make_offline_writer(const WriterConfig& config);
std::unique_ptr<Writer> make_bedrock_writer(const WriterConfig& config);
std::unique_ptr<Writer> make_openai_writer(const WriterConfig& config);

// Every secret value the writers may hold (AWS keys and session token, Bedrock API key, the OpenAI
// key variable's value, plus `extra`): what errors are scrubbed of, whatever a server echoes back.
std::vector<std::string> known_secrets(const std::vector<std::string>& extra = {});

// The "message" of a JSON error body (or the body's start), on one line, at most 300 characters,
// with `secrets` redacted before it is cut (a cut secret would no longer be found whole).
std::string error_body_message(const std::string& body, const std::vector<std::string>& secrets);

}  // namespace tailor
