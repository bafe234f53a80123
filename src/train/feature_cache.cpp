#include "train/feature_cache.h"

#include <algorithm>

#include "infer/batch.h"
#include "infer/cuda_graph.h"
#include "train/augment.h"
#include "util/error.h"
#include "util/progress.h"

namespace tailor {

using torch::Tensor;

bool use_feature_cache(CacheMode mode, bool image_side_frozen, bool augment) {
  // The cache is exact only when the image side is frozen and sees each photo unchanged.
  if (mode == CacheMode::kOn && (!image_side_frozen || augment))
    throw Error("--cache on needs a frozen vision tower and Q-Former and no --augment");
  return mode == CacheMode::kOn || (mode == CacheMode::kAuto && image_side_frozen && !augment);
}

struct ImageFeatures::ImageSideGraph {
  Tensor pixels, out;
  CudaGraph graph;
};

void ImageFeatures::capture_image_side() {
  if (!image_side_frozen_) throw Error("capture_image_side: the image side trains (its backward needs the eager graph)");
  graphs_ = dev_.is_cuda() && cuda_graphs_available();
}

Tensor ImageFeatures::image_side(const Tensor& px) {
  auto& m = b_.model;
  if (!graphs_) return m->qformer_features(m->vision_model->forward(px));
  const int64_t n = px.size(0), padded = (n + 3) / 4 * 4;
  std::shared_ptr<ImageSideGraph>& g = image_graphs_[padded];
  const bool fresh = !g;
  if (fresh) {
    g = std::make_shared<ImageSideGraph>();
    g->pixels = torch::zeros({padded, px.size(1), px.size(2), px.size(3)}, px.options());
  }
  g->pixels.narrow(0, 0, n).copy_(px);
  if (n < padded) g->pixels.narrow(0, n, padded - n).copy_(px[0].expand({padded - n, px.size(1), px.size(2), px.size(3)}));
  if (fresh) {
    ImageSideGraph* raw = g.get();
    raw->graph.capture([raw, &m] { raw->out = m->qformer_features(m->vision_model->forward(raw->pixels)); },
                       /*use_graph=*/true, /*warmups=*/1);
  }
  g->graph.replay();  // also right after the capture, which records without running
  return g->out.narrow(0, 0, n);
}

ImageFeatures::ImageFeatures(Blip2Bundle& b, const PhotoMap& photos, const torch::Device& dev,
                             bool image_side_frozen, bool augment, uint64_t seed)
    : b_(b), photos_(photos), dev_(dev), image_side_frozen_(image_side_frozen), augment_(augment), seed_(seed) {}

void ImageFeatures::compute_cache(Ranks& ranks, bool progress) {
  auto& m = b_.model;
  const int64_t chunk = 16;
  std::vector<std::string> paths;
  for (const auto& kv : photos_) paths.push_back(kv.first);
  const int64_t photos = static_cast<int64_t>(paths.size());
  Span all_chunks{0, (photos + chunk - 1) / chunk};
  Span my_chunks = ranks.part(all_chunks);
  Span mine{my_chunks.begin * chunk, std::min(photos, my_chunks.end * chunk)};
  std::unique_ptr<Progress> bar;
  if (progress) bar = std::make_unique<Progress>("features", mine.size(), "photos");
  torch::NoGradGuard ng;
  std::vector<Tensor> parts;
  for (int64_t start = mine.begin; start < mine.end; start += chunk) {
    std::vector<const ImageRGB*> inputs;
    for (int64_t i = start; i < std::min(mine.end, start + chunk); ++i) inputs.push_back(photos_.at(paths[i]).get());
    parts.push_back(m->qformer_features(m->vision_model->forward(pixel_batch(inputs, b_.image_cfg).to(dev_))));
    if (bar) bar->add(static_cast<int64_t>(inputs.size()));
  }
  if (bar) bar->finish();
  // Every rank's part, in rank order = path order (a rank may have none).
  Tensor local = parts.empty() ? torch::empty({0, m->query_tokens.size(1), m->query_tokens.size(2)},
                                              m->query_tokens.options().requires_grad(false))
                               : torch::cat(parts);
  Tensor features = ranks.gather_rows(local, rank_part(all_chunks, 0, ranks.size()).size() * chunk);
  for (int64_t i = 0; i < photos; ++i) cache_[paths[i]] = features[i];
}

Tensor ImageFeatures::rows(const std::vector<const VqaPair*>& batch, int64_t epoch) {
  std::vector<Tensor> rows;
  if (cached()) {
    for (const VqaPair* p : batch) rows.push_back(cache_.at(p->image));
    return torch::stack(rows);
  }
  std::vector<std::string> photos;
  std::vector<ImageRGB> augmented;
  std::vector<const ImageRGB*> inputs;
  augmented.reserve(batch.size());
  for (const VqaPair* p : batch) {
    if (std::find(photos.begin(), photos.end(), p->image) != photos.end()) continue;
    photos.push_back(p->image);
    const ImageRGB* img = photos_.at(p->image).get();
    if (augment_) {
      augmented.push_back(augment_image(*img, seed_, epoch, p->id));
      img = &augmented.back();
    }
    inputs.push_back(img);
  }
  Tensor px = pixel_batch(inputs, b_.image_cfg, /*pinned=*/dev_.is_cuda()).to(dev_, /*non_blocking=*/true);
  c10::optional<torch::NoGradGuard> no_grad;  // a frozen image side keeps no graph
  if (image_side_frozen_) no_grad.emplace();
  Tensor q = image_side(px);
  no_grad.reset();
  for (const VqaPair* p : batch) rows.push_back(q[std::find(photos.begin(), photos.end(), p->image) - photos.begin()]);
  return torch::stack(rows);
}

}  // namespace tailor
