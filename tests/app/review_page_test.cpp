// tailor-test: base
// The review page end to end: the server in a child process, driven by a real headless chromium over
// the DevTools protocol (tests/app/cdp.h) and by plain HTTP. The queue, changing an attribute,
// editing and approving with keyboard shortcuts, persistence over a reload, a <script> product name
// staying inert, a concurrent edit refused, a SIGKILL between two decisions losing neither, login.
// A missing chromium fails these tests (it is installed by scripts/setup.sh), it never skips them.
#include <gtest/gtest.h>
#include <httplib.h>

#include "app/review_store.h"
#include "cdp.h"
#include "review_fixture.h"

namespace tailor {
namespace {

using test::BrowserPage;
using test::Chromium;

class ReviewBrowser : public ::testing::Test {
 protected:
  void SetUp() override {
    if (test::find_chromium().empty()) FAIL() << test::chromium_missing_message();
  }
  std::unique_ptr<Chromium> browser(const test::ReviewFiles& f) {
    return std::make_unique<Chromium>(join_path(f.dir, "chromium-profile"));
  }
};

TEST_F(ReviewBrowser, QueueThenChangeEditApproveAndReloadShowsItPersisted) {
  auto f = test::make_review_files("review_browser_flow");
  test::ReviewProcess server(f);
  auto chromium = browser(f);
  BrowserPage page(*chromium);

  // The queue: lowest confidence first, products without confidence last; counts.
  page.navigate(server.url("/"));
  EXPECT_EQ(page.text("Array.from(document.querySelectorAll('#queue tr.item')).map(r => r.dataset.id).join(',')"),
            "102,101,103,104,105");
  EXPECT_EQ(page.text("document.getElementById('left').textContent"), "5");
  EXPECT_EQ(page.text("document.getElementById('done').textContent"), "0");

  // Filters: article type and confidence.
  page.navigate(server.url("/?status=pending&article_type=Shirts&max_confidence=0.6"));
  EXPECT_EQ(page.text("Array.from(document.querySelectorAll('#queue tr.item')).map(r => r.dataset.id).join(',')"), "101");

  // j opens the first product of the queue: 101.
  page.and_wait_for_load([&] { page.press_letter('j'); });
  EXPECT_EQ(page.text("document.getElementById('product-id').textContent"), "101");
  EXPECT_EQ(page.text("document.getElementById('title').textContent"), "Blue Oxford Shirt");
  EXPECT_TRUE(page.eval("document.getElementById('photo').naturalWidth === 96").get<bool>()) << "the photo did not load";

  // 2 focuses the second attribute's list; Escape leaves it.
  page.press("2", "Digit2", 50);
  EXPECT_EQ(page.text("document.activeElement.id"), "attr:Fit");
  page.press_escape();
  EXPECT_EQ(page.text("document.activeElement.tagName"), "BODY");

  // Change the fit (the select offers the values of the data), which flags the description.
  page.eval("(() => { const s = document.getElementById('attr:Fit'); s.value = 'Regular Fit';"
            " s.dispatchEvent(new Event('change')); })()");
  EXPECT_FALSE(page.eval("document.getElementById('stale').hidden").get<bool>());
  // e focuses the description (keyboard), typing edits it, Escape leaves it, a approves.
  page.press_letter('e');
  EXPECT_EQ(page.text("document.activeElement.id"), "description");
  page.eval("(() => { const d = document.getElementById('description'); d.setSelectionRange(d.value.length, d.value.length); })()");
  page.type_text(" Checked by a person.");
  page.press_escape();
  page.and_wait_for_load([&] { page.press_letter('a'); });
  // Approving went on to the next product of the filtered queue (none left there: the queue page).
  EXPECT_EQ(page.text("location.pathname"), "/");

  // Reload the product: the change, the text and the decision are there.
  page.navigate(server.url("/product/101?status=all"));
  page.and_wait_for_load([&] { page.eval("location.reload()"); });
  EXPECT_EQ(page.text("document.getElementById('attr:Fit').value"), "Regular Fit");
  EXPECT_EQ(page.text("document.getElementById('description').value"), "A blue slim shirt. Checked by a person.");
  EXPECT_EQ(page.text("document.getElementById('status').textContent"), "approved");
  EXPECT_EQ(page.text("document.getElementById('done').textContent"), "1");
  EXPECT_EQ(page.text("document.getElementById('left').textContent"), "4");

  // Regenerate (g) after a change: the offline writer rewrites the text with the new value.
  page.eval("(() => { const s = document.getElementById('attr:Sleeve Length'); s.value = 'Short Sleeves'; })()");
  page.and_wait_for_load([&] { page.press_letter('g'); });
  std::string regenerated = page.text("document.getElementById('description').value");
  EXPECT_NE(regenerated.find("short sleeves"), std::string::npos) << regenerated;
  EXPECT_EQ(page.text("document.getElementById('attr:Sleeve Length').value"), "Short Sleeves");

  // Reject and skip by keyboard on the queue's first product (102), then 103 comes next.
  page.navigate(server.url("/"));
  page.and_wait_for_load([&] { page.press_letter('j'); });
  EXPECT_EQ(page.text("document.getElementById('product-id').textContent"), "102");
  page.and_wait_for_load([&] { page.press_letter('r'); });
  EXPECT_EQ(page.text("document.getElementById('product-id').textContent"), "103");
  page.and_wait_for_load([&] { page.press_letter('s'); });
  EXPECT_EQ(page.text("document.getElementById('product-id').textContent"), "104");

  ReviewStore store(f.db);
  EXPECT_EQ(store.product("102")->status, "rejected");
  EXPECT_EQ(store.product("103")->status, "skipped");
  ReviewCounts c = store.counts();
  EXPECT_EQ(c.done(), 2);
  EXPECT_EQ(c.left(), 3);
}

TEST_F(ReviewBrowser, ScriptInAProductNameIsShownAsTextAndNeverRuns) {
  auto f = test::make_review_files("review_browser_script");
  test::ReviewProcess server(f);
  auto chromium = browser(f);
  BrowserPage page(*chromium);
  page.navigate(server.url("/"));
  EXPECT_TRUE(page.eval("window.__pwned === undefined").get<bool>());
  EXPECT_NE(page.text("document.querySelector('tr.item[data-id=\"102\"]').textContent").find(test::kScriptName),
            std::string::npos);
  page.navigate(server.url("/product/102"));
  EXPECT_TRUE(page.eval("window.__pwned === undefined").get<bool>());
  EXPECT_EQ(page.text("document.getElementById('title').textContent"), test::kScriptName);
  EXPECT_EQ(page.text("document.getElementById('description').value"), "Made for <script>window.__pwned=3</script> days.");
  EXPECT_EQ(page.eval("document.querySelectorAll('script').length").get<int>(), 1);  // review.js only
  EXPECT_EQ(page.eval("document.querySelectorAll('img[src=\"x\"]').length").get<int>(), 0);
}

TEST_F(ReviewBrowser, AnEditOfAProductSomeoneChangedMeanwhileIsRefused) {
  auto f = test::make_review_files("review_browser_conflict");
  test::ReviewProcess server(f);
  auto chromium = browser(f);
  BrowserPage alice(*chromium), bob(*chromium);
  alice.navigate(server.url("/product/103"));
  bob.navigate(server.url("/product/103"));
  EXPECT_EQ(alice.text("document.getElementById('version').textContent"), "1");

  // Bob changes the colour and approves first.
  bob.eval("document.getElementById('reviewer').value = 'bob'");
  bob.eval("document.getElementById('attr:baseColour').value = 'Black'");
  bob.and_wait_for_load([&] { bob.eval("document.querySelector('button[value=approve]').click()"); });

  // Alice, still on version 1, changes the fit and saves: refused, with who and what to do.
  alice.eval("document.getElementById('reviewer').value = 'alice'");
  alice.eval("document.getElementById('attr:Fit').value = 'Slim Fit'");
  alice.and_wait_for_load([&] { alice.eval("document.querySelector('button[value=save]').click()"); });
  std::string message = alice.text("document.getElementById('message').textContent");
  EXPECT_NE(message.find("changed by bob"), std::string::npos) << message;
  EXPECT_NE(message.find("not saved"), std::string::npos) << message;
  // The refused page shows Bob's state, at his version.
  EXPECT_EQ(alice.text("document.getElementById('attr:baseColour').value"), "Black");
  EXPECT_EQ(alice.text("document.getElementById('attr:Fit').value"), "Regular Fit");
  EXPECT_EQ(alice.text("document.getElementById('version').textContent"), "2");

  ReviewStore store(f.db);
  auto p = store.product("103");
  EXPECT_EQ(p->status, "approved");
  EXPECT_EQ(p->reviewer, "bob");
  EXPECT_EQ(p->version, 2);
}

TEST_F(ReviewBrowser, PhotoMissingIsSaidOnThePage) {
  auto f = test::make_review_files("review_browser_photo");
  test::ReviewProcess server(f);
  auto chromium = browser(f);
  BrowserPage page(*chromium);
  page.navigate(server.url("/product/105"));
  std::string text = page.text("document.querySelector('.photo').textContent");
  EXPECT_NE(text.find("no photo for product 105"), std::string::npos) << text;
  EXPECT_NE(text.find("105.jpg"), std::string::npos) << text;
}

// --- plain HTTP (no browser) ------------------------------------------------------------------

httplib::Params form(int64_t version, const std::string& action, const std::string& reviewer,
                     std::vector<std::pair<std::string, std::string>> more = {}) {
  httplib::Params p{{"version", std::to_string(version)}, {"action", action}, {"reviewer", reviewer}};
  for (auto& kv : more) p.emplace(kv.first, kv.second);
  return p;
}

TEST(ReviewHttp, TheSameFlowWorksWithPlainFormsAndNoJavaScript) {
  auto f = test::make_review_files("review_http_flow");
  test::ReviewProcess server(f);
  httplib::Client http("127.0.0.1", server.port());
  auto queue = http.Get("/");
  ASSERT_TRUE(queue);
  EXPECT_EQ(queue->status, 200);
  EXPECT_LT(queue->body.find("data-id=\"102\""), queue->body.find("data-id=\"101\""));
  EXPECT_NE(queue->get_header_value("Content-Security-Policy").find("script-src 'self'"), std::string::npos);

  auto page = http.Get("/product/101");
  ASSERT_TRUE(page);
  int64_t version = test::page_version(page->body);
  ASSERT_EQ(version, 1);
  auto post = http.Post("/product/101?status=pending",
                        form(version, "approve", "carol", {{"attr:Fit", "Regular Fit"}, {"description", "Edited.\r\nTwo lines."}}));
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 303);
  EXPECT_EQ(post->get_header_value("Location"), "/product/102?status=pending");  // the next in the queue

  auto again = http.Get("/product/101?status=all");
  ASSERT_TRUE(again);
  EXPECT_NE(again->body.find("<option value=\"Regular Fit\" selected>"), std::string::npos);
  EXPECT_NE(again->body.find(">Edited.\nTwo lines.</textarea>"), std::string::npos);
  EXPECT_EQ(test::page_version(again->body), 2);

  // A value the attribute does not allow, and a bad version: 400 naming the field.
  auto bad = http.Post("/product/103", form(1, "save", "carol", {{"attr:Fit", "Baggy <b>"}}));
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find("field attr:Fit: &quot;Baggy &lt;b&gt;&quot; is not an allowed value"), std::string::npos) << bad->body;
  auto bad_version = http.Post("/product/103", form(0, "save", "carol"));
  ASSERT_TRUE(bad_version);
  EXPECT_EQ(bad_version->status, 400);
  EXPECT_NE(bad_version->body.find("field version"), std::string::npos);
  auto bad_action = http.Post("/product/103", form(1, "publish", "carol"));
  EXPECT_EQ(bad_action->status, 400);
  auto bad_filter = http.Get("/?max_confidence=high");
  EXPECT_EQ(bad_filter->status, 400);
  EXPECT_NE(bad_filter->body.find("field max_confidence"), std::string::npos);

  // A stale version over HTTP: 409, and the row keeps the first change.
  auto stale = http.Post("/product/101", form(1, "reject", "dave"));
  ASSERT_TRUE(stale);
  EXPECT_EQ(stale->status, 409);
  EXPECT_NE(stale->body.find("changed by carol"), std::string::npos);

  // Exports over HTTP.
  auto jsonl = http.Get("/export/approved.jsonl");
  ASSERT_TRUE(jsonl);
  EXPECT_NE(jsonl->body.find("\"id\":\"101\""), std::string::npos);
  EXPECT_EQ(std::count(jsonl->body.begin(), jsonl->body.end(), '\n'), 1);
  auto summary = http.Get("/summary");
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->status, 200);
  EXPECT_NE(summary->body.find("<svg"), std::string::npos);
  EXPECT_EQ(http.Get("/product/999")->status, 404);
  EXPECT_EQ(http.Get("/photo/105")->status, 404);
  auto photo = http.Get("/photo/101");
  EXPECT_EQ(photo->status, 200);
  EXPECT_EQ(photo->get_header_value("Content-Type"), "image/jpeg");
}

TEST(ReviewHttp, ASigkillBetweenTwoDecisionsLosesNeither) {
  auto f = test::make_review_files("review_http_sigkill");
  {
    test::ReviewProcess server(f);
    httplib::Client http("127.0.0.1", server.port());
    auto first = http.Post("/product/104", form(1, "approve", "erin", {{"description", "First decision."}}));
    ASSERT_TRUE(first);
    EXPECT_EQ(first->status, 303);
    auto second = http.Post("/product/102", form(1, "reject", "erin"));
    ASSERT_TRUE(second);
    EXPECT_EQ(second->status, 303);
    server.stop(SIGKILL);  // nothing after the answers runs: no shutdown, no checkpoint
  }
  {
    ReviewStore store(f.db);
    EXPECT_EQ(store.product("104")->status, "approved");
    EXPECT_EQ(store.product("104")->description, "First decision.");
    EXPECT_EQ(store.product("102")->status, "rejected");
  }
  // Started again on the same files: both decisions are there, nothing imported twice.
  test::ReviewProcess again(f);
  httplib::Client http("127.0.0.1", again.port());
  auto page = http.Get("/product/104");
  ASSERT_TRUE(page);
  EXPECT_EQ(test::page_version(page->body), 2);
  EXPECT_NE(again.log().find("5 products in"), std::string::npos);
  EXPECT_NE(again.log().find("0 new"), std::string::npos);
}

TEST(ReviewHttp, DecisionsAnsweredBeforeAKillAtARandomMomentAreAllKept) {
  auto f = test::make_review_files("review_http_kill_random");
  std::vector<std::string> answered;
  {
    test::ReviewProcess server(f);
    std::atomic<bool> stop{false};
    std::thread reviewer([&] {
      httplib::Client http("127.0.0.1", server.port());
      // Save the same product over and over, each from the version the last answer gave.
      for (int64_t version = 1; !stop; ++version) {
        auto r = http.Post("/product/101", form(version, "save", "frank", {{"description", "text " + std::to_string(version)}}));
        if (!r || r->status != 303) break;
        answered.push_back("text " + std::to_string(version));
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    server.stop(SIGKILL);
    stop = true;
    reviewer.join();
  }
  ASSERT_FALSE(answered.empty());
  ReviewStore store(f.db);
  auto p = store.product("101");
  // Every answered save is on disk: the last one answered, or one more that was committed but not answered.
  EXPECT_GE(p->version, static_cast<int64_t>(answered.size()) + 1);
  EXPECT_LE(p->version, static_cast<int64_t>(answered.size()) + 2);
  if (p->version == static_cast<int64_t>(answered.size()) + 1) EXPECT_EQ(p->description, answered.back());
}

TEST(ReviewHttp, WithATokenEveryPageNeedsALoginAndTheTokenIsNeverShown) {
  auto f = test::make_review_files("review_http_login");
  const std::string token = "s3cret-Token-4711";
  test::ReviewProcess server(f, token);
  httplib::Client http("127.0.0.1", server.port());
  auto anonymous = http.Get("/");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 303);
  EXPECT_EQ(anonymous->get_header_value("Location"), "/login");
  EXPECT_EQ(http.Get("/export/approved.jsonl")->status, 401);
  EXPECT_EQ(http.Post("/product/101", form(1, "approve", "x"))->status, 401);

  auto wrong = http.Post("/login", httplib::Params{{"password", "guess"}});
  EXPECT_EQ(wrong->status, 401);
  EXPECT_EQ(wrong->body.find(token), std::string::npos);

  auto login = http.Post("/login", httplib::Params{{"password", token}});
  ASSERT_TRUE(login);
  EXPECT_EQ(login->status, 303);
  std::string set_cookie = login->get_header_value("Set-Cookie");
  EXPECT_EQ(set_cookie.find(token), std::string::npos);
  std::string session = set_cookie.substr(0, set_cookie.find(';'));
  auto queue = http.Get("/", httplib::Headers{{"Cookie", session}});
  EXPECT_EQ(queue->status, 200);
  EXPECT_EQ(queue->body.find(token), std::string::npos);
  auto bearer = http.Get("/summary", httplib::Headers{{"Authorization", "Bearer " + token}});
  EXPECT_EQ(bearer->status, 200);
  EXPECT_EQ(http.Get("/summary", httplib::Headers{{"Authorization", "Bearer nope"}})->status, 303);
  server.stop(SIGTERM);
  EXPECT_EQ(server.log().find(token), std::string::npos);
  EXPECT_NE(server.log().find("login required"), std::string::npos);
}

}  // namespace
}  // namespace tailor
