#include "train/eval.h"

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/attributes.h"
#include "catalog/images.h"
#include "util/error.h"
#include "util/progress.h"

namespace tailor {

EvalReport evaluate(Answerer& model, const std::vector<VqaPair>& pairs, const std::vector<VqaPair>& reference,
                    int batch_size, const GenerationOptions& gen, bool progress) {
  if (pairs.empty()) throw Error("nothing to evaluate: no question/answer pairs");
  if (batch_size < 1) throw Error("eval: the batch size must be >= 1");
  EvalReport r;
  std::map<std::string, std::shared_ptr<const ImageRGB>> images;
  std::unique_ptr<Progress> bar;
  if (progress) bar = std::make_unique<Progress>("eval", static_cast<int64_t>(pairs.size()), "pairs");
  for (size_t start = 0; start < pairs.size(); start += batch_size) {
    size_t end = std::min(pairs.size(), start + static_cast<size_t>(batch_size));
    std::vector<AnswerRequest> reqs;
    for (size_t i = start; i < end; ++i) {
      auto& img = images[pairs[i].image];
      if (!img) img = std::make_shared<const ImageRGB>(load_image(pairs[i].image));
      reqs.push_back({img, pairs[i].prompt.empty() ? wrap_prompt(pairs[i].question) : pairs[i].prompt});
    }
    std::vector<std::string> out = model.answer(reqs, gen);
    if (out.size() != reqs.size())
      throw Error(model.name() + ": " + std::to_string(out.size()) + " answers for " + std::to_string(reqs.size()) +
                  " questions");
    for (size_t i = start; i < end; ++i) {
      const VqaPair& p = pairs[i];
      Prediction pr{p.id, p.attribute, p.image, p.value, parse_answer(out[i - start], p.attribute).second,
                    out[i - start]};
      r.predictions.push_back(pr);
    }
    if (bar) bar->add(static_cast<int64_t>(end - start));
  }
  if (bar) bar->finish();
  return summarize_predictions(std::move(r.predictions), reference.empty() ? pairs : reference);
}

EvalReport summarize_predictions(std::vector<Prediction> predictions, const std::vector<VqaPair>& reference) {
  EvalReport r;
  r.predictions = std::move(predictions);
  // Majority class per attribute from the reference pairs.
  const std::vector<VqaPair>& ref = reference;
  std::map<std::string, std::map<std::string, int64_t>> freq;
  for (const auto& p : ref) freq[p.attribute][p.value]++;
  std::map<std::string, AttributeEval> by_attr;
  std::vector<std::string> order;
  for (const auto& pr : r.predictions) {
    if (!by_attr.count(pr.attribute)) order.push_back(pr.attribute);
    AttributeEval& a = by_attr[pr.attribute];
    a.attribute = pr.attribute;
    a.n++;
    if (pr.predicted == pr.truth) a.correct++;
    a.confusion[pr.truth][pr.predicted]++;
  }
  for (const auto& name : order) {
    AttributeEval& a = by_attr[name];
    int64_t best = -1;
    for (const auto& kv : freq[name])
      if (kv.second > best) {
        best = kv.second;
        a.majority_value = kv.first;
      }
    int64_t maj = 0;
    for (const auto& pr : r.predictions)
      if (pr.attribute == name && pr.truth == a.majority_value) maj++;
    a.accuracy = a.n ? static_cast<double>(a.correct) / a.n : 0;
    a.majority_accuracy = a.n ? static_cast<double>(maj) / a.n : 0;
    r.n += a.n;
    r.correct += a.correct;
    r.attributes.push_back(a);
  }
  r.accuracy = r.n ? static_cast<double>(r.correct) / r.n : 0;
  return r;
}

std::string eval_report_json(const EvalReport& r) {
  nlohmann::json j;
  j["pairs"] = r.n;
  j["correct"] = r.correct;
  j["accuracy"] = r.accuracy;
  j["attributes"] = nlohmann::json::array();
  for (const auto& a : r.attributes)
    j["attributes"].push_back({{"attribute", a.attribute},
                               {"pairs", a.n},
                               {"correct", a.correct},
                               {"accuracy", a.accuracy},
                               {"majority_value", a.majority_value},
                               {"majority_accuracy", a.majority_accuracy},
                               {"confusion", a.confusion}});
  j["predictions"] = nlohmann::json::array();
  for (const auto& p : r.predictions)
    j["predictions"].push_back({{"id", p.id},
                                {"attribute", p.attribute},
                                {"truth", p.truth},
                                {"predicted", p.predicted},
                                {"generated_text", p.raw}});
  return j.dump(1) + "\n";
}

std::string eval_table(const EvalReport& r) {
  std::ostringstream o;
  char line[256];
  std::snprintf(line, sizeof line, "%-16s %7s %9s %9s  %s\n", "attribute", "pairs", "accuracy", "majority",
                "majority value");
  o << line;
  for (const auto& a : r.attributes) {
    std::snprintf(line, sizeof line, "%-16s %7lld %9.3f %9.3f  %s\n", a.attribute.c_str(), (long long)a.n, a.accuracy,
                  a.majority_accuracy, a.majority_value.c_str());
    o << line;
  }
  std::snprintf(line, sizeof line, "%-16s %7lld %9.3f\n", "all", (long long)r.n, r.accuracy);
  o << line;
  for (const auto& a : r.attributes) {
    o << "\nconfusion for " << a.attribute << " (rows: truth, columns: predicted)\n";
    std::vector<std::string> cols;
    for (const auto& t : a.confusion)
      for (const auto& p : t.second)
        if (std::find(cols.begin(), cols.end(), p.first) == cols.end()) cols.push_back(p.first);
    std::sort(cols.begin(), cols.end());
    if (cols.size() > 12) {
      o << "  (" << cols.size() << " distinct predictions; see the JSON report)\n";
      continue;
    }
    auto cut = [](const std::string& s) { return s.size() > 14 ? s.substr(0, 13) + "~" : s; };
    std::snprintf(line, sizeof line, "  %-16s", "");
    o << line;
    for (const auto& c : cols) {
      std::snprintf(line, sizeof line, " %14s", cut(c).c_str());
      o << line;
    }
    o << "\n";
    for (const auto& t : a.confusion) {
      std::snprintf(line, sizeof line, "  %-16s", cut(t.first).c_str());
      o << line;
      for (const auto& c : cols) {
        auto it = t.second.find(c);
        std::snprintf(line, sizeof line, " %14lld", (long long)(it == t.second.end() ? 0 : it->second));
        o << line;
      }
      o << "\n";
    }
  }
  return o.str();
}

}  // namespace tailor
