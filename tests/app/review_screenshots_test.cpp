// tailor-test: base
// Not a check but a picture maker, run by scripts/screenshots.sh (skipped otherwise): the review page
// over a `tailor demo` run's validation products (its model's predicted attributes and offline
// descriptions), some reviewed with the true values, and the demo report's charts, captured with
// chromium's Page.captureScreenshot into $TAILOR_SCREENSHOTS_OUT.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "app/review_store.h"
#include "cdp.h"
#include "review_fixture.h"

namespace tailor {
namespace {

using json = nlohmann::json;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

void save_png(const std::string& path, const std::vector<uint8_t>& png) {
  ASSERT_GT(png.size(), 1000u) << path;
  write_file_atomic(path, png.data(), png.size());
  std::printf("wrote %s (%zu bytes)\n", path.c_str(), png.size());
}

// The demo's examples.jsonl as describe output (predicted attributes, no confidence), and a third of
// the products reviewed: the true values set, then approved (the last of them rejected).
test::ReviewFiles review_files_from_demo(const std::string& demo) {
  test::ReviewFiles f;
  f.dir = test::temp_dir("review_screenshots");
  f.catalog = join_path(demo, "catalog");
  f.describe = join_path(f.dir, "descriptions.jsonl");
  f.db = join_path(f.dir, "review.sqlite");
  std::istringstream in(read_file(join_path(demo, "examples.jsonl")));
  std::string line, out;
  std::vector<json> examples;
  while (std::getline(in, line)) {
    json e = json::parse(line);
    json d = {{"id", e["id"]}, {"attributes", e["described_attributes"]}, {"description", e["description"]},
              {"writer", e["writer"]}, {"model", e["writer_model"]}, {"attributes_from", "demo model"}};
    out += d.dump() + "\n";
    examples.push_back(e);
  }
  write_file_atomic(f.describe, out);
  ReviewStore store(f.db);
  store.import_describe(f.describe, {f.catalog, ""});
  size_t reviewed = examples.size() / 3;
  for (size_t i = 0; i < reviewed; ++i) {
    const json& e = examples[i];
    auto p = store.product(e["id"]);
    ReviewChange change{p->id, p->version, i % 2 ? "sam" : "alex", {}, std::nullopt, i + 1 == reviewed ? "rejected" : "approved",
                        "approve"};
    for (const auto& a : e["answers"])
      for (const auto& have : p->attributes)
        if (have.name == a["attribute"]) change.attributes[have.name] = a["truth"];
    store.apply(change);
  }
  return f;
}

TEST(Screenshots, ReviewPageAndDemoReportCharts) {
  std::string out = env("TAILOR_SCREENSHOTS_OUT"), demo = env("TAILOR_SCREENSHOTS_DEMO");
  if (out.empty() || demo.empty()) GTEST_SKIP() << "made by scripts/screenshots.sh (TAILOR_SCREENSHOTS_OUT, TAILOR_SCREENSHOTS_DEMO)";
  if (test::find_chromium().empty()) FAIL() << test::chromium_missing_message();
  test::ReviewFiles f = review_files_from_demo(demo);
  test::ReviewProcess server(f, "", join_path(demo, "train/train_log.jsonl"));
  test::Chromium chromium(join_path(f.dir, "chromium-profile"));
  test::BrowserPage page(chromium, 1200, 800);

  page.navigate(server.url("/?status=all"));
  save_png(join_path(out, "review-queue.png"), page.screenshot(1200));
  page.navigate(server.url("/"));
  page.and_wait_for_load([&] { page.press_letter('j'); });
  // A changed attribute, as a reviewer would leave it before regenerating.
  page.eval("(() => { const s = document.querySelector('select.attr'); s.selectedIndex = (s.selectedIndex + 1) % s.length;"
            " s.dispatchEvent(new Event('change')); })()");
  save_png(join_path(out, "review-product.png"), page.screenshot(1200));
  page.navigate(server.url("/summary"));
  save_png(join_path(out, "review-summary.png"), page.screenshot(1200));

  page.navigate("file://" + join_path(demo, "report.html"));
  save_png(join_path(out, "demo-report-charts.png"), page.screenshot_element("section.charts"));
}

}  // namespace
}  // namespace tailor
