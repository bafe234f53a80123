// Image augmentation that keeps every label true: a small random crop (85-100% of each side, resized
// back) and a horizontal flip. Never colour changes (they would falsify baseColour). Deterministic
// for (seed, epoch, key), so resumed runs see the same images.
#pragma once
#include <cstdint>
#include <string>

#include "catalog/images.h"

namespace tailor {

// key: the product id, so all questions about one photo see the same augmented photo in an epoch.
ImageRGB augment_image(const ImageRGB& img, uint64_t seed, int64_t epoch, const std::string& key);
// The mirror image (left and right swapped): image-side pre-training's only augmentation.
ImageRGB flip_horizontal(const ImageRGB& img);

}  // namespace tailor
