#include "infer/batch.h"

#include <cstring>

#include "util/parallel.h"

namespace tailor {

torch::Tensor pixel_batch(const std::vector<const ImageRGB*>& images, const ImageProcessorConfig& cfg, bool pinned) {
  int64_t n = static_cast<int64_t>(images.size());
  torch::Tensor out = torch::empty({n, 3, cfg.height, cfg.width}, torch::TensorOptions().dtype(torch::kFloat).pinned_memory(pinned));
  float* base = out.data_ptr<float>();
  const int64_t per_image = 3 * int64_t(cfg.height) * cfg.width;
  // For a GPU the host's cores are otherwise idle: preprocess on all of them. On the CPU libtorch's
  // own threads already use the cores.
  const int threads = pinned ? std::min<int>(worker_count(0), static_cast<int>(std::max<int64_t>(n, 1))) : 1;
  parallel_for(n, threads, [&](int64_t i) {
    std::vector<float> px = preprocess_image(*images[i], cfg);
    std::memcpy(base + i * per_image, px.data(), px.size() * sizeof(float));
  });
  return out;
}

static TokenBatch pad_rows(const std::vector<std::vector<int64_t>>& rows, int64_t pad) {
  size_t T = 1;
  for (auto& r : rows) T = std::max(T, r.size());
  int64_t N = static_cast<int64_t>(rows.size());
  TokenBatch b;
  b.ids = torch::full({N, static_cast<int64_t>(T)}, pad, torch::kLong);
  b.mask = torch::zeros({N, static_cast<int64_t>(T)}, torch::kLong);
  for (int64_t i = 0; i < N; ++i) {
    auto* ip = b.ids[i].data_ptr<int64_t>();
    auto* mp = b.mask[i].data_ptr<int64_t>();
    for (size_t j = 0; j < rows[i].size(); ++j) {
      ip[j] = rows[i][j];
      mp[j] = 1;
    }
  }
  return b;
}

TokenBatch prompt_batch(const T5Tokenizer& tok, const std::vector<std::string>& prompts, const Blip2Config& cfg) {
  std::vector<std::vector<int64_t>> rows;
  for (const auto& p : prompts) {
    std::vector<int64_t> ids = tok.encode(p, true);
    if (cfg.image_token_index >= 0) ids.insert(ids.begin(), cfg.num_query_tokens, cfg.image_token_index);
    rows.push_back(std::move(ids));
  }
  return pad_rows(rows, tok.pad_id());
}

torch::Tensor label_batch(const T5Tokenizer& tok, const std::vector<std::string>& answers) {
  std::vector<std::vector<int64_t>> rows;
  for (const auto& a : answers) rows.push_back(tok.encode(a, true));
  return pad_rows(rows, -100).ids;
}

}  // namespace tailor
