#include "train/eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <tuple>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/attributes.h"
#include "catalog/images.h"
#include "util/error.h"
#include "util/progress.h"

namespace tailor {

EvalReport evaluate(Answerer& model, const std::vector<VqaPair>& pairs, const std::vector<VqaPair>& reference,
                    int batch_size, const GenerationOptions& gen, bool progress, AnswerMode mode, double target_precision,
                    PhotoShift shift) {
  if (pairs.empty()) throw Error("nothing to evaluate: no question/answer pairs");
  if (batch_size < 1) throw Error("eval: the batch size must be >= 1");
  EvalReport r;
  auto started = std::chrono::steady_clock::now();
  std::map<std::string, std::shared_ptr<const ImageRGB>> images;
  std::unique_ptr<Progress> bar;
  if (progress) bar = std::make_unique<Progress>("eval", static_cast<int64_t>(pairs.size()), "pairs");
  for (size_t start = 0; start < pairs.size(); start += batch_size) {
    size_t end = std::min(pairs.size(), start + static_cast<size_t>(batch_size));
    std::vector<AnswerRequest> reqs;
    for (size_t i = start; i < end; ++i) {
      auto& img = images[pairs[i].image];
      if (!img) {
        ImageRGB photo = load_image(pairs[i].image);
        if (shift != PhotoShift::None) photo = shift_photo(photo, shift, pairs[i].id);  // no copy as-is
        img = std::make_shared<const ImageRGB>(std::move(photo));
      }
      AnswerRequest req = attribute_request(model.task(), AttributeSpec{pairs[i].attribute, pairs[i].question}, img, mode);
      req.prompt = pairs[i].prompt.empty() ? wrap_prompt(pairs[i].question) : pairs[i].prompt;
      reqs.push_back(std::move(req));
    }
    std::vector<Answer> out = model.answer(reqs, gen);
    if (out.size() != reqs.size())
      throw Error(model.name() + ": " + std::to_string(out.size()) + " answers for " + std::to_string(reqs.size()) +
                  " questions");
    for (size_t i = start; i < end; ++i) {
      const VqaPair& p = pairs[i];
      const Answer& a = out[i - start];
      Prediction pr;
      pr.id = p.id;
      pr.attribute = p.attribute;
      pr.image = p.image;
      pr.truth = p.value;
      pr.predicted = parse_answer(a.text, p.attribute).second;
      pr.raw = a.text;
      pr.confidence = a.confidence;
      pr.log_likelihoods = a.log_likelihoods;
      const std::vector<std::string>& cands = reqs[i - start].candidates;
      auto truth = std::find(cands.begin(), cands.end(), answer_text(p.attribute, p.value));
      if (truth != cands.end()) pr.truth_candidate = static_cast<int>(truth - cands.begin());
      r.predictions.push_back(pr);
    }
    if (bar) bar->add(static_cast<int64_t>(end - start));
  }
  if (bar) bar->finish();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EvalReport out = summarize_predictions(std::move(r.predictions), reference.empty() ? pairs : reference, target_precision);
  out.seconds = seconds;
  return out;
}

// Mean negative log-likelihood of the true values under softmax(ll / t); pairs whose truth is not a
// candidate carry no information about t.
static double truth_nll(const std::vector<const Prediction*>& ps, double t) {
  double sum = 0;
  int64_t n = 0;
  for (const Prediction* p : ps) {
    if (p->truth_candidate < 0) continue;
    double top = *std::max_element(p->log_likelihoods.begin(), p->log_likelihoods.end()) / t, z = 0;
    for (double ll : p->log_likelihoods) z += std::exp(ll / t - top);
    sum += -(p->log_likelihoods[static_cast<size_t>(p->truth_candidate)] / t - top - std::log(z));
    ++n;
  }
  return n ? sum / n : 0;
}

// The lowest confidence level whose accepted answers reach the target precision: {threshold, coverage},
// or {-1, 0} when none does. confidences[i] belongs to ps[i].
static std::pair<double, double> threshold_for(const std::vector<const Prediction*>& ps, const std::vector<double>& confidences,
                                               double target_precision) {
  std::vector<size_t> order(ps.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t x, size_t y) { return confidences[x] > confidences[y]; });
  // Accepting the k most confident answers; a threshold can only fall between distinct levels.
  std::pair<double, double> best{-1, 0};
  int64_t right = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    right += ps[order[k]]->predicted == ps[order[k]]->truth ? 1 : 0;
    bool level_ends = k + 1 == order.size() || confidences[order[k + 1]] < confidences[order[k]];
    if (level_ends && static_cast<double>(right) / (k + 1) >= target_precision)
      best = {confidences[order[k]], static_cast<double>(k + 1) / ps.size()};
  }
  return best;
}

// The confidence of each prediction's answer under softmax(log_likelihoods / t).
static std::vector<double> confidences_at(const std::vector<const Prediction*>& ps, double t) {
  std::vector<double> c;
  for (const Prediction* p : ps) {
    if (p->log_likelihoods.empty()) {
      c.push_back(p->confidence);
      continue;
    }
    double top = *std::max_element(p->log_likelihoods.begin(), p->log_likelihoods.end()) / t, z = 0;
    for (double ll : p->log_likelihoods) z += std::exp(ll / t - top);
    c.push_back(1.0 / z);  // the likeliest candidate's probability
  }
  return c;
}

void calibrate_attribute(AttributeEval& a, const std::vector<const Prediction*>& ps, double target_precision) {
  a.calibrated = true;
  const int kBins = 10;
  a.reliability.assign(kBins, ReliabilityBin{});
  a.ece = 0;
  for (int b = 0; b < kBins; ++b) {
    a.reliability[b].low = static_cast<double>(b) / kBins;
    a.reliability[b].high = static_cast<double>(b + 1) / kBins;
  }
  for (const Prediction* p : ps) {
    int b = std::min(kBins - 1, static_cast<int>(p->confidence * kBins));
    ReliabilityBin& bin = a.reliability[b];
    bin.n++;
    bin.mean_confidence += p->confidence;
    bin.accuracy += p->predicted == p->truth ? 1 : 0;
  }
  for (ReliabilityBin& bin : a.reliability) {
    if (bin.n == 0) continue;
    bin.mean_confidence /= bin.n;
    bin.accuracy /= bin.n;
    a.ece += static_cast<double>(bin.n) / ps.size() * std::abs(bin.accuracy - bin.mean_confidence);
  }
  a.coverage.clear();
  for (double t : {0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99}) {
    CoveragePoint c;
    c.threshold = t;
    int64_t right = 0;
    for (const Prediction* p : ps)
      if (p->confidence >= t) {
        c.accepted++;
        right += p->predicted == p->truth ? 1 : 0;
      }
    c.coverage = ps.empty() ? 0 : static_cast<double>(c.accepted) / ps.size();
    c.accuracy = c.accepted ? static_cast<double>(right) / c.accepted : 0;
    a.coverage.push_back(c);
  }
  std::vector<double> now;
  for (const Prediction* p : ps) now.push_back(p->confidence);
  std::tie(a.suggested_threshold, a.suggested_coverage) = threshold_for(ps, now, target_precision);
  // Temperature: a log-spaced search of the true values' negative log-likelihood, then a finer one
  // around the best; with too few informative pairs it stays 1 (a handful of right answers would
  // drive it to the search's bound).
  int64_t informative = 0;
  for (const Prediction* p : ps) informative += p->truth_candidate >= 0;
  double best_t = 1, best = truth_nll(ps, 1);
  for (int pass = 0; pass < 2 && informative >= kMinPairsToFitTemperature; ++pass) {
    double lo = pass == 0 ? std::log(0.05) : std::log(best_t) - 0.15, hi = pass == 0 ? std::log(20.0) : std::log(best_t) + 0.15;
    for (int i = 0; i <= 60; ++i) {
      double t = std::exp(lo + (hi - lo) * i / 60.0), nll = truth_nll(ps, t);
      if (nll < best) {
        best = nll;
        best_t = t;
      }
    }
  }
  a.temperature = best_t;
  // The threshold again on the confidences the model gives once it uses that temperature.
  std::tie(a.calibrated_threshold, a.calibrated_coverage) = threshold_for(ps, confidences_at(ps, best_t), target_precision);
}

TaskInfo with_calibration(TaskInfo task, const EvalReport& r) {
  for (const AttributeEval& a : r.attributes) {
    if (!a.calibrated) continue;
    task.temperature[a.attribute] = a.temperature;
    if (a.calibrated_threshold >= 0) task.threshold[a.attribute] = a.calibrated_threshold;
    else task.threshold.erase(a.attribute);
  }
  return task;
}

EvalReport summarize_predictions(std::vector<Prediction> predictions, const std::vector<VqaPair>& reference,
                                 double target_precision) {
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
    std::vector<const Prediction*> mine;
    bool all_confident = true;
    for (const auto& pr : r.predictions)
      if (pr.attribute == name) {
        mine.push_back(&pr);
        all_confident = all_confident && pr.confidence >= 0;
      }
    if (all_confident && !mine.empty()) calibrate_attribute(a, mine, target_precision);
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
  for (const auto& a : r.attributes) {
    nlohmann::json e = {{"attribute", a.attribute},
                        {"pairs", a.n},
                        {"correct", a.correct},
                        {"accuracy", a.accuracy},
                        {"majority_value", a.majority_value},
                        {"majority_accuracy", a.majority_accuracy},
                        {"confusion", a.confusion}};
    if (a.calibrated) {
      nlohmann::json c = {{"ece", a.ece}, {"temperature", a.temperature}, {"reliability", nlohmann::json::array()},
                          {"coverage", nlohmann::json::array()}};
      for (const auto& b : a.reliability)
        c["reliability"].push_back({{"low", b.low}, {"high", b.high}, {"n", b.n}, {"mean_confidence", b.mean_confidence}, {"accuracy", b.accuracy}});
      for (const auto& k : a.coverage)
        c["coverage"].push_back({{"threshold", k.threshold}, {"accepted", k.accepted}, {"coverage", k.coverage}, {"accuracy", k.accuracy}});
      if (a.suggested_threshold >= 0) {
        c["suggested_threshold"] = a.suggested_threshold;
        c["suggested_coverage"] = a.suggested_coverage;
      } else {
        c["suggested_threshold"] = nullptr;
      }
      if (a.calibrated_threshold >= 0) {
        c["calibrated_threshold"] = a.calibrated_threshold;  // at the fitted temperature (what --calibrate stores)
        c["calibrated_coverage"] = a.calibrated_coverage;
      }
      e["calibration"] = c;
    }
    j["attributes"].push_back(e);
  }
  j["predictions"] = nlohmann::json::array();
  for (const auto& p : r.predictions) {
    nlohmann::json e = {{"id", p.id}, {"attribute", p.attribute}, {"truth", p.truth}, {"predicted", p.predicted}, {"generated_text", p.raw}};
    if (p.confidence >= 0) e["confidence"] = p.confidence;
    j["predictions"].push_back(e);
  }
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
  bool any_calibrated = false;
  for (const auto& a : r.attributes) any_calibrated = any_calibrated || a.calibrated;
  if (any_calibrated) {
    o << "\nconfidence (choice answers): expected calibration error, fitted temperature, accuracy when\n"
         "accepting only answers at or above a confidence threshold, and the threshold for the target precision\n";
    std::snprintf(line, sizeof line, "%-16s %6s %6s %15s %15s %15s %22s\n", "attribute", "ECE", "temp", "cov@0.5 acc",
                  "cov@0.8 acc", "cov@0.9 acc", "threshold -> coverage");
    o << line;
    for (const auto& a : r.attributes) {
      if (!a.calibrated) continue;
      auto at = [&](double t) {
        for (const auto& c : a.coverage)
          if (std::abs(c.threshold - t) < 1e-9) return c;
        return CoveragePoint{};
      };
      CoveragePoint c5 = at(0.5), c8 = at(0.8), c9 = at(0.9);
      char thr[64];
      if (a.suggested_threshold >= 0) std::snprintf(thr, sizeof thr, "%.3f -> %.3f", a.suggested_threshold, a.suggested_coverage);
      else std::snprintf(thr, sizeof thr, "none reaches it");
      std::snprintf(line, sizeof line, "%-16s %6.3f %6.2f %7.3f %7.3f %7.3f %7.3f %7.3f %7.3f %22s\n", a.attribute.c_str(), a.ece,
                    a.temperature, c5.coverage, c5.accuracy, c8.coverage, c8.accuracy, c9.coverage, c9.accuracy, thr);
      o << line;
    }
  }
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

std::string compare_table(const EvalReport& free_answers, const EvalReport& choice_answers) {
  std::ostringstream o;
  char line[256];
  std::snprintf(line, sizeof line, "%-16s %7s %9s %9s %9s\n", "attribute", "pairs", "free", "choice", "majority");
  o << line;
  for (const auto& c : choice_answers.attributes) {
    double free_accuracy = -1;
    for (const auto& f : free_answers.attributes)
      if (f.attribute == c.attribute) free_accuracy = f.accuracy;
    std::snprintf(line, sizeof line, "%-16s %7lld %9.3f %9.3f %9.3f\n", c.attribute.c_str(), (long long)c.n, free_accuracy,
                  c.accuracy, c.majority_accuracy);
    o << line;
  }
  std::snprintf(line, sizeof line, "%-16s %7lld %9.3f %9.3f\n", "all", (long long)choice_answers.n, free_answers.accuracy,
                choice_answers.accuracy);
  o << line;
  return o.str();
}

std::string shift_table(const EvalReport& as_is, const EvalReport& shifted, PhotoShift shift) {
  std::ostringstream o;
  char line[256];
  std::snprintf(line, sizeof line, "%-16s %7s %9s %9s %9s %9s\n", "attribute", "pairs", "as-is", photo_shift_name(shift),
                "change", "majority");
  o << line;
  for (const auto& a : as_is.attributes) {
    const AttributeEval* s = nullptr;
    for (const auto& b : shifted.attributes)
      if (b.attribute == a.attribute) s = &b;
    if (!s) continue;
    std::snprintf(line, sizeof line, "%-16s %7lld %9.3f %9.3f %+9.3f %9.3f\n", a.attribute.c_str(), (long long)a.n, a.accuracy,
                  s->accuracy, s->accuracy - a.accuracy, a.majority_accuracy);
    o << line;
  }
  std::snprintf(line, sizeof line, "%-16s %7lld %9.3f %9.3f %+9.3f\n", "all", (long long)as_is.n, as_is.accuracy, shifted.accuracy,
                shifted.accuracy - as_is.accuracy);
  o << line;
  return o.str();
}

}  // namespace tailor
