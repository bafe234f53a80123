// Checkpoint forms as transformers 5.x writes and re-reads them (tools/parity/make_checkpoint_fixtures.py,
// run on the GPU machine): untied embed_tokens, an untied lm_head in bfloat16, a transformers 4.x
// config with float16 shards. For each, tailor ties exactly what HF tied after loading, derives the
// same activation and scaling, and gives HF's logits and greedy ids (eager and static paths) on real
// photos of several sizes; what it writes back keeps each untied tensor and drops each tied one.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "catalog/images.h"
#include "infer/batch.h"
#include "infer/generate.h"
#include "infer/static_generate.h"
#include "model/model_dir.h"
#include "model/weights.h"
#include "test_util.h"
#include "util/fs.h"

using namespace tailor;
using torch::Tensor;

namespace {

const char* kForms[] = {"all_untied", "untied_head", "config_4x"};

std::string form_dir(const std::string& form) { return test::repo_root() + "/tests/fixtures/checkpoint_forms/" + form; }

struct Form {
  Blip2Bundle b;
  std::map<std::string, Tensor> ref;
  nlohmann::json info;
};

Form load_form(const std::string& dir) {
  Form f;
  f.b = load_model_dir(dir, torch::kCPU, torch::kFloat);
  Checkpoint ck = Checkpoint::open(dir + "/reference.safetensors");
  for (const auto& n : ck.names()) f.ref[n] = tensor_from_view(ck.get(n));
  f.info = nlohmann::json::parse(read_file(dir + "/reference.json"));
  return f;
}

// The script's photos: the catalog's, then crops (rows y0:y1, columns x0:x1) enlarged by pixel repetition.
std::vector<ImageRGB> form_images(const nlohmann::json& info) {
  std::map<std::string, ImageRGB> photos;
  std::vector<ImageRGB> out;
  for (const auto& id : info["ids"]) {
    std::string s = id.get<std::string>();
    photos[s] = load_image(test::fashion_catalog() + "/images/" + s + ".jpg");
    out.push_back(photos[s]);
  }
  for (const auto& d : info["derived"]) {
    const ImageRGB& src = photos.at(d["id"].get<std::string>());
    int y0 = d["y0"], y1 = d["y1"], x0 = d["x0"], x1 = d["x1"], k = d["repeat"];
    ImageRGB img;
    img.width = (x1 - x0) * k;
    img.height = (y1 - y0) * k;
    img.pixels.resize(static_cast<size_t>(img.width) * img.height * 3);
    for (int y = 0; y < img.height; ++y)
      for (int x = 0; x < img.width; ++x)
        for (int c = 0; c < 3; ++c) img.at(x, y)[c] = src.at(x0 + x / k, y0 + y / k)[c];
    out.push_back(img);
  }
  return out;
}

Tensor form_pixels(const Form& f) {
  std::vector<ImageRGB> imgs = form_images(f.info);
  std::vector<const ImageRGB*> ptrs;
  for (auto& i : imgs) ptrs.push_back(&i);
  return pixel_batch(ptrs, f.b.image_cfg);
}

double rel_err(const Tensor& a, const Tensor& b) {
  return ((a.to(torch::kDouble) - b.to(torch::kDouble)).norm() / b.to(torch::kDouble).norm()).item<double>();
}

Tensor logits_of(Blip2ForConditionalGeneration& m, Form& f, const Tensor& pixels) {
  torch::NoGradGuard ng;
  return m->forward(pixels, f.ref["input_ids"], f.ref["attention_mask"], f.ref["labels"]);
}

Tensor hf_new_ids(const Tensor& with_start) { return with_start.narrow(1, 1, with_start.size(1) - 1); }

std::set<std::string> saved_keys(const std::string& dir) {
  Checkpoint ck = Checkpoint::open(dir);
  std::vector<std::string> n = ck.names();
  return {n.begin(), n.end()};
}

}  // namespace

TEST(CheckpointForms, TiesActivationAndScalingAsHfDerivedThem) {
  for (const char* form : kForms) {
    SCOPED_TRACE(form);
    Form f = load_form(form_dir(form));
    T5Untied u = f.b.model->language_model->untied();
    const auto& tied = f.info["tied_to_shared"];
    EXPECT_EQ(u.encoder_embed_tokens, !tied["encoder.embed_tokens.weight"].get<bool>());
    EXPECT_EQ(u.decoder_embed_tokens, !tied["decoder.embed_tokens.weight"].get<bool>());
    EXPECT_EQ(u.lm_head, !tied["lm_head.weight"].get<bool>());
    const auto& tc = f.info["text_config"];
    EXPECT_EQ(f.b.cfg.text.dense_act_fn, tc["dense_act_fn"].get<std::string>());
    EXPECT_EQ(f.b.cfg.text.is_gated_act, tc["is_gated_act"].get<bool>());
    EXPECT_EQ(f.b.cfg.text.scale_decoder_outputs, tc["scale_decoder_outputs"].get<bool>());
  }
}

TEST(CheckpointForms, LogitsAndGreedyIdsMatchHfOnPhotosOfSeveralSizes) {
  for (const char* form : kForms) {
    SCOPED_TRACE(form);
    Form f = load_form(form_dir(form));
    Tensor pixels = form_pixels(f);
    ASSERT_EQ(pixels.size(0), f.ref["input_ids"].size(0));
    double e = rel_err(logits_of(f.b.model, f, pixels), f.ref["logits"]);
    std::printf("%s: logits relative error vs HF %.3g\n", form, e);
    EXPECT_LT(e, 1e-4);

    GenerationOptions o;
    o.max_new_tokens = 10;  // as the script
    torch::NoGradGuard ng;
    auto enc = f.b.model->encode(f.b.model->image_features(pixels), f.ref["input_ids"], f.ref["attention_mask"]);
    Tensor eager = generate_tokens(f.b.model->language_model, enc.first, enc.second, o);
    Tensor hf = hf_new_ids(f.ref["greedy_ids"]);
    ASSERT_EQ(eager.sizes(), hf.sizes()) << eager << "\n" << hf;
    EXPECT_TRUE(torch::equal(eager, hf)) << "eager\n" << eager << "\nHF\n" << hf;

    // The static path, the functions a GPU captures as CUDA graphs, run eagerly here.
    StaticGreedyGenerator gen(f.b.model, /*use_graphs=*/false);
    std::vector<int64_t> rows(pixels.size(0));
    for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int64_t>(i);
    Tensor fixed = gen.generate(pixels, rows, f.ref["input_ids"], f.ref["attention_mask"], o);
    EXPECT_TRUE(torch::equal(fixed, hf)) << "static\n" << fixed << "\nHF\n" << hf;
  }
}

TEST(CheckpointForms, UntiedTensorsMatter) {
  // The fixtures would not catch a loader that ties everything: with every copy tied to `shared`,
  // HF's own greedy answers change (the script measured it), and so do tailor's logits.
  for (const char* form : kForms) {
    SCOPED_TRACE(form);
    Form f = load_form(form_dir(form));
    EXPECT_GT(f.info["rows_that_differ_if_all_tied"].get<int>(), 0);
    Blip2Bundle tied = load_model_dir(form_dir(form), torch::kCPU, torch::kFloat);
    Blip2ForConditionalGeneration all_tied(tied.cfg, T5Untied{});
    {
      torch::NoGradGuard ng;
      auto src = tied.model->named_parameters(true);
      for (auto& p : all_tied->named_parameters(true)) p.value().copy_(src[p.key()]);
    }
    all_tied->eval();
    EXPECT_GT(rel_err(logits_of(all_tied, f, form_pixels(f)), f.ref["logits"]), 1e-2);
  }
}

TEST(CheckpointForms, WritesBackWhatItRead) {
  const std::string lm = "language_model.";
  for (const char* form : kForms) {
    SCOPED_TRACE(form);
    Form f = load_form(form_dir(form));
    std::string out = test::temp_dir(std::string("written_") + form);
    save_model_dir(out, f.b, torch::kFloat);
    std::set<std::string> keys = saved_keys(out);
    const auto& tied = f.info["tied_to_shared"];
    EXPECT_TRUE(keys.count(lm + "shared.weight"));
    for (const char* copy : {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"})
      EXPECT_EQ(keys.count(lm + copy), tied[copy].get<bool>() ? 0u : 1u) << copy;
    Blip2Bundle back = load_model_dir(out, torch::kCPU, torch::kFloat);
    Tensor pixels = form_pixels(f);
    EXPECT_TRUE(torch::equal(logits_of(back.model, f, pixels), logits_of(f.b.model, f, pixels)));
  }
}
