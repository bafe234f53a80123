// The T5 tokenizer: a SentencePiece model (spiece.model) with HF T5Tokenizer's behaviour —
// pad=0, eos "</s>"=1 appended on encode, unk=2, <extra_id_0..N-1> mapped to the top ids
// (<extra_id_0> = piece_count + N - 1), decode skipping special tokens.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace tailor {

class T5Tokenizer {
 public:
  // Error names the path when the file is missing or not a SentencePiece model.
  static T5Tokenizer load(const std::string& spiece_model_path, int extra_ids = 100);
  T5Tokenizer(T5Tokenizer&&) noexcept;
  T5Tokenizer& operator=(T5Tokenizer&&) noexcept;
  ~T5Tokenizer();

  std::vector<int64_t> encode(const std::string& text, bool add_eos = true) const;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = true) const;
  int64_t pad_id() const { return 0; }
  int64_t eos_id() const { return 1; }
  int64_t unk_id() const { return 2; }
  int64_t vocab_size() const;  // pieces + extra ids
  int64_t piece_count() const;
  int64_t extra_id(int n) const;  // id of <extra_id_n>; Error when n is out of range

 private:
  T5Tokenizer() = default;
  bool match_special(const std::string& text, size_t pos, int64_t* id, size_t* len) const;
  void encode_plain(const std::string& segment, std::vector<int64_t>* out) const;
  bool is_special(int64_t id) const;
  std::string id_to_token(int64_t id) const;

  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;            // the model as written
  std::unique_ptr<sentencepiece::SentencePieceProcessor> normalizer_sp_;  // charsmap only (HF's Precompiled)
  std::unique_ptr<sentencepiece::SentencePieceProcessor> viterbi_sp_;     // no normalization: Unigram only
  int extra_ids_ = 100;
};

// Trains a unigram SentencePiece model with T5's special-token layout on `corpus` (one sentence per
// entry) and writes it to out_path. Deterministic for the same corpus and vocab size.
void train_t5_sentencepiece(const std::vector<std::string>& corpus, int vocab_size,
                            const std::string& out_path);

}  // namespace tailor
