// `tailor eval`: exact-match accuracy per attribute, with the majority-class baseline beside it and
// a confusion table per attribute; for choice answers (infer/answerer.h) also how well their
// confidence is calibrated: expected calibration error, a reliability table, accuracy at coverage,
// the threshold that reaches a target precision, and a fitted softmax temperature.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "catalog/dataset.h"
#include "infer/answerer.h"
#include "train/reframe.h"

namespace tailor {

struct Prediction {
  std::string id, attribute, image, truth, predicted, raw;
  double confidence = -1;                // choice answers only
  std::vector<double> log_likelihoods;   // choice answers: one per candidate
  int truth_candidate = -1;              // index of the true value among the candidates (-1: not one)
};

struct ReliabilityBin {  // predictions whose confidence lies in [low, high)
  double low = 0, high = 0, mean_confidence = 0, accuracy = 0;
  int64_t n = 0;
};

struct CoveragePoint {  // accept the answers with confidence >= threshold
  double threshold = 0, coverage = 0, accuracy = 0;
  int64_t accepted = 0;
};

struct AttributeEval {
  std::string attribute;
  int64_t n = 0, correct = 0;
  double accuracy = 0;
  std::string majority_value;     // most frequent value in the reference (training) pairs
  double majority_accuracy = 0;   // accuracy of always answering it
  std::map<std::string, std::map<std::string, int64_t>> confusion;  // truth -> predicted -> count
  // Calibration, when every prediction of the attribute has a confidence (choice answers):
  bool calibrated = false;
  double ece = 0;                          // expected calibration error over 10 equal-width bins
  std::vector<ReliabilityBin> reliability;
  std::vector<CoveragePoint> coverage;     // thresholds 0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99
  double suggested_threshold = -1;         // lowest threshold whose accepted answers reach the target precision (-1: none)
  double suggested_coverage = 0;
  double temperature = 1;                  // minimises the true values' negative log-likelihood
  double calibrated_threshold = -1;        // suggested_threshold for the confidences at that temperature
  double calibrated_coverage = 0;
};

// Fewer pairs whose truth is a candidate than this: the temperature stays 1.
constexpr int64_t kMinPairsToFitTemperature = 30;

struct EvalReport {
  std::vector<AttributeEval> attributes;
  int64_t n = 0, correct = 0;
  double accuracy = 0;
  std::vector<Prediction> predictions;
  double seconds = 0;  // evaluate(): wall time of answering (photos loaded, model calls)
};

// Asks the model every pair (batched, photos loaded once), compares the predicted value with the
// truth. `reference` gives the majority class per attribute (the training pairs; the eval pairs
// themselves when empty).
// mode: choice among the model's known values (model.task()) or free generation.
// shift: each photo rendered as another source would frame it (train/reframe.h), keyed by product id.
EvalReport evaluate(Answerer& model, const std::vector<VqaPair>& pairs, const std::vector<VqaPair>& reference,
                    int batch_size = 32, const GenerationOptions& gen = {}, bool progress = true,
                    AnswerMode mode = AnswerMode::Free, double target_precision = 0.98,
                    PhotoShift shift = PhotoShift::None);
// The report of predictions made elsewhere (e.g. gathered from the ranks of a distributed run), in
// the order given; `reference` gives the majority class per attribute.
EvalReport summarize_predictions(std::vector<Prediction> predictions, const std::vector<VqaPair>& reference,
                                 double target_precision = 0.98);
// The calibration part of an attribute's report from its predictions (all with a confidence).
void calibrate_attribute(AttributeEval& a, const std::vector<const Prediction*>& predictions, double target_precision);
// The model's task with each calibrated attribute's fitted temperature and the threshold for the
// confidences at that temperature.
TaskInfo with_calibration(TaskInfo task, const EvalReport& r);
std::string eval_report_json(const EvalReport& r);  // the JSON report
std::string eval_table(const EvalReport& r);        // readable text table + confusion tables
// Accuracy per attribute of free and of choice answers on the same pairs, side by side.
std::string compare_table(const EvalReport& free_answers, const EvalReport& choice_answers);
// Accuracy per attribute on the photos as they are and as another source frames them, with the
// majority baseline and the difference.
std::string shift_table(const EvalReport& as_is, const EvalReport& shifted, PhotoShift shift);

}  // namespace tailor
