// Image-side pre-training for models trained from scratch: BLIP-2's first stage in small.
//
// BLIP-2 first teaches its Q-Former to extract what text needs from the image (representation
// learning), and only then connects it to the language model. From scratch, the language-model
// loss alone teaches the vision tower almost nothing beyond colour within a CPU budget: the signal
// has to pass the T5 decoder, its encoder and the Q-Former's cross-attention, all starting near
// uniform (docs/demo.md). Here the image side (vision tower, Q-Former, query tokens) first learns
// the attributes directly: one linear classification head per attribute on the mean of the query
// outputs, cross-entropy over the attribute's values in the training pairs. The heads are thrown
// away afterwards; the model stays a plain BLIP-2.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "catalog/dataset.h"
#include "catalog/images.h"
#include "model/blip2.h"
#include "model/image_processor.h"

namespace tailor {

struct PretrainOptions {
  int epochs = 0;
  double lr = 1e-3;             // AdamW, 5 % linear warm-up then cosine to 0
  double weight_decay = 0.01;
  int batch_size = 64;          // photos per step
  bool augment = true;          // random horizontal flips (labels stay true), fresh each epoch
  // Random framings as other sources shoot (train/reframe.h random_reframe: canvas aspect and scale,
  // background tone, blur, JPEG quality), fresh each epoch, before the flip.
  bool reframe = false;
  uint64_t seed = 0;
  bool progress = true;
};

struct PretrainEpoch {
  int64_t epoch = 0;                          // 1-based
  double loss = 0;                            // mean over the epoch's steps, summed over attributes
  std::map<std::string, double> val_accuracy; // the heads' accuracy on the validation photos
};

// Trains m's vision tower, Q-Former and query tokens in place (their requires_grad flags are put back
// as they were). `train` may hold attributes the language model never trains on (the trainer's
// --pretrain-data: more products, more of their fields): one head each. `images` holds every training
// pair's photo by path; validation photos are loaded here (errors name the file). on_epoch is called
// after each epoch.
std::vector<PretrainEpoch> pretrain_image_side(Blip2ForConditionalGeneration& m, const ImageProcessorConfig& image_cfg,
                                               const std::vector<VqaPair>& train, const std::vector<VqaPair>& val,
                                               const std::map<std::string, std::shared_ptr<const ImageRGB>>& images,
                                               const PretrainOptions& o, const torch::Device& dev,
                                               const std::function<void(const PretrainEpoch&)>& on_epoch);

}  // namespace tailor
