#include "write/writer.h"

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace tailor {

const char* const kDefaultSystemPrompt =
    "You are an expert in writing product descriptions for shirts. Use the data below to create product "
    "description for a website. The product description should contain all given attributes. Provide some "
    "inspirational sentences, on e.g. how the fabric moves. Think about what a potential customer wants to know "
    "about the shirts.";
const char* const kDefaultUserTemplate =
    "Here are the facts you need to create the product descriptions: <product_attributes>{attributes}"
    "</product_attributes>";
const char* const kDefaultBedrockModel = "anthropic.claude-3-sonnet-20240229-v1:0";
const char* const kDefaultOpenAIModel = "gpt-4o-mini";

std::string join_attributes(const ProductAttributes& attributes) {
  std::string out;
  for (const auto& a : attributes) out += (out.empty() ? "" : ", ") + a.name + ": " + a.value;
  return out;
}

std::string user_prompt(const WriterConfig& config, const ProductAttributes& attributes) {
  std::string t = config.user_template;
  std::string joined = join_attributes(attributes);
  size_t pos = t.find("{attributes}");
  if (pos == std::string::npos) return t + "\n" + joined;  // a template without the slot still gets the facts
  return t.replace(pos, 12, joined);
}

std::string error_body_message(const std::string& body, const std::vector<std::string>& secrets) {
  std::string msg;
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    for (const char* k : {"message", "Message"})
      if (j.contains(k) && j[k].is_string()) msg = j[k].get<std::string>();
    if (msg.empty() && j.contains("error")) {
      const auto& e = j["error"];
      if (e.is_string()) msg = e.get<std::string>();
      else if (e.is_object() && e.contains("message") && e["message"].is_string()) msg = e["message"].get<std::string>();
    }
  }
  if (msg.empty()) msg = body;
  msg = redact(msg, secrets);
  for (char& c : msg)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  if (msg.size() > 300) msg = msg.substr(0, 300) + "...";
  return msg.empty() ? "(empty body)" : msg;
}

TokenUsage usage_of_answer(const nlohmann::json& body) {
  TokenUsage u;
  if (!body.is_object()) return u;
  auto count = [](const nlohmann::json& o, const char* k) -> int64_t {
    return o.is_object() && o.contains(k) && o[k].is_number_integer() ? o[k].get<int64_t>() : -1;
  };
  const nlohmann::json none;
  const nlohmann::json& usage = body.contains("usage") ? body["usage"] : none;
  for (auto [in, out] : {std::pair{"inputTokens", "outputTokens"}, std::pair{"input_tokens", "output_tokens"},
                         std::pair{"prompt_tokens", "completion_tokens"}}) {
    if (count(usage, in) >= 0 && count(usage, out) >= 0) {
      u.input_tokens = count(usage, in);
      u.output_tokens = count(usage, out);
      u.answers = 1;
      return u;
    }
  }
  if (count(body, "prompt_token_count") >= 0 && count(body, "generation_token_count") >= 0) {
    u.input_tokens = count(body, "prompt_token_count");
    u.output_tokens = count(body, "generation_token_count");
    u.answers = 1;
  }
  return u;
}

std::vector<std::string> known_secrets(const std::vector<std::string>& extra) {
  std::vector<std::string> out = extra;
  for (const char* name : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK",
                           "OPENAI_API_KEY"}) {
    const char* v = std::getenv(name);
    if (v && *v) out.push_back(v);
  }
  // Longest first, so a secret that contains another is replaced whole.
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return out;
}

std::unique_ptr<Writer> make_writer(const WriterConfig& config) {
  if (config.kind == "offline") return make_offline_writer(config);
  if (config.kind == "bedrock") return make_bedrock_writer(config);
  if (config.kind == "openai") return make_openai_writer(config);
  throw Error("unknown writer \"" + config.kind + "\" (known: offline, bedrock, openai)");
}

}  // namespace tailor
