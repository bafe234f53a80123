// tailor-test: base
// The SVG charts: the loss curve read from a train_log.jsonl (pre-training and eval lines left out,
// a bad line named), accuracy bars against the baseline, the weakest attribute's confusion, and
// labels escaped.
#include <gtest/gtest.h>

#include "app/charts.h"
#include "test_util.h"
#include "train/eval.h"
#include "util/error.h"
#include "util/fs.h"

namespace tailor {
namespace {

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t i = s.find(what); i != std::string::npos; i = s.find(what, i + 1)) ++n;
  return n;
}

TEST(Charts, LossCurveComesFromTheTrainingStepsOfTheLog) {
  std::string dir = test::temp_dir("charts_loss");
  std::string log = join_path(dir, "train_log.jsonl");
  write_file_atomic(log,
                    "{\"stage\":\"pretrain\",\"epoch\":1,\"loss\":9.0}\n"
                    "{\"step\":1,\"epoch\":1,\"loss\":4.5,\"lr\":0.001}\n"
                    "{\"step\":2,\"epoch\":1,\"loss\":3.0,\"lr\":0.001}\n"
                    "{\"step\":2,\"epoch\":1,\"eval_accuracy\":0.5}\n"
                    "{\"step\":3,\"epoch\":1,\"loss\":1.25,\"lr\":0.001}\n");
  auto points = read_loss_curve(log);
  ASSERT_EQ(points.size(), 3u);
  EXPECT_EQ(points[2].step, 3);
  EXPECT_DOUBLE_EQ(points[2].loss, 1.25);
  std::string svg = svg_loss_curve(points);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_EQ(count(svg, "<polyline"), 1u);
  EXPECT_NE(svg.find("optimizer step"), std::string::npos);
  EXPECT_TRUE(read_loss_curve(join_path(dir, "absent.jsonl")).empty());

  write_file_atomic(log, "{\"step\":1,\"loss\":2}\nnot json\n");
  try {
    read_loss_curve(log);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(log + ":2: not a JSON object"), std::string::npos) << e.what();
  }
}

TEST(Charts, AccuracyBarsTheWeakestAttributesConfusionAndEscapedLabels) {
  ChartData data;
  data.scores = {{"Fit", 10, 0.9, 0.6, "Regular Fit"}, {"<Colour>", 10, 0.5, 0.4, "Blue & Red"}, {"Neck", 10, 0.7, 0.7, "Round"}};
  data.confusions["Neck"] = {{"Round", {{"Round", 7}, {"V", 1}}}, {"V", {{"Round", 2}}}};
  data.confusions["Fit"] = {{"Slim", {{"Slim", 9}}}};
  EXPECT_EQ(weakest_attribute(data.scores), "Neck");  // 0.0 above its baseline
  std::string html = charts_html(data);
  EXPECT_EQ(count(html, "<svg"), 2u);
  EXPECT_NE(html.find("Confusion of the weakest attribute: Neck"), std::string::npos);
  EXPECT_NE(html.find("&lt;Colour&gt;"), std::string::npos);
  EXPECT_EQ(html.find("<Colour>"), std::string::npos);
  EXPECT_NE(html.find("Blue &amp; Red"), std::string::npos);
  // The confusion: 2x2 cells, counts in the non-empty ones.
  std::string svg = svg_confusion("Neck", data.confusions["Neck"]);
  EXPECT_EQ(count(svg, "<rect"), 4u);
  EXPECT_NE(svg.find(">7</text>"), std::string::npos);
  EXPECT_NE(svg.find("true V, predicted Round: 2"), std::string::npos);

  data.loss = {{1, 2.0}, {2, 1.0}};
  EXPECT_EQ(count(charts_html(data), "<svg"), 3u);
  EXPECT_NE(charts_html(ChartData{}).find("No training log"), std::string::npos);
}

TEST(Charts, ManyValuesFoldIntoOther) {
  Confusion c;
  for (int i = 0; i < 20; ++i) c["v" + std::to_string(i)]["v" + std::to_string(i)] = 20 - i;
  std::string svg = svg_confusion("Colour", c);
  EXPECT_EQ(count(svg, "<rect"), 12u * 12u);
  EXPECT_NE(svg.find("(other)"), std::string::npos);
}

// What the demo report draws: a validation report and the training log.
TEST(Charts, FromAnEvalReportAndATrainingLog) {
  std::string dir = test::temp_dir("charts_eval");
  write_file_atomic(join_path(dir, "train_log.jsonl"), "{\"step\":1,\"loss\":3}\n{\"step\":2,\"loss\":2}\n");
  EvalReport r;
  AttributeEval neck;
  neck.attribute = "Neck";
  neck.n = 4;
  neck.accuracy = 0.5;
  neck.majority_accuracy = 0.75;
  neck.majority_value = "Round";
  neck.confusion = {{"Round", {{"Round", 2}, {"V", 1}}}, {"V", {{"Round", 1}}}};
  r.attributes = {neck};
  std::string html = eval_charts_html(join_path(dir, "train_log.jsonl"), r);
  EXPECT_EQ(count(html, "<svg"), 3u);
  EXPECT_NE(html.find("Confusion of the weakest attribute: Neck"), std::string::npos);
}

}  // namespace
}  // namespace tailor
