// Which pairs a step trains on: each epoch's order of the pairs, and the weight of a rank's part of a
// batch in the batch's loss. (The step's batches themselves: step_batches in train/world.h.)
#pragma once
#include <cstdint>
#include <vector>

#include "catalog/dataset.h"
#include "model/tokenizer.h"
#include "train/world.h"

namespace tailor {

// This epoch's order of the pairs: photos in a seeded shuffle, each photo's questions together (in a
// seeded order), so a batch runs the image side once per photo for several questions. Reproducible
// from (seed, epoch) alone, so a resumed run needs no saved sampler state.
std::vector<int64_t> epoch_order(const std::vector<VqaPair>& pairs, uint64_t seed, int64_t epoch);

// The share of the label tokens of `global` (positions into `order`) that lie in `part`. A rank's
// loss (a mean over its label tokens) weighted by it makes the ranks' gradients sum to the gradient
// of the whole batch's mean. 1 exactly when part == global (one process).
double label_share(const T5Tokenizer& tok, const std::vector<VqaPair>& pairs, const std::vector<int64_t>& order,
                   Span global, Span part);

}  // namespace tailor
