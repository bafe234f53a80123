// `tailor eval`: exact-match accuracy per attribute, with the majority-class baseline beside it and
// a confusion table per attribute.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "catalog/dataset.h"
#include "infer/answerer.h"

namespace tailor {

struct Prediction {
  std::string id, attribute, image, truth, predicted, raw;
};

struct AttributeEval {
  std::string attribute;
  int64_t n = 0, correct = 0;
  double accuracy = 0;
  std::string majority_value;     // most frequent value in the reference (training) pairs
  double majority_accuracy = 0;   // accuracy of always answering it
  std::map<std::string, std::map<std::string, int64_t>> confusion;  // truth -> predicted -> count
};

struct EvalReport {
  std::vector<AttributeEval> attributes;
  int64_t n = 0, correct = 0;
  double accuracy = 0;
  std::vector<Prediction> predictions;
};

// Asks the model every pair (batched, photos loaded once), compares the predicted value with the
// truth. `reference` gives the majority class per attribute (the training pairs; the eval pairs
// themselves when empty).
EvalReport evaluate(Answerer& model, const std::vector<VqaPair>& pairs, const std::vector<VqaPair>& reference,
                    int batch_size = 32, const GenerationOptions& gen = {}, bool progress = true);
// The report of predictions made elsewhere (e.g. gathered from the ranks of a distributed run), in
// the order given; `reference` gives the majority class per attribute.
EvalReport summarize_predictions(std::vector<Prediction> predictions, const std::vector<VqaPair>& reference);
std::string eval_report_json(const EvalReport& r);  // the JSON report
std::string eval_table(const EvalReport& r);        // readable text table + confusion tables

}  // namespace tailor
