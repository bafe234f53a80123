// tailor-test: base
// Photos and tables by URL and in S3 (catalog/download_cache.h), from servers in this process: an
// HTTP server that also answers 404, 500, slowly, truncated, with no image, with redirects; and an S3
// mock that checks every request's SigV4 signature with its own computation (tests/write/mock_server.h,
// OpenSSL directly). URL and S3 catalogs give the pairs of the local files; every failure is counted
// with its reason and named by its URL.
#include <gtest/gtest.h>

#include <atomic>
#include <map>

#include "../write/mock_server.h"
#include "catalog/dataset.h"
#include "catalog/download_cache.h"
#include "catalog/prepare.h"
#include "catalog/synth.h"
#include "catalog_export.h"
#include "test_util.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/text.h"

using namespace tailor;

namespace {

// GET-only file server: path -> bytes, plus the misbehaving routes; counts requests per path.
struct PhotoServer {
  httplib::Server svr;
  std::thread thread;
  int port = 0;
  std::mutex mu;
  std::map<std::string, std::string> files;  // "/img/1.jpg" -> bytes
  std::map<std::string, int> hits;
  std::vector<std::string> problems;  // S3 signature failures
  bool s3 = false;                    // check SigV4 and serve /<bucket>/<key> or <bucket>.host/<key>

  PhotoServer() {
    svr.Get(R"(/.*)", [this](const httplib::Request& req, httplib::Response& res) { serve(req, res); });
    port = svr.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { svr.listen_after_bind(); });
    while (!svr.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~PhotoServer() {
    svr.stop();
    thread.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
  int hits_of(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu);
    return hits[path];
  }
  int total_hits() {
    std::lock_guard<std::mutex> lock(mu);
    int n = 0;
    for (const auto& kv : hits) n += kv.second;
    return n;
  }

  void serve(const httplib::Request& req, httplib::Response& res) {
    std::string path = req.path;
    int hit;
    {
      std::lock_guard<std::mutex> lock(mu);
      hit = ++hits[path];
    }
    if (s3) {
      std::string why = mock::verify_sigv4(req, "AKIDEXAMPLE", "s3cr3t/Example+Key", "eu-west-1", "s3");
      std::string host = req.get_header_value("Host");
      // Virtual-hosted: the bucket is the host's first label; path style: the path's first segment.
      if (host.rfind("photos.", 0) == 0) path = "/photos" + path;
      std::lock_guard<std::mutex> lock(mu);
      if (!why.empty()) {
        problems.push_back(path + ": " + why);
        res.status = 403;
        res.set_content("<Error><Code>SignatureDoesNotMatch</Code></Error>", "application/xml");
        return;
      }
    }
    if (path == "/404.jpg") {
      res.status = 404;
      return;
    }
    if (path == "/500.jpg") {
      res.status = 500;
      return;
    }
    if (path.rfind("/flaky/", 0) == 0 && hit == 1) {
      res.status = 503;
      return;
    }
    if (path == "/slow.jpg") std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    if (path == "/loop.jpg") {
      res.set_redirect("/loop.jpg");
      return;
    }
    if (path.rfind("/redirect/", 0) == 0) {
      res.set_redirect("/img/" + path.substr(10));
      return;
    }
    if (path == "/notimage.jpg") {
      res.set_content("<html>not a photo</html>", "text/html");
      return;
    }
    if (path == "/big.jpg") {
      res.set_content(std::string(300 * 1024, 'x'), "image/jpeg");
      return;
    }
    if (path == "/truncated.jpg") {
      // Announces 10000 bytes, sends 100, then closes.
      res.set_content_provider(10000, "image/jpeg", [](size_t offset, size_t, httplib::DataSink& sink) {
        if (offset > 0) return false;
        std::string part(100, 'x');
        sink.write(part.data(), part.size());
        return false;
      });
      return;
    }
    std::string key = path.rfind("/flaky/", 0) == 0 ? "/img/" + path.substr(7) : path;
    std::lock_guard<std::mutex> lock(mu);
    auto it = files.find(key);
    if (it == files.end()) {
      res.status = 404;
      return;
    }
    res.set_content(it->second, "application/octet-stream");
  }
};

// A product table over the exported products, each photo named by image_of(product).
std::string table_csv(const std::vector<Exported>& products, const std::function<std::string(const Exported&)>& image_of) {
  std::string csv = "id,image,articleType";
  for (const auto& a : default_attributes()) csv += "," + csv_field(a.name);
  csv += "\n";
  for (const auto& e : products) {
    csv += e.id + "," + csv_field(image_of(e)) + "," + csv_field(e.type);
    for (const auto& a : default_attributes()) csv += "," + csv_field(value_of(e, a.name));
    csv += "\n";
  }
  return csv;
}

struct Catalog {
  std::string dir;
  std::vector<Exported> products;
};

const Catalog& synth() {
  static Catalog* c = nullptr;
  if (c) return *c;
  c = new Catalog;
  c->dir = test::temp_dir("downloads_synth");
  SynthOptions o;
  o.products = 16;
  o.out_dir = c->dir;
  o.seed = 9;
  o.progress = false;
  synth_catalog(o);
  c->products = export_products(c->dir);
  return *c;
}

PrepareSummary prepare(const std::string& location, const std::string& out, const DownloadOptions& d) {
  PrepareOptions o;
  o.catalog_dir = location;
  o.out_dir = out;
  o.progress = false;
  o.threads = 2;
  o.download = d;
  return prepare_catalog(o);
}

// Pairs equal but for the photo's path, whose bytes are the same.
void expect_same_pairs(const std::string& want_dir, const std::string& got_dir, const std::string& what) {
  for (const char* f : {"train.jsonl", "val.jsonl"}) {
    std::vector<VqaPair> want = read_pairs(join_path(want_dir, f)), got = read_pairs(join_path(got_dir, f));
    ASSERT_EQ(got.size(), want.size()) << what << " " << f;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].id, want[i].id) << what;
      EXPECT_EQ(got[i].answer, want[i].answer) << what;
      EXPECT_EQ(got[i].question, want[i].question) << what;
      EXPECT_EQ(read_file(got[i].image), read_file(want[i].image)) << what << ": photo of " << got[i].id;
    }
  }
  for (const char* f : {"vqa_train.csv", "vqa_test.csv"})
    EXPECT_EQ(read_file(join_path(got_dir, f)), read_file(join_path(want_dir, f))) << what << " " << f;
}

}  // namespace

TEST(Downloads, UrlAndS3CatalogsGiveTheSamePairsAsLocalFiles) {
  REQUIRE_CAIRO();
  const Catalog& cat = synth();
  const std::string scratch = test::temp_dir("downloads_same");
  write_file_atomic(join_path(cat.dir, "local.csv"), table_csv(cat.products, [](const Exported& e) { return "images/" + e.image_name; }));
  PrepareSummary local = prepare(join_path(cat.dir, "local.csv"), join_path(scratch, "local"), {});
  ASSERT_GT(local.pairs_train, 0);

  PhotoServer http;
  for (const auto& e : cat.products)
    http.files["/img/" + e.image_name] = read_file(join_path(join_path(cat.dir, "images"), e.image_name));
  // The table itself at a URL, its photos relative to it; a third of them through a redirect.
  std::string table = table_csv(cat.products, [&](const Exported& e) {
    return std::stoll(e.id) % 3 == 0 ? http.url() + "/redirect/" + e.image_name : e.image_name;
  });
  http.files["/img/products.csv"] = table;
  DownloadOptions d;
  d.cache_dir = join_path(scratch, "cache");
  d.concurrency = 4;
  PrepareSummary by_url = prepare(http.url() + "/img/products.csv", join_path(scratch, "url"), d);
  EXPECT_EQ(by_url.catalog_format, "csv");
  EXPECT_TRUE(by_url.skipped.empty()) << by_url.skipped.front().file << ": " << by_url.skipped.front().detail;
  expect_same_pairs(join_path(scratch, "local"), join_path(scratch, "url"), "URL catalog");
  // Fetched once: a second run reads the cache only.
  int hits = http.total_hits();
  prepare(http.url() + "/img/products.csv", join_path(scratch, "url_again"), d);
  EXPECT_EQ(http.total_hits(), hits);
  expect_same_pairs(join_path(scratch, "local"), join_path(scratch, "url_again"), "URL catalog from the cache");

  // S3: path style and virtual-hosted (bucket.localhost), every request's signature checked.
  mock::clear_env();
  setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t/Example+Key", 1);
  setenv("AWS_REGION", "eu-west-1", 1);
  PhotoServer s3;
  s3.s3 = true;
  for (const auto& e : cat.products)
    s3.files["/photos/images/" + e.image_name] = read_file(join_path(join_path(cat.dir, "images"), e.image_name));
  s3.files["/photos/products.csv"] = table_csv(cat.products, [](const Exported& e) { return "s3://photos/images/" + e.image_name; });
  for (bool path_style : {true, false}) {
    DownloadOptions ds;
    ds.cache_dir = join_path(scratch, path_style ? "s3cache_path" : "s3cache_virtual");
    ds.endpoint_url = path_style ? s3.url() : "http://localhost:" + std::to_string(s3.port);
    ds.path_style = path_style;
    std::string out = join_path(scratch, path_style ? "s3_path" : "s3_virtual");
    PrepareSummary s = prepare("s3://photos/products.csv", out, ds);
    EXPECT_TRUE(s.skipped.empty()) << s.skipped.front().file << ": " << s.skipped.front().detail;
    expect_same_pairs(join_path(scratch, "local"), out, path_style ? "S3 path style" : "S3 virtual-hosted");
  }
  EXPECT_TRUE(s3.problems.empty()) << s3.problems.front();
  EXPECT_GT(s3.total_hits(), static_cast<int>(2 * cat.products.size()));
  // A wrong secret: every request refused, each product's failure named (and the secret never shown).
  setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value", 1);
  DownloadOptions wrong;
  wrong.cache_dir = join_path(scratch, "s3cache_wrong");
  wrong.endpoint_url = s3.url();
  wrong.path_style = true;
  write_file_atomic(join_path(scratch, "s3.csv"), s3.files["/photos/products.csv"]);
  PrepareSummary refused = prepare(join_path(scratch, "s3.csv"), join_path(scratch, "s3_wrong"), wrong);
  EXPECT_EQ(refused.skipped_by_reason[kSkipHttpStatus], static_cast<int64_t>(refused.skipped.size()));
  ASSERT_FALSE(refused.skipped.empty());
  EXPECT_NE(refused.skipped[0].detail.find("HTTP 403"), std::string::npos) << refused.skipped[0].detail;
  EXPECT_EQ(read_file(join_path(join_path(scratch, "s3_wrong"), "manifest.json")).find("wrong-secret-value"), std::string::npos);
  mock::clear_env();
}

TEST(Downloads, EveryFailureKindIsCountedWithItsReason) {
  REQUIRE_CAIRO();
  const Catalog& cat = synth();
  ASSERT_GE(cat.products.size(), 12u);
  const std::string scratch = test::temp_dir("downloads_failures");
  PhotoServer http;
  for (const auto& e : cat.products)
    http.files["/img/" + e.image_name] = read_file(join_path(join_path(cat.dir, "images"), e.image_name));
  // Every product has values for the default types (synth: Shirts/Tshirts), so each row's photo is fetched.
  const std::vector<std::string> routes = {"/img/" + cat.products[0].image_name,
                                           "/flaky/" + cat.products[1].image_name,
                                           "/redirect/" + cat.products[2].image_name,
                                           "/404.jpg", "/500.jpg", "/slow.jpg", "/truncated.jpg",
                                           "/notimage.jpg", "/loop.jpg", "/big.jpg"};
  std::vector<Exported> products(cat.products.begin(), cat.products.begin() + routes.size());
  std::map<std::string, std::string> route_of;
  for (size_t i = 0; i < routes.size(); ++i) route_of[products[i].id] = http.url() + routes[i];
  write_file_atomic(join_path(scratch, "table.csv"), table_csv(products, [&](const Exported& e) { return route_of[e.id]; }));
  DownloadOptions d;
  d.cache_dir = join_path(scratch, "cache");
  d.max_attempts = 2;
  d.timeout_ms = 1000;
  d.max_bytes = 200 * 1024;
  PrepareSummary s = prepare(join_path(scratch, "table.csv"), join_path(scratch, "out"), d);
  EXPECT_EQ(s.products_train + s.products_val, 3);  // ok, flaky (retried), redirected
  std::map<std::string, int64_t> want = {{kSkipHttpStatus, 2},         {kSkipDownloadTimeout, 1},
                                         {kSkipDownloadTruncated, 1},  {kSkipBadImage, 1},
                                         {kSkipDownloadNetwork, 1},    {kSkipDownloadTooLarge, 1}};
  EXPECT_EQ(s.skipped_by_reason, want);
  std::map<std::string, std::string> reason_of_url;
  for (const auto& k : s.skipped) reason_of_url[k.file] = k.reason + ": " + k.detail;
  EXPECT_NE(reason_of_url[http.url() + "/404.jpg"].find("HTTP 404"), std::string::npos);
  EXPECT_NE(reason_of_url[http.url() + "/500.jpg"].find("HTTP 500 from 127.0.0.1:" + std::to_string(http.port) + " (after 2 attempts)"),
            std::string::npos) << reason_of_url[http.url() + "/500.jpg"];
  EXPECT_NE(reason_of_url[http.url() + "/loop.jpg"].find("redirect"), std::string::npos) << reason_of_url[http.url() + "/loop.jpg"];
  EXPECT_NE(reason_of_url[http.url() + "/notimage.jpg"].find("cached as"), std::string::npos);
  EXPECT_EQ(http.hits_of("/500.jpg"), 2);  // retried once
  EXPECT_EQ(http.hits_of("/404.jpg"), 1);  // never retried
  // The manifest lists each with its URL and reason.
  std::string manifest = read_file(join_path(join_path(scratch, "out"), "manifest.json"));
  for (const auto& r : routes)
    if (r.rfind("/img/", 0) != 0 && r.rfind("/flaky/", 0) != 0 && r.rfind("/redirect/", 0) != 0)
      EXPECT_NE(manifest.find(http.url() + r), std::string::npos) << r;
}

TEST(Downloads, S3UrlsVirtualHostedAndPathStyle) {
  EXPECT_EQ(s3_object_url("s3://my-bucket/a/b c.jpg", "https://s3.eu-west-1.amazonaws.com", false),
            "https://my-bucket.s3.eu-west-1.amazonaws.com/a/b%20c.jpg");
  EXPECT_EQ(s3_object_url("s3://my-bucket/a/b.jpg", "http://127.0.0.1:9000", true), "http://127.0.0.1:9000/my-bucket/a/b.jpg");
  EXPECT_THROW(s3_object_url("s3://bucket-only", "https://s3.amazonaws.com", true), Error);
  EXPECT_TRUE(is_remote_location("s3://b/k"));
  EXPECT_FALSE(is_remote_location("/images/s3://x"));
}
