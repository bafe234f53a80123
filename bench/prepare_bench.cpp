// Times `tailor prepare` over the real catalog (../shared/data/fashion-products): every product
// (all article types: every JSON parsed, every image decoded) and the default Shirts/Tshirts.
//
//   prepare_bench [catalog_dir] [threads=2] [repeats=3]
// Prints one line per run and the best time per configuration. Goal: all 9,583 products <= 10 s
// on 2 cores.
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "catalog/prepare.h"
#include "util/fs.h"
#include "util/progress.h"

using namespace tailor;

static double cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char** argv) {
  std::string catalog = argc > 1 ? argv[1] : std::string(TAILOR_REPO_ROOT) + "/../shared/data/fashion-products";
  int threads = argc > 2 ? std::atoi(argv[2]) : 2;
  int repeats = argc > 3 ? std::atoi(argv[3]) : 3;
  if (!file_exists(join_path(catalog, "styles.csv"))) {
    std::fprintf(stderr, "prepare_bench: no styles.csv in %s\n", catalog.c_str());
    return 1;
  }
  std::string out = (std::filesystem::temp_directory_path() / "tailor-prepare-bench").string();
  Progress::quiet = true;
  struct Config {
    const char* name;
    const char* types;
  };
  for (Config c : {Config{"all article types", "all"}, Config{"Shirts,Tshirts", "Shirts,Tshirts"}}) {
    double best = 1e30;
    for (int r = 0; r < repeats; ++r) {
      PrepareOptions o;
      o.catalog_dir = catalog;
      o.out_dir = out;
      o.article_types = parse_article_types(c.types);
      o.threads = threads;
      o.progress = false;
      double cpu0 = cpu_seconds();
      PrepareSummary s = prepare_catalog(o);
      double cpu = cpu_seconds() - cpu0;
      std::printf("prepare [%s] threads=%d run %d: %.3f s wall, %.3f s CPU  (%lld products read, %lld pairs, "
                  "%zu skipped)\n",
                  c.name, threads, r + 1, s.seconds, cpu, (long long)(s.products_selected + s.products_other_type),
                  (long long)(s.pairs_train + s.pairs_val), s.skipped.size());
      std::fflush(stdout);
      if (s.seconds < best) best = s.seconds;
    }
    std::printf("prepare [%s] threads=%d best of %d: %.3f s\n", c.name, threads, repeats, best);
  }
  std::filesystem::remove_all(out);
  return 0;
}
