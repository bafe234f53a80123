// The strict loader: a checkpoint with missing, unexpected or mis-shaped tensors is refused with every
// offending key named; transformers 4.x's ViT bias form (q_bias + v_bias) loads to the same model.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/model_dir.h"
#include "model/weights.h"
#include "test_util.h"
#include "util/error.h"
#include "util/fs.h"

using namespace tailor;
using torch::Tensor;
namespace fs = std::filesystem;

namespace {

std::string fixture() { return test::repo_root() + "/tests/fixtures/parity_tiny"; }

// Copies the fixture's model directory with its weights rewritten by `edit`.
std::string variant(const std::string& name, const std::function<void(std::map<std::string, Tensor>&)>& edit) {
  std::string dir = test::temp_dir(name);
  for (const char* f : {"config.json", "spiece.model", "preprocessor_config.json"})
    fs::copy_file(fixture() + "/" + f, dir + "/" + f);
  Checkpoint ck = Checkpoint::open(fixture() + "/model.safetensors");
  std::map<std::string, Tensor> w;
  for (const auto& n : ck.names()) w[n] = tensor_from_view(ck.get(n));
  edit(w);
  std::vector<TensorToWrite> out;
  for (auto& [n, t] : w) {
    t = t.contiguous();
    out.push_back({n, DType::F32, t.sizes().vec(), t.data_ptr(), static_cast<size_t>(t.numel()) * 4});
  }
  write_safetensors(dir + "/model.safetensors", out);
  return dir;
}

std::string load_error(const std::string& dir) {
  try {
    load_model_dir(dir, torch::kCPU, torch::kFloat);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

const char* kQ = "language_model.encoder.block.1.layer.0.SelfAttention.q.weight";

}  // namespace

TEST(Loader, MissingTensorIsNamed) {
  std::string msg = load_error(variant("missing", [](auto& w) { w.erase(kQ); }));
  EXPECT_NE(msg.find("missing tensors (1)"), std::string::npos) << msg;
  EXPECT_NE(msg.find(kQ), std::string::npos) << msg;
}

TEST(Loader, UnexpectedTensorIsNamed) {
  std::string msg = load_error(variant("unexpected", [](auto& w) { w["language_model.extra.weight"] = torch::zeros({2}); }));
  EXPECT_NE(msg.find("unexpected tensors (1)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("language_model.extra.weight"), std::string::npos) << msg;
}

TEST(Loader, MisshapedTensorIsNamedWithBothShapes) {
  std::string msg = load_error(variant("shape", [](auto& w) { w[kQ] = torch::zeros({3, 5}); }));
  EXPECT_NE(msg.find("wrong shape"), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::string(kQ) + ": checkpoint [3, 5]"), std::string::npos) << msg;
}

TEST(Loader, EveryProblemIsListedAtOnce) {
  std::string msg = load_error(variant("all", [](auto& w) {
    w.erase(kQ);
    w["stray"] = torch::zeros({1});
    w["query_tokens"] = torch::zeros({1});
  }));
  EXPECT_NE(msg.find("missing tensors"), std::string::npos);
  EXPECT_NE(msg.find("unexpected tensors"), std::string::npos);
  EXPECT_NE(msg.find("wrong shape"), std::string::npos);
}

TEST(Loader, TruncatedCheckpointNamesTheFile) {
  std::string dir = variant("trunc", [](auto&) {});
  fs::resize_file(dir + "/model.safetensors", fs::file_size(dir + "/model.safetensors") - 100);
  std::string msg = load_error(dir);
  EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
}

TEST(Loader, Transformers4QVBiasFormGivesTheSameModel) {
  std::string dir = variant("qv", [](auto& w) {
    std::vector<std::string> keys;
    for (auto& kv : w)
      if (kv.first.size() > 13 && kv.first.compare(kv.first.size() - 13, 13, "self_attn.qkv.bias") == 0) keys.push_back(kv.first);
    for (auto& kv : w)
      if (kv.first.find("self_attn.qkv.bias") != std::string::npos) keys.push_back(kv.first);
    for (const auto& k : keys) {
      if (!w.count(k)) continue;
      Tensor b = w[k];
      int64_t d = b.size(0) / 3;
      std::string base = k.substr(0, k.size() - std::string("qkv.bias").size());
      w[base + "q_bias"] = b.narrow(0, 0, d).clone();
      w[base + "v_bias"] = b.narrow(0, 2 * d, d).clone();
      w.erase(k);
    }
  });
  Blip2Bundle a = load_model_dir(fixture(), torch::kCPU, torch::kFloat);
  Blip2Bundle b = load_model_dir(dir, torch::kCPU, torch::kFloat);
  auto pa = a.model->named_parameters(), pb = b.model->named_parameters();
  int checked = 0;
  for (auto& item : pa) {
    const Tensor& want = item.value();
    const Tensor& got = pb[item.key()];
    if (item.key().find("qkv.bias") != std::string::npos) {
      // 4.x has no key bias: q and v come through, the middle third is zero.
      int64_t d = want.size(0) / 3;
      EXPECT_TRUE(torch::equal(got.narrow(0, 0, d), want.narrow(0, 0, d))) << item.key();
      EXPECT_TRUE(torch::equal(got.narrow(0, 2 * d, d), want.narrow(0, 2 * d, d))) << item.key();
      EXPECT_EQ(got.narrow(0, d, d).abs().max().item<float>(), 0.0f) << item.key();
      ++checked;
      continue;
    }
    ASSERT_TRUE(torch::equal(want, got)) << item.key();
  }
  EXPECT_EQ(checked, 2);  // the fixture's two ViT layers
}

TEST(Loader, MissingLmHeadMeansTiedToShared) {
  std::string dir = variant("tied", [](auto& w) { w.erase("language_model.lm_head.weight"); });
  Blip2Bundle b = load_model_dir(dir, torch::kCPU, torch::kFloat);
  EXPECT_TRUE(b.model->language_model->lm_head.is_empty());
  Tensor h = torch::randn({1, 2, b.cfg.text.d_model});
  Tensor want = torch::matmul(h, b.model->language_model->shared->weight.t());
  EXPECT_TRUE(torch::allclose(b.model->language_model->lm_logits(h), want, 1e-5, 1e-6));
}

// transformers 5.x's tie rule (model/weights.h resolve_t5_ties) on the cases no HF writer produces
// for the fixtures: a copy with another shape, `shared` missing.
TEST(Loader, CopyOfSharedWithAnotherShapeIsRefusedNamingIt) {
  std::string key = "language_model.encoder.embed_tokens.weight";
  std::string msg = load_error(variant("embed_shape", [&](auto& w) { w[key] = torch::zeros({w[key].size(0), 3}); }));
  EXPECT_NE(msg.find(key + ": checkpoint ["), std::string::npos) << msg;
}

TEST(Loader, MissingSharedTakesTheFirstStoredCopyInHfOrder) {
  const std::string lm = "language_model.";
  Checkpoint ck = Checkpoint::open(fixture() + "/model.safetensors");
  Tensor shared = tensor_from_view(ck.get(lm + "shared.weight")), head = tensor_from_view(ck.get(lm + "lm_head.weight"));
  // lm_head comes first: `shared` takes its values, and the stored embed_tokens (= the old shared) now differ.
  Blip2Bundle a = load_model_dir(variant("no_shared", [&](auto& w) { w.erase(lm + "shared.weight"); }), torch::kCPU, torch::kFloat);
  T5Untied u = a.model->language_model->untied();
  EXPECT_FALSE(u.lm_head);
  EXPECT_TRUE(u.encoder_embed_tokens && u.decoder_embed_tokens);
  EXPECT_TRUE(torch::equal(a.model->language_model->shared->weight, head));
  EXPECT_TRUE(torch::equal(a.model->language_model->decoder->embed_tokens->weight, shared));
  // Without lm_head, encoder.embed_tokens is first: everything is the old shared, tied.
  Blip2Bundle b = load_model_dir(variant("no_shared_head", [&](auto& w) {
                                   w.erase(lm + "shared.weight");
                                   w.erase(lm + "lm_head.weight");
                                 }),
                                 torch::kCPU, torch::kFloat);
  u = b.model->language_model->untied();
  EXPECT_FALSE(u.lm_head || u.encoder_embed_tokens || u.decoder_embed_tokens);
  EXPECT_TRUE(torch::equal(b.model->language_model->shared->weight, shared));
}

TEST(Loader, PickleOnlyDirectorySaysHowToConvert) {
  std::string dir = variant("pickle", [](auto&) {});
  fs::remove(dir + "/model.safetensors");
  write_file_atomic(dir + "/pytorch_model.bin", "not read");
  std::string msg = load_error(dir);
  EXPECT_NE(msg.find("pytorch_model.bin"), std::string::npos) << msg;
  EXPECT_NE(msg.find("save_pretrained"), std::string::npos) << msg;
}

TEST(Loader, GenerationConfigThatDisagreesWithConfigIsRefused) {
  std::string dir = variant("genconfig", [](auto&) {});
  write_file_atomic(dir + "/generation_config.json", R"({"decoder_start_token_id": 0, "eos_token_id": [1], "pad_token_id": 0})");
  EXPECT_EQ(load_error(dir), "");
  write_file_atomic(dir + "/generation_config.json", R"({"decoder_start_token_id": 0, "eos_token_id": [1, 2]})");
  std::string msg = load_error(dir);
  EXPECT_NE(msg.find("generation_config.json: field \"eos_token_id\""), std::string::npos) << msg;
}

namespace {
// The fixture's config.json with one edit, parsed.
std::string config_error(const std::function<void(nlohmann::json&)>& edit, Blip2Config* out = nullptr) {
  nlohmann::json j = nlohmann::json::parse(read_file(fixture() + "/config.json"));
  edit(j);
  try {
    Blip2Config c = parse_blip2_config(j.dump(), "config.json");
    if (out) *out = c;
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Config, ReadsWhatTransformersReads) {
  Blip2Config c;
  // No model_type in text_config: transformers builds OPT, which tailor does not run.
  EXPECT_NE(config_error([](auto& j) { j["text_config"].erase("model_type"); }).find("transformers builds OPT"), std::string::npos);
  // 5.x writes sizes as [h, w]; square ones are the same model, others are refused.
  EXPECT_EQ(config_error([](auto& j) { j["vision_config"]["image_size"] = {224, 224}; }, &c), "");
  EXPECT_EQ(c.vision.image_size, 224);
  EXPECT_NE(config_error([](auto& j) { j["vision_config"]["image_size"] = {224, 160}; }).find("\"image_size\""), std::string::npos);
  // feed_forward_proj must be "gated-ACT" or "ACT", as T5Config.validate_architecture.
  EXPECT_NE(config_error([](auto& j) { j["text_config"]["feed_forward_proj"] = "double-gelu"; }).find("feed_forward_proj"), std::string::npos);
  // Blip2Config sets the Q-Former's encoder_hidden_size from the vision tower.
  EXPECT_EQ(config_error([](auto& j) { j["qformer_config"]["encoder_hidden_size"] = 1408; }, &c), "");
  EXPECT_EQ(c.qformer.encoder_hidden_size, c.vision.hidden_size);
  // T5Config's attribute_map: an alias wins over the field.
  EXPECT_EQ(config_error([](auto& j) { j["text_config"]["hidden_size"] = 48; }, &c), "");
  EXPECT_EQ(c.text.d_model, 48);
  // An activation tailor does not compute is refused when reading, naming the field.
  EXPECT_NE(config_error([](auto& j) { j["vision_config"]["hidden_act"] = "quick_gelu"; }).find("hidden_act \"quick_gelu\""), std::string::npos);
}

TEST(Config, ValuesAreCheckedByTypeAndRangeNamingTheField) {
  auto refused = [](const std::function<void(nlohmann::json&)>& edit, const std::string& field) {
    std::string msg = config_error(edit);
    EXPECT_NE(msg.find("\"" + field + "\""), std::string::npos) << field << ": " << msg;
  };
  refused([](auto& j) { j["vision_config"]["num_hidden_layers"] = 3.9; }, "num_hidden_layers");  // not 3
  refused([](auto& j) { j["text_config"]["d_model"] = 1e300; }, "d_model");
  refused([](auto& j) { j["vision_config"]["layer_norm_eps"] = -1; }, "layer_norm_eps");
  refused([](auto& j) { j["text_config"]["relative_attention_max_distance"] = 0; }, "relative_attention_max_distance");
  refused([](auto& j) { j["num_query_tokens"] = 1000000000000LL; }, "num_query_tokens");
  refused([](auto& j) { j["text_config"]["decoder_start_token_id"] = 1 << 20; }, "decoder_start_token_id");
  refused([](auto& j) { j["qformer_config"]["hidden_dropout_prob"] = 1.5; }, "hidden_dropout_prob");
}

TEST(Loader, ModelLargerThanTheMachineIsRefusedBeforeAllocating) {
  std::string dir = variant("huge", [](auto&) {});
  nlohmann::json j = nlohmann::json::parse(read_file(dir + "/config.json"));
  j["text_config"]["d_model"] = 65536;
  j["text_config"]["d_ff"] = 262144;
  j["text_config"]["num_layers"] = j["text_config"]["num_decoder_layers"] = 200;
  write_file_atomic(dir + "/config.json", j.dump());
  std::string msg = load_error(dir);
  EXPECT_NE(msg.find("config.json: the model it describes needs about"), std::string::npos) << msg;
}

TEST(Loader, SafetensorsHeaderWithAnOutOfRangeNumberNamesTheFile) {
  std::string dir = test::temp_dir("overflow");
  std::string header = R"({"x":{"dtype":"F32","shape":[1e999],"data_offsets":[0,4]}})";
  std::string bytes(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  write_file_atomic(dir + "/model.safetensors", bytes + header + std::string(4, '\0'));
  std::string msg;
  try {
    Checkpoint::open(dir + "/model.safetensors");
  } catch (const Error& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find(dir + "/model.safetensors: header"), std::string::npos) << msg;
}
