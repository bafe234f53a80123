// Charts drawn by tailor as inline SVG (no plotting service, nothing fetched): the training loss
// curve, accuracy per attribute against the majority baseline, and the confusion of one attribute.
// Used by `tailor review`'s summary and the demo's HTML report. Every label is HTML-escaped.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tailor {

struct EvalReport;

struct LossPoint {
  int64_t step = 0;
  double loss = 0;
};

// The language-model steps of a `tailor train` train_log.jsonl (lines with "step" and "loss", not
// the pre-training ones). A line that is not JSON throws Error naming file:line; no file → empty.
std::vector<LossPoint> read_loss_curve(const std::string& train_log_path);

struct AttributeScore {
  std::string attribute;
  int64_t n = 0;                  // answers judged
  double accuracy = 0;            // the model's
  double majority_accuracy = 0;   // always answering the most frequent value
  std::string majority_value;
};

// truth -> predicted -> count
using Confusion = std::map<std::string, std::map<std::string, int64_t>>;

std::string svg_loss_curve(const std::vector<LossPoint>& points);
std::string svg_accuracy_bars(const std::vector<AttributeScore>& scores);
std::string svg_confusion(const std::string& attribute, const Confusion& confusion, const std::string& truth_label = "true",
                          const std::string& predicted_label = "predicted");

struct ChartData {
  std::vector<LossPoint> loss;
  std::vector<AttributeScore> scores;
  std::map<std::string, Confusion> confusions;  // attribute -> its confusion
};
// The weakest attribute: the lowest accuracy above its baseline (ties: fewer answers first); "" when none.
std::string weakest_attribute(const std::vector<AttributeScore>& scores);
// A <section> with the charts there is data for (loss curve, accuracy bars, the weakest attribute's
// confusion), each under an <h3>; a short note where there is none.
std::string charts_html(const ChartData& data, const std::string& truth_label = "true",
                        const std::string& predicted_label = "predicted");
// The same from a validation report and a train_log.jsonl (the demo's report).
std::string eval_charts_html(const std::string& train_log_path, const EvalReport& report);

// Text for HTML element content and attribute values: & < > " ' escaped.
std::string escape_html(const std::string& s);

}  // namespace tailor
