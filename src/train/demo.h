// tailor demo, model half: after the catalog steps (catalog/demo.h) a tiny BLIP-2 is initialised,
// trained from scratch on the synthetic pairs, evaluated against the majority baseline, and a few
// validation products get predicted attributes, an offline description and a place in an HTML report.
#pragma once
#include <vector>

#include "catalog/demo.h"

namespace tailor {

// init model → train (→ train image side, when opt.image_epochs > 0) → evaluate → describe → report. Outputs under ctx.opt.out_dir:
//   model-init/ (the random model), train/ (trainer output, train/model = the trained model),
//   eval.json + eval.txt (per attribute, majority baseline, confusion tables),
//   examples.jsonl (per shown product: photo, answers predicted vs true, description),
//   report.html (photos linked relative to it, questions, answers, descriptions, timings).
std::vector<DemoStep> demo_model_steps(const DemoOptions& opt);

// The report page on its own (used by the report step and tests). Text is HTML-escaped.
std::string html_escape(const std::string& s);

}  // namespace tailor
