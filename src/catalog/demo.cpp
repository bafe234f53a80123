#include "catalog/demo.h"

#include <chrono>

#include "util/error.h"
#include "util/fs.h"

namespace tailor {

DemoContext make_demo_context(const DemoOptions& opt) {
  DemoContext ctx;
  ctx.opt = opt;
  ctx.catalog_dir = join_path(opt.out_dir, "catalog");
  ctx.dataset_dir = join_path(opt.out_dir, "dataset");
  return ctx;
}

std::vector<DemoStep> demo_catalog_steps() {
  std::vector<DemoStep> steps;
  steps.push_back({"synthesize catalog", [](DemoContext& c) {
                     SynthOptions o;
                     o.products = c.opt.products;
                     o.out_dir = c.catalog_dir;
                     o.seed = c.opt.seed;
                     o.threads = c.opt.threads;
                     o.progress = c.opt.progress;
                     c.synth = synth_catalog(o);
                     c.outputs["synthesize catalog"] = std::to_string(c.synth.products.size()) +
                                                       " products in " + c.catalog_dir;
                   }});
  steps.push_back({"prepare", [](DemoContext& c) {
                     PrepareOptions o;
                     o.catalog_dir = c.catalog_dir;
                     o.out_dir = c.dataset_dir;
                     o.seed = c.opt.seed;
                     o.threads = c.opt.threads;
                     o.progress = c.opt.progress;
                     o.val_fraction = c.opt.val_fraction;
                     if (!c.opt.attributes.empty()) o.attributes = select_attributes(default_attributes(), c.opt.attributes);
                     c.prepare = prepare_catalog(o);
                     std::fputs(format_prepare_summary(c.prepare).c_str(), c.log);
                     if (!prepare_has_pairs(c.prepare))
                       throw Error("prepare produced no pairs from " + c.catalog_dir);
                     c.outputs["prepare"] = std::to_string(c.prepare.pairs_train) + " train / " +
                                            std::to_string(c.prepare.pairs_val) + " val pairs in " + c.dataset_dir;
                   }});
  return steps;
}

void run_demo(DemoContext& ctx, const std::vector<DemoStep>& steps) {
  auto t0 = std::chrono::steady_clock::now();
  make_dirs(ctx.opt.out_dir);
  for (size_t i = 0; i < steps.size(); ++i) {
    std::fprintf(ctx.log, "[%zu/%zu] %s\n", i + 1, steps.size(), steps[i].name.c_str());
    std::fflush(ctx.log);
    auto s0 = std::chrono::steady_clock::now();
    try {
      steps[i].run(ctx);
    } catch (const Error& e) {
      throw Error("demo step \"" + steps[i].name + "\" failed: " + e.what());
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - s0).count();
    ctx.step_seconds.push_back({steps[i].name, s});
    std::fprintf(ctx.log, "[%zu/%zu] %s: done in %.1f s\n", i + 1, steps.size(), steps[i].name.c_str(), s);
    std::fflush(ctx.log);
  }
  double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string timings = "{\n  \"steps\": [";
  for (size_t i = 0; i < ctx.step_seconds.size(); ++i) {
    char line[256];
    std::snprintf(line, sizeof line, "%s\n    {\"step\": \"%s\", \"seconds\": %.3f}", i ? "," : "",
                  ctx.step_seconds[i].first.c_str(), ctx.step_seconds[i].second);
    timings += line;
  }
  char tail[64];
  std::snprintf(tail, sizeof tail, "\n  ],\n  \"total_seconds\": %.3f\n}\n", total);
  write_file_atomic(join_path(ctx.opt.out_dir, "timings.json"), timings + tail);
  std::fprintf(ctx.log, "demo: finished in %.1f s\n", total);
  for (const auto& [name, s] : ctx.step_seconds) std::fprintf(ctx.log, "  %-20s %6.1f s\n", name.c_str(), s);
  for (const auto& st : steps) {
    auto it = ctx.outputs.find(st.name);
    if (it != ctx.outputs.end()) std::fprintf(ctx.log, "  %-20s %s\n", st.name.c_str(), it->second.c_str());
  }
  if (!ctx.final_text.empty()) std::fputs(ctx.final_text.c_str(), ctx.log);
  std::fflush(ctx.log);
}

}  // namespace tailor
