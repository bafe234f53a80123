// What a describe run will cost before it starts, and what it used after: prompt tokens estimated
// from the prompt text (characters / 4, rounded up: OpenAI's and Anthropic's rule of thumb for
// English text; no tokenizer of the hosted models is available offline), output tokens at most
// max_tokens per product; prices per million tokens, on demand and in batch, from an editable
// table (docs/prices.json) that says when and where they were read.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "write/writer.h"

namespace tailor {

struct ModelPrice {
  std::string writer;  // "bedrock" or "openai"
  std::string model;   // the model id as given to --writer-model
  double input_per_million = 0, output_per_million = 0;              // on demand, USD
  double batch_input_per_million = 0, batch_output_per_million = 0;  // batch jobs, USD
};

struct PriceTable {
  std::string path;     // where it was read from
  std::string read_on;  // "2026-11-30": when the prices were read from the source
  std::string source;   // the pages they were read from
  std::vector<ModelPrice> models;
  // The entry for this writer and model; a Bedrock cross-region inference profile id
  // ("us.anthropic...", "eu.", "apac.", "global.") falls back to the model's own entry. nullptr when none.
  const ModelPrice* find(const std::string& writer, const std::string& model) const;
};

// Reads the table; throws Error naming the file and the field for anything missing or wrong.
PriceTable load_price_table(const std::string& path);
// --prices when given, else $TAILOR_PRICES, else docs/prices.json beside the program's source tree
// (<dir of the program>/../docs/prices.json) or under the working directory; "" when none exists.
std::string find_price_table(const std::string& flag_path);

// ceil(characters / 4): the documented estimate of a text's tokens.
int64_t estimate_tokens(const std::string& text);

struct CostEstimate {
  std::string writer, model;
  int64_t requests = 0;
  int64_t input_tokens = 0;       // estimated: system prompt + user prompt of every request
  int64_t max_output_tokens = 0;  // max_tokens × requests: the most the answers can use
  const ModelPrice* price = nullptr;  // nullptr: no price known for the model
  std::string text(const PriceTable* table) const;  // a few lines for people
};

// The requests the writer would get for these products' facts.
CostEstimate estimate_cost(const WriterConfig& config, const std::string& writer_model,
                           const std::vector<ProductAttributes>& facts, const PriceTable* table);

// The cost of the tokens used: `usage` in all, `batch_usage` the part of it answered in batch jobs
// (at the batch price; the rest at the on-demand price); "" when the price is unknown.
std::string usage_cost_text(const TokenUsage& usage, const TokenUsage& batch_usage, const ModelPrice* price);

}  // namespace tailor
