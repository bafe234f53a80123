// Evaluation: exact-match accuracy per attribute, the majority-class baseline and the confusion table,
// on hand-made pairs answered by a scripted Answerer; every number is counted again here from the
// script, and the JSON report carries the same numbers.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/attributes.h"
#include "catalog/images.h"
#include "test_util.h"
#include "train/eval.h"
#include "util/error.h"
#include "util/fs.h"

using namespace tailor;

namespace {

// Answers from a table keyed by prompt; records what it was asked.
class ScriptedAnswerer : public Answerer {
 public:
  std::map<std::string, std::string> script;  // prompt -> generated text
  std::set<const ImageRGB*> images_seen;
  int calls = 0;
  size_t largest_batch = 0;
  TaskInfo info;

  std::vector<Answer> answer(const std::vector<AnswerRequest>& reqs, const GenerationOptions&) override {
    ++calls;
    largest_batch = std::max(largest_batch, reqs.size());
    std::vector<Answer> out;
    for (const auto& r : reqs) {
      images_seen.insert(r.image.get());
      out.push_back({script.at(r.prompt)});
    }
    return out;
  }
  const TaskInfo& task() const override { return info; }
  std::string name() const override { return "scripted"; }
};

struct Case {
  std::string attribute, truth, generated, predicted_value;  // predicted_value: what the text says
  int photo;
};

std::string write_photo(const std::string& dir, int i) {
  ImageRGB img;
  img.width = 8;
  img.height = 8;
  img.pixels.assign(8 * 8 * 3, static_cast<uint8_t>(40 * i));
  std::string path = dir + "/photo" + std::to_string(i) + ".png";
  std::vector<uint8_t> png = encode_png(img);
  write_file_atomic(path, png.data(), png.size());
  return path;
}

VqaPair make_pair(const std::string& photo, int id, const std::string& attribute, const std::string& value) {
  VqaPair p;
  p.id = std::to_string(1000 + id);
  p.image = photo;
  p.attribute = attribute;
  p.question = "Question number " + std::to_string(id) + " about " + attribute + "?";
  p.prompt = wrap_prompt(p.question);
  p.value = value;
  p.answer = answer_text(attribute, value);
  return p;
}

}  // namespace

TEST(Eval, AccuracyBaselineAndConfusion) {
  std::string dir = test::temp_dir("eval");
  std::vector<std::string> photos = {write_photo(dir, 0), write_photo(dir, 1), write_photo(dir, 2)};
  const std::vector<Case> cases = {
      {"Sleeve Length", "Long Sleeves", "Sleeve Length: Long Sleeves", "Long Sleeves", 0},
      {"Sleeve Length", "Long Sleeves", "Sleeve Length: Short Sleeves", "Short Sleeves", 1},
      {"Sleeve Length", "Short Sleeves", "Sleeve Length:  Short Sleeves ", "Short Sleeves", 2},
      {"Sleeve Length", "Long Sleeves", "Long Sleeves", "Long Sleeves", 0},  // no prefix: the whole text
      {"Sleeve Length", "Short Sleeves", "Pattern: Solid", "Pattern: Solid", 1},  // wrong prefix: wrong
      {"Pattern", "Solid", "Pattern: Solid", "Solid", 0},
      {"Pattern", "Striped", "Pattern: Solid", "Solid", 1},
      {"Pattern", "Striped", "Pattern: Striped", "Striped", 2},
      {"Pattern", "Checked", "Pattern: checked", "checked", 2},  // exact match is case-sensitive
  };
  std::vector<VqaPair> pairs;
  ScriptedAnswerer model;
  for (size_t i = 0; i < cases.size(); ++i) {
    pairs.push_back(make_pair(photos[cases[i].photo], static_cast<int>(i), cases[i].attribute, cases[i].truth));
    model.script[pairs.back().prompt] = cases[i].generated;
  }
  // Training pairs: the majority is Short Sleeves (3 of 5) and Striped (2 of 3).
  std::vector<VqaPair> train;
  int k = 100;
  for (const char* v : {"Short Sleeves", "Long Sleeves", "Short Sleeves", "Long Sleeves", "Short Sleeves"})
    train.push_back(make_pair(photos[0], k++, "Sleeve Length", v));
  for (const char* v : {"Striped", "Solid", "Striped"}) train.push_back(make_pair(photos[0], k++, "Pattern", v));

  EvalReport r = evaluate(model, pairs, train, 4, {}, false);

  // Independent counts from the cases.
  std::map<std::string, int64_t> n, correct, majority_hits;
  std::map<std::string, std::string> majority = {{"Sleeve Length", "Short Sleeves"}, {"Pattern", "Striped"}};
  std::map<std::string, std::map<std::string, std::map<std::string, int64_t>>> confusion;
  for (const auto& c : cases) {
    n[c.attribute]++;
    if (c.predicted_value == c.truth) correct[c.attribute]++;
    if (c.truth == majority[c.attribute]) majority_hits[c.attribute]++;
    confusion[c.attribute][c.truth][c.predicted_value]++;
  }
  ASSERT_EQ(r.attributes.size(), 2u);
  EXPECT_EQ(r.attributes[0].attribute, "Sleeve Length");  // in order of first appearance
  EXPECT_EQ(r.attributes[1].attribute, "Pattern");
  int64_t total = 0, total_correct = 0;
  for (const auto& a : r.attributes) {
    SCOPED_TRACE(a.attribute);
    EXPECT_EQ(a.n, n[a.attribute]);
    EXPECT_EQ(a.correct, correct[a.attribute]);
    EXPECT_DOUBLE_EQ(a.accuracy, static_cast<double>(correct[a.attribute]) / n[a.attribute]);
    EXPECT_EQ(a.majority_value, majority[a.attribute]);
    EXPECT_DOUBLE_EQ(a.majority_accuracy, static_cast<double>(majority_hits[a.attribute]) / n[a.attribute]);
    EXPECT_EQ(a.confusion, confusion[a.attribute]);
    total += n[a.attribute];
    total_correct += correct[a.attribute];
  }
  EXPECT_EQ(correct["Sleeve Length"], 3);  // the hand count, so the loop above is not vacuous
  EXPECT_EQ(correct["Pattern"], 2);
  EXPECT_EQ(r.n, total);
  EXPECT_EQ(r.correct, total_correct);
  EXPECT_DOUBLE_EQ(r.accuracy, static_cast<double>(total_correct) / total);

  // Batching: 9 pairs in batches of 4; each photo decoded once, shared by its questions.
  EXPECT_EQ(model.calls, 3);
  EXPECT_EQ(model.largest_batch, 4u);
  EXPECT_EQ(model.images_seen.size(), 3u);

  // The JSON report says the same.
  nlohmann::json j = nlohmann::json::parse(eval_report_json(r));
  EXPECT_EQ(j["pairs"], total);
  EXPECT_EQ(j["correct"], total_correct);
  ASSERT_EQ(j["attributes"].size(), 2u);
  EXPECT_EQ(j["attributes"][0]["attribute"], "Sleeve Length");
  EXPECT_EQ(j["attributes"][0]["correct"], correct["Sleeve Length"]);
  EXPECT_EQ(j["attributes"][0]["majority_value"], "Short Sleeves");
  EXPECT_EQ(j["attributes"][1]["confusion"]["Striped"]["Solid"], 1);
  EXPECT_EQ(j["predictions"].size(), cases.size());
  EXPECT_EQ(j["predictions"][4]["generated_text"], "Pattern: Solid");
  EXPECT_EQ(j["predictions"][4]["truth"], "Short Sleeves");

  // The text table names each attribute with its accuracy and baseline.
  std::string table = eval_table(r);
  EXPECT_NE(table.find("Sleeve Length"), std::string::npos);
  EXPECT_NE(table.find("0.600"), std::string::npos);  // Sleeve Length: 3 of 5
  EXPECT_NE(table.find("confusion for Pattern"), std::string::npos);
}

TEST(Eval, MajorityFromEvalPairsWithoutReference) {
  std::string dir = test::temp_dir("eval_noref");
  std::string photo = write_photo(dir, 0);
  std::vector<VqaPair> pairs = {make_pair(photo, 0, "Neck", "Round Neck"), make_pair(photo, 1, "Neck", "V-Neck"),
                                make_pair(photo, 2, "Neck", "V-Neck")};
  ScriptedAnswerer model;
  for (const auto& p : pairs) model.script[p.prompt] = "Neck: Round Neck";
  EvalReport r = evaluate(model, pairs, {}, 32, {}, false);
  ASSERT_EQ(r.attributes.size(), 1u);
  EXPECT_EQ(r.attributes[0].majority_value, "V-Neck");
  EXPECT_DOUBLE_EQ(r.attributes[0].majority_accuracy, 2.0 / 3.0);
  EXPECT_EQ(r.attributes[0].correct, 1);
}

TEST(Eval, BadInputs) {
  std::string dir = test::temp_dir("eval_bad");
  ScriptedAnswerer model;
  EXPECT_THROW(evaluate(model, {}, {}, 8, {}, false), Error);
  VqaPair p = make_pair(dir + "/missing.png", 0, "Neck", "V-Neck");
  model.script[p.prompt] = "Neck: V-Neck";
  try {
    evaluate(model, {p}, {}, 8, {}, false);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/missing.png"), std::string::npos) << e.what();
  }
  std::string photo = write_photo(dir, 1);
  VqaPair ok = make_pair(photo, 1, "Neck", "V-Neck");
  model.script[ok.prompt] = "Neck: V-Neck";
  EXPECT_THROW(evaluate(model, {ok}, {}, 0, {}, false), Error);  // batch size 0 would never finish
}

// Calibration of choice answers, against numbers worked out by hand.
TEST(EvalCalibration, EceCoverageThresholdAndTemperatureByHand) {
  auto pred = [](double conf, bool right, std::vector<double> ll, int truth) {
    Prediction p;
    p.attribute = "Fit";
    p.truth = "Slim";
    p.predicted = right ? "Slim" : "Regular";
    p.confidence = conf;
    p.log_likelihoods = std::move(ll);
    p.truth_candidate = truth;
    return p;
  };
  // Two sure and right, two at 0.55 with one right; candidates (Slim, Regular). Ten times over, so
  // there are enough pairs to fit a temperature.
  std::vector<Prediction> ps;
  for (int i = 0; i < 10; ++i)
    for (const Prediction& p : {pred(0.95, true, {0, -3}, 0), pred(0.95, true, {0, -3}, 0),
                                pred(0.55, false, {-0.2, 0}, 0), pred(0.55, true, {0, -0.2}, 0)})
      ps.push_back(p);
  std::vector<const Prediction*> ptrs;
  for (const auto& p : ps) ptrs.push_back(&p);
  AttributeEval a;
  a.attribute = "Fit";
  calibrate_attribute(a, ptrs, 0.98);
  ASSERT_TRUE(a.calibrated);
  // Bins [0.9,1): 2 at 0.95, accuracy 1; [0.5,0.6): 2 at 0.55, accuracy 0.5. ECE = 0.5*0.05 + 0.5*0.05.
  EXPECT_NEAR(a.ece, 0.05, 1e-12);
  EXPECT_EQ(a.reliability[9].n, 20);
  EXPECT_EQ(a.reliability[5].n, 20);
  EXPECT_NEAR(a.reliability[5].accuracy, 0.5, 1e-12);
  for (const CoveragePoint& c : a.coverage) {
    if (c.threshold == 0.9) {
      EXPECT_EQ(c.accepted, 20);
      EXPECT_NEAR(c.coverage, 0.5, 1e-12);
      EXPECT_NEAR(c.accuracy, 1.0, 1e-12);
    }
    if (c.threshold == 0.5) EXPECT_NEAR(c.accuracy, 0.75, 1e-12);
  }
  // Accepting >= 0.55 gives 0.75 accuracy; >= 0.95 gives 1.0 on half of the answers.
  EXPECT_NEAR(a.suggested_threshold, 0.95, 1e-12);
  EXPECT_NEAR(a.suggested_coverage, 0.5, 1e-12);
  // The true values' NLL is lower at the fitted temperature than at 1 and at its neighbours.
  auto nll = [&](double t) {
    double s = 0;
    for (const auto& p : ps) {
      double z = std::log(std::exp(p.log_likelihoods[0] / t) + std::exp(p.log_likelihoods[1] / t));
      s += -(p.log_likelihoods[static_cast<size_t>(p.truth_candidate)] / t - z);
    }
    return s;
  };
  EXPECT_LE(nll(a.temperature), nll(1.0));
  EXPECT_LE(nll(a.temperature), nll(a.temperature * 1.05) + 1e-9);
  EXPECT_LE(nll(a.temperature), nll(a.temperature / 1.05) + 1e-9);
  // Stored with the model: temperature and threshold per calibrated attribute.
  EvalReport r;
  r.attributes.push_back(a);
  TaskInfo t = with_calibration(TaskInfo{}, r);
  EXPECT_NEAR(t.temperature.at("Fit"), a.temperature, 1e-12);
  // Stored: the threshold for the confidences at the fitted temperature (the sure answers' softmax).
  double sure = 1 / (1 + std::exp(-3 / a.temperature));
  EXPECT_NEAR(a.calibrated_threshold, sure, 1e-9);
  EXPECT_NEAR(t.threshold.at("Fit"), sure, 1e-9);
  std::string dir = test::temp_dir("calibration");
  t.attributes = default_attributes();
  save_task_info(dir, t);
  TaskInfo back = load_task_info(dir);
  EXPECT_NEAR(back.temperature.at("Fit"), a.temperature, 1e-12);
  EXPECT_NEAR(back.threshold.at("Fit"), sure, 1e-9);
  // Too few informative pairs: the temperature stays 1.
  std::vector<const Prediction*> few(ptrs.begin(), ptrs.begin() + 4);
  AttributeEval b;
  calibrate_attribute(b, few, 0.98);
  EXPECT_EQ(b.temperature, 1.0);
}

namespace {

// Answers by the photo's shape: square photos have long sleeves, others short; records each photo.
class ShapeAnswerer : public Answerer {
 public:
  std::map<std::string, std::vector<uint8_t>> photo_of;  // product id (from the prompt) -> pixels seen
  std::map<std::string, std::string> id_of_prompt;
  TaskInfo info;
  std::vector<Answer> answer(const std::vector<AnswerRequest>& reqs, const GenerationOptions&) override {
    std::vector<Answer> out;
    for (const auto& r : reqs) {
      photo_of[id_of_prompt.at(r.prompt)] = r.image->pixels;
      out.push_back({r.image->width == r.image->height ? "Sleeve Length: Long Sleeves" : "Sleeve Length: Short Sleeves"});
    }
    return out;
  }
  const TaskInfo& task() const override { return info; }
  std::string name() const override { return "shape"; }
};

}  // namespace

// --shift: every photo is rendered as train/reframe.h frames it for its product before the model sees
// it; the accuracy of the same pairs then follows what the model sees (here: the photo's shape).
TEST(Eval, ShiftedPhotosAreRenderedPerProductBeforeAnswering) {
  std::string dir = test::temp_dir("eval_shift");
  std::vector<VqaPair> pairs;
  ShapeAnswerer model;
  for (int i = 0; i < 6; ++i) {
    std::string photo = write_photo(dir, i);
    pairs.push_back(make_pair(photo, i, "Sleeve Length", i < 4 ? "Long Sleeves" : "Short Sleeves"));
    model.id_of_prompt[pairs.back().prompt] = pairs.back().id;
  }
  EvalReport as_is = evaluate(model, pairs, {}, 4, {}, false);
  EXPECT_EQ(as_is.correct, 4);  // square photos: every answer "Long Sleeves"
  for (const auto& p : pairs) EXPECT_EQ(model.photo_of.at(p.id), load_image(p.image).pixels) << p.id;
  EvalReport shifted = evaluate(model, pairs, {}, 4, {}, false, AnswerMode::Free, 0.98, PhotoShift::OtherSource);
  EXPECT_EQ(shifted.correct, 2);  // 225x300 photos: every answer "Short Sleeves"
  for (const auto& p : pairs)
    EXPECT_EQ(model.photo_of.at(p.id), shift_photo(load_image(p.image), PhotoShift::OtherSource, p.id).pixels) << p.id;
  std::string table = shift_table(as_is, shifted, PhotoShift::OtherSource);
  EXPECT_NE(table.find("other-source"), std::string::npos) << table;
  EXPECT_NE(table.find("Sleeve Length          6     0.667     0.333    -0.333"), std::string::npos) << table;
}
