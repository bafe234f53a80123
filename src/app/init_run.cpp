#include "app/init_run.h"

#include <cstdio>

#include "util/torch_threads.h"

namespace tailor {

void run_init(const InitOptions& o) {
  init_torch_threads();
  int64_t n = init_model_dir(o);
  std::printf("wrote %s: preset %s, %lld parameters\n", o.out_dir.c_str(), o.preset.c_str(), (long long)n);
}

void run_synth(const SynthOptions& o) {
  SynthSummary s = synth_catalog(o);
  std::printf("synth: %zu products (seed %llu) in %s in %.2f s\n", s.products.size(), (unsigned long long)o.seed,
              s.out_dir.c_str(), s.seconds);
}

}  // namespace tailor
