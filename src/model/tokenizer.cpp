// T5 tokenizer on SentencePiece, matching HF transformers 5.17's T5Tokenizer. In 5.x that class is a
// `tokenizers` (Rust) pipeline built from spiece.model (TokenizersBackend + T5Converter.convert_from_spm),
// not the sentencepiece library, so we reproduce that pipeline step by step:
//   vocab       = the model's pieces, then <extra_id_{E-1}> ... <extra_id_0>, i.e.
//                 id(<extra_id_N>) = piece_count + E - 1 - N
//   split       special tokens (<pad>, </s>, <unk>, <extra_id_N>; HF's AddedVocabulary, matched on the raw
//               text, no lstrip/rstrip) are cut out first and map straight to their ids
//   normalizer  each remaining segment gets the model's precompiled charsmap only (normalizers.Precompiled)
//               -- none of SentencePiece's own whitespace handling
//   pre-tok     WhitespaceSplit (Unicode White_Space, as Rust's char::is_whitespace), then
//               Metaspace(prepend_scheme="always"): "▁" is prepended to every word (unless it already starts
//               with one) -- so a word right after a special token also gets "▁" (the "legacy" behaviour)
//   model       Unigram Viterbi over each word with the model's scores, unknown characters -> <unk>,
//               consecutive unknowns fused into one <unk>
//   post        "</s>" appended
//   decode      ids outside the vocab are dropped (as HF does); with skip_special_tokens the control
//               pieces (<pad>, </s>), <unk> and the extra ids are dropped; then Metaspace decoding: "▁" -> " ",
//               and every "▁" of the first remaining token removed. No clean_up_tokenization_spaces (its 5.x
//               default is False).
// The SentencePiece library does the charsmap and the Viterbi for us: we load the model twice more with
// a modified normalizer spec (charsmap only; identity), editing the serialized ModelProto generically
// because the ModelProto classes are not part of SentencePiece's installed headers.
#include "model/tokenizer.h"

#include <google/protobuf/unknown_field_set.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstring>
#include <filesystem>
#include <unordered_map>

#include "util/error.h"
#include "util/fs.h"

namespace tailor {

namespace {

constexpr const char* kMeta = "\xe2\x96\x81";  // U+2581 "▁", SentencePiece's whitespace mark

// ModelProto field numbers (sentencepiece_model.proto): normalizer_spec = 3; in NormalizerSpec:
// name = 1, precompiled_charsmap = 2, add_dummy_prefix = 3, remove_extra_whitespaces = 4,
// escape_whitespaces = 5.
std::string edit_normalizer(const std::string& model_proto, bool keep_charsmap, const std::string& path) {
  google::protobuf::UnknownFieldSet top;
  if (!top.ParseFromString(model_proto)) throw Error(path + ": SentencePiece model is not a valid protobuf");
  google::protobuf::UnknownFieldSet spec;
  for (int i = 0; i < top.field_count(); ++i) {
    const google::protobuf::UnknownField& f = top.field(i);
    if (f.number() == 3 && f.type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
      if (!spec.ParseFromString(f.length_delimited()))
        throw Error(path + ": SentencePiece normalizer_spec is not a valid protobuf");
    }
  }
  for (int n : {3, 4, 5}) {
    spec.DeleteByNumber(n);
    spec.AddVarint(n, 0);
  }
  if (!keep_charsmap) {
    spec.DeleteByNumber(1);
    spec.DeleteByNumber(2);
    spec.AddLengthDelimited(1, "identity");
  }
  std::string spec_bytes;
  spec.SerializeToString(&spec_bytes);
  top.DeleteByNumber(3);
  top.AddLengthDelimited(3, spec_bytes);
  std::string out;
  top.SerializeToString(&out);
  return out;
}

// Decodes one UTF-8 code point at s[i]; returns its byte length (1 for an invalid byte).
size_t utf8_next(const std::string& s, size_t i, uint32_t* cp) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || i + n > s.size()) {
    *cp = 0xfffd;
    return 1;
  }
  uint32_t v = n == 1 ? c : n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);
  for (size_t k = 1; k < n; ++k) {
    unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xc0) != 0x80) {
      *cp = 0xfffd;
      return 1;
    }
    v = (v << 6) | (cc & 0x3f);
  }
  *cp = v;
  return n;
}

// Unicode White_Space, the set Rust's char::is_whitespace (HF's WhitespaceSplit) uses.
bool is_unicode_whitespace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

std::unique_ptr<sentencepiece::SentencePieceProcessor> load_proto(const std::string& proto, const std::string& path) {
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  auto st = sp->LoadFromSerializedProto(proto);
  if (!st.ok()) throw Error(path + ": cannot load SentencePiece model: " + st.ToString());
  return sp;
}

}  // namespace

T5Tokenizer::T5Tokenizer(T5Tokenizer&&) noexcept = default;
T5Tokenizer& T5Tokenizer::operator=(T5Tokenizer&&) noexcept = default;
T5Tokenizer::~T5Tokenizer() = default;

T5Tokenizer T5Tokenizer::load(const std::string& spiece_model_path, int extra_ids) {
  if (extra_ids < 0) throw Error("T5Tokenizer: extra_ids must be >= 0, got " + std::to_string(extra_ids));
  if (!std::filesystem::is_regular_file(spiece_model_path))
    throw Error("SentencePiece model " + spiece_model_path + " does not exist");
  std::string bytes = read_file(spiece_model_path);
  T5Tokenizer t;
  t.extra_ids_ = extra_ids;
  t.sp_ = load_proto(bytes, spiece_model_path);
  // HF's T5 ids are fixed by position; a model with another layout would silently shift them.
  const char* expected[3] = {"<pad>", "</s>", "<unk>"};
  if (t.sp_->GetPieceSize() < 3) throw Error(spiece_model_path + ": SentencePiece model has fewer than 3 pieces");
  for (int id = 0; id < 3; ++id) {
    if (t.sp_->IdToPiece(id) != expected[id])
      throw Error(spiece_model_path + ": piece " + std::to_string(id) + " is '" + t.sp_->IdToPiece(id) +
                  "', T5 needs '" + expected[id] + "' (pad=0, eos=1, unk=2)");
  }
  if (!t.sp_->IsUnknown(2)) throw Error(spiece_model_path + ": piece 2 '<unk>' is not the unknown piece");
  std::string proto = t.sp_->serialized_model_proto();
  t.normalizer_sp_ = load_proto(edit_normalizer(proto, true, spiece_model_path), spiece_model_path);
  t.viterbi_sp_ = load_proto(edit_normalizer(proto, false, spiece_model_path), spiece_model_path);
  return t;
}

int64_t T5Tokenizer::piece_count() const { return sp_->GetPieceSize(); }
int64_t T5Tokenizer::vocab_size() const { return piece_count() + extra_ids_; }

int64_t T5Tokenizer::extra_id(int n) const {
  if (n < 0 || n >= extra_ids_)
    throw Error("<extra_id_" + std::to_string(n) + "> is outside the " + std::to_string(extra_ids_) + " extra ids");
  return piece_count() + extra_ids_ - 1 - n;
}

// A special token starting at text[pos]: <pad>, </s>, <unk> or <extra_id_N> with N written as HF
// writes it (decimal, no leading zeros) and N < extra_ids. No special token is a prefix of another,
// so leftmost-longest matching reduces to "does one start here".
bool T5Tokenizer::match_special(const std::string& text, size_t pos, int64_t* id, size_t* len) const {
  static const char* fixed[3] = {"<pad>", "</s>", "<unk>"};
  for (int k = 0; k < 3; ++k) {
    size_t n = std::strlen(fixed[k]);
    if (text.compare(pos, n, fixed[k]) == 0) {
      *id = k;
      *len = n;
      return true;
    }
  }
  static const std::string extra = "<extra_id_";
  if (text.compare(pos, extra.size(), extra) != 0) return false;
  size_t p = pos + extra.size();
  size_t digits_begin = p;
  while (p < text.size() && p - digits_begin < 9 && text[p] >= '0' && text[p] <= '9') ++p;
  if (p == digits_begin || p >= text.size() || text[p] != '>') return false;
  std::string digits = text.substr(digits_begin, p - digits_begin);
  int n = std::stoi(digits);
  if (std::to_string(n) != digits || n >= extra_ids_) return false;
  *id = piece_count() + extra_ids_ - 1 - n;
  *len = p + 1 - pos;
  return true;
}

// One segment without special tokens: charsmap, whitespace split, "▁" prefix, Viterbi per word.
void T5Tokenizer::encode_plain(const std::string& segment, std::vector<int64_t>* out) const {
  if (segment.empty()) return;
  auto spt = normalizer_sp_->EncodeAsImmutableProto(segment);
  std::string normalized;
  for (const auto& p : spt.pieces()) normalized += p.piece();

  std::vector<int> ids;
  size_t i = 0;
  while (i < normalized.size()) {
    uint32_t cp;
    size_t n = utf8_next(normalized, i, &cp);
    if (is_unicode_whitespace(cp)) {
      i += n;
      continue;
    }
    size_t begin = i;
    while (i < normalized.size()) {
      n = utf8_next(normalized, i, &cp);
      if (is_unicode_whitespace(cp)) break;
      i += n;
    }
    std::string word = normalized.substr(begin, i - begin);
    if (!starts_with(word, kMeta)) word = kMeta + word;
    ids.clear();
    auto st = viterbi_sp_->Encode(word, &ids);
    if (!st.ok()) throw Error("SentencePiece encode failed: " + st.ToString());
    for (int id : ids) out->push_back(id);
  }
}

std::vector<int64_t> T5Tokenizer::encode(const std::string& text, bool add_eos) const {
  std::vector<int64_t> out;
  size_t seg_start = 0;
  size_t i = 0;
  while (i < text.size()) {
    int64_t id;
    size_t len;
    if (text[i] == '<' && match_special(text, i, &id, &len)) {
      encode_plain(text.substr(seg_start, i - seg_start), &out);
      out.push_back(id);
      i += len;
      seg_start = i;
    } else {
      ++i;
    }
  }
  encode_plain(text.substr(seg_start), &out);
  if (add_eos) out.push_back(eos_id());
  return out;
}

bool T5Tokenizer::is_special(int64_t id) const {
  if (id >= piece_count()) return true;  // extra ids
  int i = static_cast<int>(id);
  return sp_->IsControl(i) || sp_->IsUnknown(i);
}

std::string T5Tokenizer::id_to_token(int64_t id) const {
  if (id < piece_count()) return sp_->IdToPiece(static_cast<int>(id));
  return "<extra_id_" + std::to_string(piece_count() + extra_ids_ - 1 - id) + ">";
}

std::string T5Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::string out;
  bool first = true;
  const std::string meta = kMeta;
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size()) continue;  // HF drops ids it has no token for
    if (skip_special_tokens && is_special(id)) continue;
    std::string token = id_to_token(id);
    size_t p = 0;
    while (p < token.size()) {
      if (token.compare(p, meta.size(), meta) == 0) {
        if (!first) out += ' ';
        p += meta.size();
      } else {
        out += token[p++];
      }
    }
    first = false;
  }
  return out;
}

// ---- training ----------------------------------------------------------------------------------

namespace {

class VectorSentences : public sentencepiece::SentenceIterator {
 public:
  explicit VectorSentences(const std::vector<std::string>& v) : v_(v) {}
  bool done() const override { return i_ >= v_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return v_[i_]; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

 private:
  const std::vector<std::string>& v_;
  size_t i_ = 0;
};

}  // namespace

void train_t5_sentencepiece(const std::vector<std::string>& corpus, int vocab_size, const std::string& out_path) {
  if (corpus.empty()) throw Error("cannot train SentencePiece model " + out_path + ": empty corpus");
  if (vocab_size < 8) throw Error("cannot train SentencePiece model " + out_path + ": vocab_size " +
                                  std::to_string(vocab_size) + " is too small");
  // T5's layout: <pad>=0, </s>=1, <unk>=2, no <s>. Deterministic: one thread, no input sampling or
  // shuffling, fixed seed. hard_vocab_limit=false lets tiny corpora end below vocab_size.
  std::unordered_map<std::string, std::string> args = {
      {"model_type", "unigram"},
      {"vocab_size", std::to_string(vocab_size)},
      {"pad_id", "0"},
      {"eos_id", "1"},
      {"unk_id", "2"},
      {"bos_id", "-1"},
      {"pad_piece", "<pad>"},
      {"eos_piece", "</s>"},
      {"unk_piece", "<unk>"},
      {"character_coverage", "1.0"},
      {"num_threads", "1"},
      {"hard_vocab_limit", "false"},
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      {"minloglevel", "2"},
  };
  sentencepiece::SetRandomGeneratorSeed(42);
  VectorSentences it(corpus);
  std::string model;
  auto st = sentencepiece::SentencePieceTrainer::Train(args, &it, &model);
  if (!st.ok()) throw Error("cannot train SentencePiece model " + out_path + ": " + st.ToString());
  write_file_atomic(out_path, model);
}

}  // namespace tailor
