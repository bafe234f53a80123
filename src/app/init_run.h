// `tailor init` and `tailor synth` as one call each: the library call and its one-line report.
#pragma once
#include "catalog/synth.h"
#include "model/presets.h"

namespace tailor {

// A randomly initialised model directory (model/presets.h).
void run_init(const InitOptions& o);
// A synthetic catalog (catalog/synth.h).
void run_synth(const SynthOptions& o);

}  // namespace tailor
