// LoRA training on a checkpoint whose shared, encoder/decoder embed_tokens and lm_head all differ
// (tests/fixtures/checkpoint_forms/all_untied, written by transformers 5.x): the untied tensors stay
// frozen and are written back as stored, and the merged model equals base + adapter. The run's
// merged-model logits are written to OUT/tailor_logits.safetensors, so that
// tools/peft_check/check.py can compare HF's logits of the merged model (on the GPU machine) with
// tailor's; TAILOR_KEEP_UNTIED_RUN=DIR keeps a copy of the run there for that.
#include <gtest/gtest.h>

#include <filesystem>

#include "catalog/dataset.h"
#include "catalog/images.h"
#include "infer/batch.h"
#include "model/model_dir.h"
#include "model/weights.h"
#include "train/lora.h"
#include "train_data.h"
#include "train_models.h"

using namespace tailor;
using torch::Tensor;

TEST(UntiedCheckpoint, LoraKeepsUntiedCopiesAndMergedEqualsBasePlusAdapter) {
  const std::string base_dir = test::repo_root() + "/tests/fixtures/checkpoint_forms/all_untied";
  TrainOptions o;
  o.model_dir = base_dir;
  o.data_dir = test::tiny_setup().data;
  o.out_dir = test::temp_dir("untied_lora");
  o.batch_size = 4;
  o.max_steps = 3;
  o.lr = 1e-2;
  o.seed = 5;
  o.progress = false;
  o.eval_each_epoch = false;
  train_model(o);

  const std::string lm = "language_model.";
  Checkpoint in = Checkpoint::open(base_dir), out = Checkpoint::open(o.out_dir + "/model");
  for (const char* copy : {"shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"}) {
    ASSERT_TRUE(out.has(lm + copy)) << copy;
    EXPECT_TRUE(torch::equal(tensor_from_view(out.get(lm + copy)), tensor_from_view(in.get(lm + copy)))) << copy;
  }

  Blip2Bundle base = load_model_dir(base_dir, torch::kCPU, torch::kFloat);
  attach_lora(*base.model, o.lora);
  load_peft_adapter(o.out_dir + "/adapter", *base.model);
  Blip2Bundle merged = load_model_dir(o.out_dir + "/model", torch::kCPU, torch::kFloat);
  Blip2Bundle untrained = load_model_dir(base_dir, torch::kCPU, torch::kFloat);
  base.model->eval();
  std::vector<VqaPair> pairs = read_pairs(o.data_dir + "/train.jsonl");
  std::vector<ImageRGB> imgs = {load_image(pairs[0].image), load_image(pairs[1].image)};
  torch::NoGradGuard ng;
  Tensor px = pixel_batch({&imgs[0], &imgs[1]}, base.image_cfg);
  TokenBatch tb = prompt_batch(*base.tokenizer, {pairs[0].prompt, pairs[1].prompt}, base.cfg);
  Tensor labels = label_batch(*base.tokenizer, {pairs[0].answer, pairs[1].answer});
  Tensor a = base.model->forward(px, tb.ids, tb.mask, labels);
  Tensor b = merged.model->forward(px, tb.ids, tb.mask, labels);
  EXPECT_LE(test::rel_err(b, a), 1e-5);
  EXPECT_GT(test::rel_err(b, untrained.model->forward(px, tb.ids, tb.mask, labels)), 1e-4) << "training changed nothing";

  Tensor ids = tb.ids.contiguous(), mask = tb.mask.contiguous(), lab = labels.contiguous(), pixels = px.contiguous();
  Tensor logits = b.contiguous();
  auto view = [](const std::string& name, const Tensor& t) {
    return TensorToWrite{name, t.scalar_type() == torch::kLong ? DType::I64 : DType::F32, t.sizes().vec(), t.data_ptr(),
                         static_cast<size_t>(t.numel() * t.element_size())};
  };
  write_safetensors(o.out_dir + "/tailor_logits.safetensors",
                    {view("pixel_values", pixels), view("input_ids", ids), view("attention_mask", mask),
                     view("labels", lab), view("logits", logits)});
  if (const char* keep = std::getenv("TAILOR_KEEP_UNTIED_RUN")) {
    std::filesystem::remove_all(keep);
    std::filesystem::copy(o.out_dir, keep, std::filesystem::copy_options::recursive);
  }
}
