// Links libtorch: proves the static SentencePiece (with the system protobuf) and libtorch live in one
// process. Debian's shared libsentencepiece crashes here.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "model/tokenizer.h"
#include "test_util.h"
#include "util/fs.h"

using namespace tailor;

TEST(T5TokenizerWithTorch, TrainTokenizeAndBuildTensorInOneProcess) {
  torch::Tensor before = torch::arange(6, torch::kFloat32).reshape({2, 3});
  ASSERT_EQ(before.sum().item<float>(), 15.0f);

  std::vector<std::string> corpus;
  for (int i = 0; i < 200; ++i)
    corpus.push_back("Sleeve Length: " + std::string(i % 2 ? "Long" : "Short") + " Sleeves, item " + std::to_string(i));
  std::string path = join_path(test::temp_dir("spm_torch"), "spiece.model");
  train_t5_sentencepiece(corpus, 100, path);
  T5Tokenizer tok = T5Tokenizer::load(path);

  std::vector<int64_t> ids = tok.encode("Sleeve Length: Long Sleeves <extra_id_0>");
  torch::Tensor t = torch::tensor(ids, torch::kInt64);
  ASSERT_EQ(t.numel(), static_cast<int64_t>(ids.size()));
  EXPECT_EQ(t[-1].item<int64_t>(), tok.eos_id());
  EXPECT_EQ(t[-2].item<int64_t>(), tok.extra_id(0));
  EXPECT_LT(t.slice(0, 0, -2).max().item<int64_t>(), tok.piece_count());

  std::vector<int64_t> back(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  EXPECT_EQ(tok.decode(back), "Sleeve Length: Long Sleeves");
}
