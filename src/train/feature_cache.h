// The Q-Former output for each row of a training batch. With a frozen image side that sees each
// photo unchanged (no --augment), every photo's output is computed once before the first step: the
// frozen-feature cache. Otherwise each distinct photo of a batch goes through the image side once
// (augmented for its epoch with --augment; with a graph for the backward when the image side trains).
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "catalog/dataset.h"
#include "core/image.h"
#include "model/model_dir.h"
#include "train/ranks.h"

namespace tailor {

// --cache: auto (when it is exact), on (an Error when it would not be), off.
enum class CacheMode { kAuto, kOn, kOff };

// Whether the run uses the cache; throws Error for --cache on where it would be wrong.
bool use_feature_cache(CacheMode mode, bool image_side_frozen, bool augment);

using PhotoMap = std::map<std::string, std::shared_ptr<const ImageRGB>>;  // path -> photo

class ImageFeatures {
 public:
  // Keeps references to `b` and `photos`; they must outlive this object.
  ImageFeatures(Blip2Bundle& b, const PhotoMap& photos, const torch::Device& dev, bool image_side_frozen,
                bool augment, uint64_t seed);

  // Computes the cache: every photo in a fixed order (by path) and fixed chunks, so a resumed run gets
  // bit-identical features (a photo's features can differ in the last bits with the batch it is
  // computed in). The chunks are split across the ranks and gathered: the same chunks whatever the
  // world size.
  void compute_cache(Ranks& ranks, bool progress);
  bool cached() const { return !cache_.empty(); }
  // The cached output of one photo ([Q, H]); needs compute_cache.
  const torch::Tensor& cached(const std::string& photo) const { return cache_.at(photo); }

  // [rows, Q, H]: the cache's rows, or the batch's distinct photos through the image side.
  torch::Tensor rows(const std::vector<const VqaPair*>& batch, int64_t epoch);

  // From here on the frozen image side runs as CUDA graphs, one per photo count rounded up to a
  // multiple of 4 (padded photos repeat the first): a ViT-g on the few photos of one rank's batch
  // is bound by kernel launches when run eagerly. Then rows() returns views into a graph's output,
  // valid until the next call: the captured training step copies them into its buffers at once.
  void capture_image_side();

 private:
  Blip2Bundle& b_;
  const PhotoMap& photos_;
  torch::Device dev_;
  bool image_side_frozen_, augment_;
  uint64_t seed_;
  std::map<std::string, torch::Tensor> cache_;  // photo path -> Q-Former output [Q, H]
  struct ImageSideGraph;
  torch::Tensor image_side(const torch::Tensor& pixels);  // [P,3,H,W] on the device -> [P, Q, H]
  bool graphs_ = false;
  std::map<int64_t, std::shared_ptr<ImageSideGraph>> image_graphs_;  // padded photo count -> its graph
};

}  // namespace tailor
