// `tailor init --image-size/--patch-size`: the written model directory reads back with the vision
// tower and image processor at the asked size ((96 / 8)^2 patches + the class token), answers a photo
// of that size, and a size that is not a whole number of patches is refused by name.
#include <gtest/gtest.h>

#include "model/model_dir.h"
#include "model/presets.h"
#include "test_util.h"
#include "util/error.h"

using namespace tailor;

TEST(Init, ImageAndPatchSizeReachTheConfigAndTheProcessor) {
  InitOptions o;
  o.preset = "tiny";
  o.out_dir = test::temp_dir("init_96");
  o.image_size = 96;
  init_model_dir(o);
  Blip2Bundle b = load_model_dir(o.out_dir, torch::kCPU, torch::kFloat);
  EXPECT_EQ(b.cfg.vision.image_size, 96);
  EXPECT_EQ(b.cfg.vision.patch_size, 8);
  EXPECT_EQ(b.image_cfg.height, 96);
  EXPECT_EQ(b.image_cfg.width, 96);
  EXPECT_EQ(b.model->vision_model->embeddings->position_embedding.size(1), 12 * 12 + 1);
  torch::NoGradGuard ng;
  torch::Tensor out = b.model->vision_model->forward(torch::randn({2, 3, 96, 96}));
  EXPECT_EQ(out.size(1), 12 * 12 + 1);

  InitOptions bad = o;
  bad.out_dir = test::temp_dir("init_bad");
  bad.image_size = 100;
  try {
    init_model_dir(bad);
    ADD_FAILURE() << "100 px in 8 px patches was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--image-size 100 is not a whole number of 8-pixel patches"), std::string::npos) << e.what();
  }
}
