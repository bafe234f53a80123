#include "write/cost.h"


#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/fs.h"

namespace tailor {

const ModelPrice* PriceTable::find(const std::string& writer, const std::string& model) const {
  for (const auto& m : models)
    if (m.writer == writer && m.model == model) return &m;
  for (const char* profile : {"us.", "eu.", "apac.", "global."}) {
    std::string p = profile;
    if (writer == "bedrock" && model.rfind(p, 0) == 0) return find(writer, model.substr(p.size()));
  }
  return nullptr;
}

PriceTable load_price_table(const std::string& path) {
  std::string text = read_input_file(path, 1 << 20);
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error(path + ": not a JSON object (see docs/prices.json)");
  PriceTable t;
  t.path = path;
  auto str = [&](const nlohmann::json& o, const std::string& k, const std::string& where) {
    if (!o.contains(k) || !o[k].is_string() || o[k].get<std::string>().empty())
      throw Error(path + ": " + where + k + ": missing or not a non-empty string");
    return o[k].get<std::string>();
  };
  t.read_on = str(j, "read_on", "");
  t.source = str(j, "source", "");
  if (!j.contains("models") || !j["models"].is_array()) throw Error(path + ": models: missing or not an array");
  for (size_t i = 0; i < j["models"].size(); ++i) {
    const auto& m = j["models"][i];
    std::string where = "models[" + std::to_string(i) + "].";
    if (!m.is_object()) throw Error(path + ": models[" + std::to_string(i) + "]: not an object");
    ModelPrice p;
    p.writer = str(m, "writer", where);
    p.model = str(m, "model", where);
    auto price = [&](const char* k) {
      if (!m.contains(k) || !m[k].is_number() || m[k].get<double>() < 0)
        throw Error(path + ": " + where + k + ": missing or not a price >= 0 (USD per million tokens)");
      return m[k].get<double>();
    };
    p.input_per_million = price("input");
    p.output_per_million = price("output");
    p.batch_input_per_million = price("batch_input");
    p.batch_output_per_million = price("batch_output");
    t.models.push_back(p);
  }
  return t;
}

std::string find_price_table(const std::string& flag_path) {
  if (!flag_path.empty()) return flag_path;
  if (const char* e = std::getenv("TAILOR_PRICES"); e && *e) return e;
  std::vector<std::string> candidates;
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) candidates.push_back((exe.parent_path().parent_path() / "docs" / "prices.json").string());
  candidates.push_back("docs/prices.json");
  for (const auto& c : candidates)
    if (file_exists(c)) return c;
  return "";
}

int64_t estimate_tokens(const std::string& text) { return static_cast<int64_t>((text.size() + 3) / 4); }

CostEstimate estimate_cost(const WriterConfig& config, const std::string& writer_model,
                           const std::vector<ProductAttributes>& facts, const PriceTable* table) {
  CostEstimate e;
  e.writer = config.kind;
  e.model = writer_model;
  const int64_t system_tokens = estimate_tokens(config.system_prompt);
  for (const auto& f : facts) {
    if (f.empty()) continue;  // nothing to write from: no request
    e.requests++;
    e.input_tokens += system_tokens + estimate_tokens(user_prompt(config, f));
  }
  e.max_output_tokens = e.requests * config.max_tokens;
  e.price = table ? table->find(config.kind, writer_model) : nullptr;
  return e;
}

static std::string money(double usd) {
  char b[64];
  std::snprintf(b, sizeof b, usd < 1 ? "$%.4f" : "$%.2f", usd);
  return b;
}

static double cost_of(int64_t in, int64_t out, double in_price, double out_price) {
  return static_cast<double>(in) / 1e6 * in_price + static_cast<double>(out) / 1e6 * out_price;
}

std::string CostEstimate::text(const PriceTable* table) const {
  std::string s = "estimate: " + std::to_string(requests) + " requests to " + writer + " model " + model + "\n";
  s += "  input tokens  ~" + std::to_string(input_tokens) + " (system + user prompt, characters / 4, rounded up)\n";
  s += "  output tokens <= " + std::to_string(max_output_tokens) + " (max tokens per description x requests)\n";
  if (writer == "offline") return s + "  cost: none (the offline writer calls no API)\n";
  if (!table) return s + "  cost: unknown (no price table: give --prices docs/prices.json)\n";
  if (!price) return s + "  cost: unknown (" + table->path + " has no price for " + writer + " model " + model + ")\n";
  double od_in = cost_of(input_tokens, 0, price->input_per_million, 0);
  double od_max = cost_of(input_tokens, max_output_tokens, price->input_per_million, price->output_per_million);
  double b_in = cost_of(input_tokens, 0, price->batch_input_per_million, 0);
  double b_max = cost_of(input_tokens, max_output_tokens, price->batch_input_per_million, price->batch_output_per_million);
  char p[160];
  std::snprintf(p, sizeof p, "  prices (USD per million tokens, input/output): on demand %.4g/%.4g, batch %.4g/%.4g\n",
                price->input_per_million, price->output_per_million, price->batch_input_per_million,
                price->batch_output_per_million);
  s += p;
  s += "  on demand: input " + money(od_in) + ", at most " + money(od_max) + " with every answer at max tokens\n";
  s += "  batch:     input " + money(b_in) + ", at most " + money(b_max) + " with every answer at max tokens\n";
  s += "  prices read " + table->read_on + " from " + table->path + " (source: " + table->source + ")\n";
  return s;
}

std::string usage_cost_text(const TokenUsage& usage, const TokenUsage& batch_usage, const ModelPrice* price) {
  if (!price) return "";
  int64_t on_demand_in = usage.input_tokens - batch_usage.input_tokens;
  int64_t on_demand_out = usage.output_tokens - batch_usage.output_tokens;
  double on_demand = cost_of(on_demand_in, on_demand_out, price->input_per_million, price->output_per_million);
  double batch = cost_of(batch_usage.input_tokens, batch_usage.output_tokens, price->batch_input_per_million,
                         price->batch_output_per_million);
  if (batch_usage.answers == 0) return money(on_demand) + " at on-demand prices";
  if (batch_usage.answers == usage.answers) return money(batch) + " at batch prices";
  return money(on_demand + batch) + " (" + money(batch) + " at batch prices, " + money(on_demand) + " on demand)";
}

}  // namespace tailor
