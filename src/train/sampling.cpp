#include "train/sampling.h"

#include <map>
#include <string>

#include "core/rng.h"

namespace tailor {

std::vector<int64_t> epoch_order(const std::vector<VqaPair>& pairs, uint64_t seed, int64_t epoch) {
  std::map<std::string, std::vector<int64_t>> by_photo;
  std::vector<std::string> photos;
  for (int64_t i = 0; i < static_cast<int64_t>(pairs.size()); ++i) {
    auto& v = by_photo[pairs[i].image];
    if (v.empty()) photos.push_back(pairs[i].image);
    v.push_back(i);
  }
  Rng rng(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch) + 1);
  rng.shuffle(photos);
  std::vector<int64_t> order;
  for (const auto& ph : photos) {
    auto& v = by_photo[ph];
    rng.shuffle(v);
    order.insert(order.end(), v.begin(), v.end());
  }
  return order;
}

double label_share(const T5Tokenizer& tok, const std::vector<VqaPair>& pairs, const std::vector<int64_t>& order,
                   Span global, Span part) {
  if (part.begin == global.begin && part.end == global.end) return 1.0;  // one process: no tokens to count
  int64_t mine = 0, all = 0;
  for (int64_t i = global.begin; i < global.end; ++i) {
    int64_t t = static_cast<int64_t>(tok.encode(pairs[order[i]].answer, true).size());
    all += t;
    if (i >= part.begin && i < part.end) mine += t;
  }
  return static_cast<double>(mine) / static_cast<double>(all);
}

}  // namespace tailor
