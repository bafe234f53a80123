#include "app/charts.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "train/eval.h"
#include "util/error.h"
#include "util/fs.h"

namespace tailor {

namespace {

std::string num(double v, const char* format = "%.1f") {
  char b[64];
  std::snprintf(b, sizeof b, format, v);
  return b;
}

// A round step for about `ticks` divisions of `range` (1, 2 or 5 times a power of ten).
double nice_step(double range, int ticks) {
  if (range <= 0) return 1;
  double raw = range / ticks;
  double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * power) return m * power;
  return 10 * power;
}

// Short enough for a label column; the full text stays in a <title> tooltip.
std::string clip(const std::string& s, size_t n) { return s.size() <= n ? s : s.substr(0, n - 1) + "\u2026"; }

const char* const kFont = "font-family=\"sans-serif\" font-size=\"11\"";

}  // namespace

std::string escape_html(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += ch;
    }
  }
  return out;
}

std::vector<LossPoint> read_loss_curve(const std::string& train_log_path) {
  std::vector<LossPoint> out;
  if (train_log_path.empty() || !file_exists(train_log_path)) return out;
  std::istringstream in(read_file(train_log_path));
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      throw Error(train_log_path + ":" + std::to_string(line_no) + ": not a JSON object");
    if (j.contains("stage") || !j.contains("step") || !j.contains("loss")) continue;  // pre-training, eval lines
    if (!j["step"].is_number_integer() || !j["loss"].is_number())
      throw Error(train_log_path + ":" + std::to_string(line_no) + ": \"step\" must be an integer and \"loss\" a number");
    out.push_back({j["step"].get<int64_t>(), j["loss"].get<double>()});
  }
  return out;
}

std::string svg_loss_curve(const std::vector<LossPoint>& points) {
  const double width = 640, height = 260, left = 56, right = 16, top = 14, bottom = 40;
  const double plot_w = width - left - right, plot_h = height - top - bottom;
  double x_min = points.front().step, x_max = points.back().step, y_max = 0;
  for (const auto& p : points) {
    x_min = std::min<double>(x_min, p.step);
    x_max = std::max<double>(x_max, p.step);
    if (std::isfinite(p.loss)) y_max = std::max(y_max, p.loss);
  }
  if (x_max <= x_min) x_max = x_min + 1;
  double y_step = nice_step(y_max > 0 ? y_max : 1, 5);
  y_max = std::ceil((y_max > 0 ? y_max : 1) / y_step) * y_step;
  auto x_of = [&](double s) { return left + (s - x_min) / (x_max - x_min) * plot_w; };
  auto y_of = [&](double v) { return top + plot_h - v / y_max * plot_h; };

  std::string s = "<svg class=\"chart\" role=\"img\" aria-label=\"training loss per step\" width=\"" + num(width, "%.0f") +
                  "\" height=\"" + num(height, "%.0f") + "\" viewBox=\"0 0 " + num(width, "%.0f") + " " +
                  num(height, "%.0f") + "\" xmlns=\"http://www.w3.org/2000/svg\" " + kFont + ">\n";
  for (double v = 0; v <= y_max + 1e-9; v += y_step) {
    s += "<line x1=\"" + num(left) + "\" x2=\"" + num(left + plot_w) + "\" y1=\"" + num(y_of(v)) + "\" y2=\"" +
         num(y_of(v)) + "\" stroke=\"#e4e4e4\"/>";
    s += "<text x=\"" + num(left - 6) + "\" y=\"" + num(y_of(v) + 4) + "\" text-anchor=\"end\">" + num(v, "%g") + "</text>\n";
  }
  double x_step = nice_step(x_max - x_min, 6);
  for (double v = std::ceil(x_min / x_step) * x_step; v <= x_max + 1e-9; v += x_step)
    s += "<text x=\"" + num(x_of(v)) + "\" y=\"" + num(top + plot_h + 16) + "\" text-anchor=\"middle\">" +
         num(v, "%.0f") + "</text>\n";
  s += "<line x1=\"" + num(left) + "\" x2=\"" + num(left) + "\" y1=\"" + num(top) + "\" y2=\"" + num(top + plot_h) +
       "\" stroke=\"#444\"/><line x1=\"" + num(left) + "\" x2=\"" + num(left + plot_w) + "\" y1=\"" + num(top + plot_h) +
       "\" y2=\"" + num(top + plot_h) + "\" stroke=\"#444\"/>\n";
  // At most ~1000 vertices: a long run's every step adds nothing a 600-pixel line can show.
  size_t stride = std::max<size_t>(1, points.size() / 1000);
  s += "<polyline fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"1.5\" points=\"";
  for (size_t i = 0; i < points.size(); i += stride)
    if (std::isfinite(points[i].loss)) s += num(x_of(points[i].step)) + "," + num(y_of(points[i].loss)) + " ";
  s += num(x_of(points.back().step)) + "," + num(y_of(points.back().loss)) + "\"/>\n";
  s += "<text x=\"" + num(left + plot_w / 2) + "\" y=\"" + num(height - 6) + "\" text-anchor=\"middle\">optimizer step</text>";
  s += "<text x=\"12\" y=\"" + num(top + plot_h / 2) + "\" text-anchor=\"middle\" transform=\"rotate(-90 12 " +
       num(top + plot_h / 2) + ")\">loss</text>\n</svg>\n";
  return s;
}

std::string svg_accuracy_bars(const std::vector<AttributeScore>& scores) {
  const double label_w = 150, bar_w = 360, row_h = 26, top = 24, right = 90;
  const double width = label_w + bar_w + right, height = top + row_h * scores.size() + 28;
  std::string s = "<svg class=\"chart\" role=\"img\" aria-label=\"accuracy per attribute against the majority baseline\" "
                  "width=\"" + num(width, "%.0f") + "\" height=\"" + num(height, "%.0f") + "\" viewBox=\"0 0 " +
                  num(width, "%.0f") + " " + num(height, "%.0f") + "\" xmlns=\"http://www.w3.org/2000/svg\" " + kFont + ">\n";
  s += "<rect x=\"" + num(label_w) + "\" y=\"4\" width=\"12\" height=\"10\" fill=\"#1f5fa8\"/><text x=\"" +
       num(label_w + 16) + "\" y=\"13\">accuracy</text>";
  s += "<line x1=\"" + num(label_w + 90) + "\" x2=\"" + num(label_w + 90) + "\" y1=\"3\" y2=\"15\" stroke=\"#d2691e\" "
       "stroke-width=\"3\"/><text x=\"" + num(label_w + 96) + "\" y=\"13\">majority baseline</text>\n";
  for (size_t i = 0; i < scores.size(); ++i) {
    const auto& a = scores[i];
    double y = top + i * row_h;
    s += "<g><title>" + escape_html(a.attribute) + ": accuracy " + num(a.accuracy, "%.3f") + " on " + std::to_string(a.n) +
         ", baseline " + num(a.majority_accuracy, "%.3f") + " (always \"" + escape_html(a.majority_value) + "\")</title>";
    s += "<text x=\"" + num(label_w - 6) + "\" y=\"" + num(y + 15) + "\" text-anchor=\"end\">" +
         escape_html(clip(a.attribute, 22)) + "</text>";
    s += "<rect x=\"" + num(label_w) + "\" y=\"" + num(y + 3) + "\" width=\"" + num(bar_w) + "\" height=\"" +
         num(row_h - 8) + "\" fill=\"#eef2f7\"/>";
    s += "<rect x=\"" + num(label_w) + "\" y=\"" + num(y + 3) + "\" width=\"" + num(bar_w * a.accuracy) + "\" height=\"" +
         num(row_h - 8) + "\" fill=\"#1f5fa8\"/>";
    double bx = label_w + bar_w * a.majority_accuracy;
    s += "<line x1=\"" + num(bx) + "\" x2=\"" + num(bx) + "\" y1=\"" + num(y) + "\" y2=\"" + num(y + row_h - 2) +
         "\" stroke=\"#d2691e\" stroke-width=\"3\"/>";
    s += "<text x=\"" + num(label_w + bar_w + 6) + "\" y=\"" + num(y + 15) + "\">" + num(a.accuracy, "%.2f") + " / " +
         num(a.majority_accuracy, "%.2f") + "</text></g>\n";
  }
  double axis_y = top + row_h * scores.size() + 2;
  for (int t = 0; t <= 4; ++t)
    s += "<text x=\"" + num(label_w + bar_w * t / 4) + "\" y=\"" + num(axis_y + 14) + "\" text-anchor=\"middle\">" +
         num(t / 4.0, "%g") + "</text>";
  s += "\n</svg>\n";
  return s;
}

std::string svg_confusion(const std::string& attribute, const Confusion& confusion, const std::string& truth_label,
                          const std::string& predicted_label) {
  // The most frequent values (by truth count, then as predicted); the rest are one "other" row/column.
  std::map<std::string, int64_t> frequency;
  for (const auto& [truth, row] : confusion)
    for (const auto& [predicted, n] : row) {
      frequency[truth] += n;
      frequency[predicted] += 0;
    }
  std::vector<std::string> values;
  for (const auto& kv : frequency) values.push_back(kv.first);
  std::stable_sort(values.begin(), values.end(), [&](const auto& a, const auto& b) { return frequency[a] > frequency[b]; });
  const size_t max_values = 12;
  bool other = values.size() > max_values;
  if (other) values.resize(max_values - 1);
  auto slot = [&](const std::string& v) -> size_t {
    size_t i = std::find(values.begin(), values.end(), v) - values.begin();
    return i < values.size() ? i : values.size();  // "other"
  };
  size_t n = values.size() + (other ? 1 : 0);
  std::vector<std::vector<int64_t>> cells(n, std::vector<int64_t>(n, 0));
  std::vector<int64_t> row_total(n, 0);
  for (const auto& [truth, row] : confusion)
    for (const auto& [predicted, count] : row) {
      cells[slot(truth)][slot(predicted)] += count;
      row_total[slot(truth)] += count;
    }
  auto label = [&](size_t i) { return i < values.size() ? values[i] : std::string("(other)"); };

  // Room on the right for the last column's label, rotated up-right, and for the axis caption.
  const double cell = 34, label_w = 130, top = 96;
  const double width = label_w + cell * n + 160, height = top + cell * n + 30;
  std::string s = "<svg class=\"chart\" role=\"img\" aria-label=\"confusion of " + escape_html(attribute) + "\" width=\"" +
                  num(width, "%.0f") + "\" height=\"" + num(height, "%.0f") + "\" viewBox=\"0 0 " + num(width, "%.0f") +
                  " " + num(height, "%.0f") + "\" xmlns=\"http://www.w3.org/2000/svg\" " + kFont + ">\n";
  for (size_t c = 0; c < n; ++c) {
    double x = label_w + c * cell + cell / 2;
    s += "<text x=\"" + num(x) + "\" y=\"" + num(top - 6) + "\" transform=\"rotate(-45 " + num(x) + " " + num(top - 6) +
         ")\">" + escape_html(clip(label(c), 16)) + "</text>";
  }
  for (size_t r = 0; r < n; ++r) {
    double y = top + r * cell;
    s += "<text x=\"" + num(label_w - 6) + "\" y=\"" + num(y + cell / 2 + 4) + "\" text-anchor=\"end\">" +
         escape_html(clip(label(r), 20)) + "</text>";
    for (size_t c = 0; c < n; ++c) {
      double share = row_total[r] > 0 ? static_cast<double>(cells[r][c]) / row_total[r] : 0;
      // Blue where right (the diagonal), red where wrong; the darker, the larger the row's share.
      std::string colour = r == c ? "31,95,168" : "190,40,40";
      s += "<g><title>true " + escape_html(label(r)) + ", predicted " + escape_html(label(c)) + ": " +
           std::to_string(cells[r][c]) + "</title><rect x=\"" + num(label_w + c * cell) + "\" y=\"" + num(y) +
           "\" width=\"" + num(cell - 1) + "\" height=\"" + num(cell - 1) + "\" fill=\"rgba(" + colour + "," +
           num(0.08 + 0.85 * share, "%.2f") + ")\"/>";
      if (cells[r][c] > 0)
        s += "<text x=\"" + num(label_w + c * cell + cell / 2) + "\" y=\"" + num(y + cell / 2 + 4) +
             "\" text-anchor=\"middle\" fill=\"" + (share > 0.5 ? "#fff" : "#222") + "\">" + std::to_string(cells[r][c]) +
             "</text>";
      s += "</g>";
    }
    s += "\n";
  }
  s += "<text x=\"" + num(label_w) + "\" y=\"" + num(height - 8) + "\">columns: " + escape_html(predicted_label) + "; rows: " + escape_html(truth_label) +
       "</text>\n</svg>\n";
  return s;
}

std::string weakest_attribute(const std::vector<AttributeScore>& scores) {
  const AttributeScore* weakest = nullptr;
  for (const auto& a : scores) {
    if (a.n == 0) continue;
    double margin = a.accuracy - a.majority_accuracy;
    if (!weakest || margin < weakest->accuracy - weakest->majority_accuracy) weakest = &a;
  }
  return weakest ? weakest->attribute : "";
}

std::string charts_html(const ChartData& data, const std::string& truth_label, const std::string& predicted_label) {
  std::string h = "<section class=\"charts\">\n";
  if (!data.loss.empty()) {
    h += "<h3>Training loss</h3>\n" + svg_loss_curve(data.loss);
  }
  if (!data.scores.empty()) {
    h += "<h3>Accuracy per attribute against the majority baseline</h3>\n" + svg_accuracy_bars(data.scores);
    std::string weakest = weakest_attribute(data.scores);
    auto it = data.confusions.find(weakest);
    if (it != data.confusions.end() && !it->second.empty()) {
      h += "<h3>Confusion of the weakest attribute: " + escape_html(weakest) + "</h3>\n";
      h += svg_confusion(weakest, it->second, truth_label, predicted_label);
    }
  }
  if (data.loss.empty() && data.scores.empty()) h += "<p class=\"note\">No training log or judged answers yet.</p>\n";
  return h + "</section>\n";
}

std::string eval_charts_html(const std::string& train_log_path, const EvalReport& report) {
  ChartData data;
  data.loss = read_loss_curve(train_log_path);
  for (const auto& a : report.attributes) {
    data.scores.push_back({a.attribute, a.n, a.accuracy, a.majority_accuracy, a.majority_value});
    data.confusions[a.attribute] = a.confusion;
  }
  return charts_html(data);
}

}  // namespace tailor
