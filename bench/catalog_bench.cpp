// Catalog throughput: rows/s of a local product table (the reader alone, and `prepare` over it), and
// images/s of photos downloaded from a local HTTP server (cpp-httplib in this process) into the
// download cache, then read again from the cache.
//
//   catalog_bench [rows=1000000] [photos=2000] [concurrency=16]
// The table's rows are of an unselected type (prepare reads every row, decodes no photo); the photos
// are 224x224 JPEGs, each under its own URL, each decoded in full by prepare.
#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "catalog/catalog_reader.h"
#include "catalog/images.h"
#include "catalog/prepare.h"
#include "util/fs.h"
#include "util/progress.h"

using namespace tailor;

static double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

static std::string write_table(const std::string& path, int64_t rows, const char* format) {
  std::ofstream out(path, std::ios::binary);
  bool jsonl = std::string(format) == "jsonl";
  if (!jsonl) out << "id,image,articleType,baseColour,Pattern,Fit\n";
  std::string chunk;
  for (int64_t i = 0; i < rows; ++i) {
    std::string id = std::to_string(i);
    chunk += jsonl ? "{\"id\": \"sku-" + id + "\", \"image\": \"images/" + id +
                         ".jpg\", \"articleType\": \"Socks\", \"baseColour\": \"Navy, dark\", \"Pattern\": \"Solid\", \"Fit\": \"Regular\"}\n"
                   : "sku-" + id + ",images/" + id + ".jpg,Socks,\"Navy, dark\",Solid,Regular\n";
    if (chunk.size() > (1 << 20)) {
      out << chunk;
      chunk.clear();
    }
  }
  out << chunk;
  return path;
}

int main(int argc, char** argv) {
  const int64_t rows = argc > 1 ? std::atoll(argv[1]) : 1000000;
  const int photos = argc > 2 ? std::atoi(argv[2]) : 2000;
  const int concurrency = argc > 3 ? std::atoi(argv[3]) : 16;
  Progress::quiet = true;
  const std::string dir = (std::filesystem::temp_directory_path() / "tailor-catalog-bench").string();
  remove_tree(dir);
  make_dirs(dir);

  // 1. A local table: the reader alone, then prepare over it.
  for (const char* format : {"csv", "jsonl"}) {
    std::string table = write_table(join_path(dir, std::string("products.") + format), rows, format);
    CatalogSource src;
    src.location = table;
    double t0 = now_s();
    auto reader = open_catalog(src, CatalogQueryAttributes{default_attributes(), {"Shirts"}});
    CatalogRow row;
    int64_t n = 0;
    while (reader->next(&row)) {
      reader->product(row);
      ++n;
    }
    double read_s = now_s() - t0;
    PrepareOptions o;
    o.catalog_dir = table;
    o.out_dir = join_path(dir, "out");
    o.progress = false;
    t0 = now_s();
    PrepareSummary s = prepare_catalog(o);
    double prep_s = now_s() - t0;
    std::printf("%-5s table, %lld rows (%.0f MB): reader %.2f s = %.0f rows/s; prepare %.2f s = %.0f rows/s\n", format,
                (long long)n, std::filesystem::file_size(table) / 1e6, read_s, n / read_s, prep_s, s.csv_rows / prep_s);
    remove_tree(table);
  }

  // 2. Photos from a local HTTP server.
  ImageRGB img;
  img.width = img.height = 224;
  img.pixels.resize(224 * 224 * 3);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<uint8_t>((i * 7919) % 251);
  std::vector<uint8_t> jpeg = encode_jpeg(img);
  const std::string body(jpeg.begin(), jpeg.end());
  httplib::Server svr;
  svr.new_task_queue = [concurrency] { return new httplib::ThreadPool(concurrency); };
  svr.Get(R"(/img/(\d+)\.jpg)", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(body, "image/jpeg");
  });
  int port = svr.bind_to_any_port("127.0.0.1");
  std::thread server([&] { svr.listen_after_bind(); });
  while (!svr.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::string csv = "id,image_url,articleType,Pattern\n";
  for (int i = 0; i < photos; ++i)
    csv += std::to_string(i) + ",http://127.0.0.1:" + std::to_string(port) + "/img/" + std::to_string(i) + ".jpg,Shirts,Solid\n";
  write_file_atomic(join_path(dir, "photos.csv"), csv);
  for (const char* pass : {"downloaded", "from the cache"}) {
    PrepareOptions o;
    o.catalog_dir = join_path(dir, "photos.csv");
    o.out_dir = join_path(dir, "out_photos");
    o.progress = false;
    o.download.cache_dir = join_path(dir, "cache");
    o.download.concurrency = concurrency;
    double t0 = now_s();
    PrepareSummary s = prepare_catalog(o);
    double el = now_s() - t0;
    std::printf("photos %s: %d photos (%zu bytes each, %d in flight) in %.2f s = %.0f images/s; %zu failed\n", pass, photos,
                body.size(), concurrency, el, photos / el, s.skipped.size());
  }
  svr.stop();
  server.join();
  remove_tree(dir);
  return 0;
}
