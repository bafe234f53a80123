// tailor-test: base
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <string>
#include <vector>

#include "model/tokenizer.h"
#include "test_util.h"
#include "util/error.h"
#include "util/fs.h"

using namespace tailor;

namespace {

// A small catalog-like corpus, built deterministically.
std::vector<std::string> corpus() {
  const char* attrs[] = {"Sleeve Length", "Colour", "Pattern", "Neck", "Fit", "Fabric", "Occasion"};
  const char* values[] = {"Long Sleeves", "Short Sleeves", "Navy Blue", "Black", "White", "Striped",
                          "Solid", "Round Neck", "V-Neck", "Slim Fit", "Regular Fit", "Cotton", "Casual"};
  const char* items[] = {"shirt", "t-shirt", "kurta", "dress", "jeans", "jacket", "top", "sweater"};
  std::vector<std::string> out;
  for (int i = 0; i < 600; ++i) {
    const char* a = attrs[i % 7];
    const char* v = values[(i * 5) % 13];
    const char* it = items[(i * 3) % 8];
    out.push_back(std::string("What is the ") + a + " of this " + it + "?");
    out.push_back(std::string(a) + ": " + v);
    out.push_back(std::string("A ") + v + " " + it + " for men and women, " + std::to_string(i % 50) + " pieces.");
  }
  return out;
}

// One trained model per test process (training takes a moment).
const std::string& model_path() {
  static std::string path = [] {
    std::string p = join_path(test::temp_dir("spm"), "spiece.model");
    train_t5_sentencepiece(corpus(), 300, p);
    return p;
  }();
  return path;
}

std::vector<int64_t> concat(std::vector<std::vector<int64_t>> parts) {
  std::vector<int64_t> out;
  for (auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

}  // namespace

TEST(T5Tokenizer, SpecialTokenLayout) {
  T5Tokenizer tok = T5Tokenizer::load(model_path());
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(model_path()).ok());
  EXPECT_EQ(sp.IdToPiece(0), "<pad>");
  EXPECT_EQ(sp.IdToPiece(1), "</s>");
  EXPECT_EQ(sp.IdToPiece(2), "<unk>");
  EXPECT_EQ(sp.bos_id(), -1);
  EXPECT_TRUE(sp.IsUnknown(2));
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_EQ(tok.unk_id(), 2);
  EXPECT_EQ(tok.piece_count(), sp.GetPieceSize());
  EXPECT_GT(tok.piece_count(), 100);  // the corpus supports a real vocabulary
  EXPECT_LE(tok.piece_count(), 300);
  EXPECT_EQ(tok.vocab_size(), tok.piece_count() + 100);
  EXPECT_EQ(tok.extra_id(0), tok.piece_count() + 99);
  EXPECT_EQ(tok.extra_id(99), tok.piece_count());
  EXPECT_THROW(tok.extra_id(100), Error);

  T5Tokenizer tok7 = T5Tokenizer::load(model_path(), 7);
  EXPECT_EQ(tok7.vocab_size(), tok7.piece_count() + 7);
  EXPECT_EQ(tok7.encode("<extra_id_0>"), std::vector<int64_t>({tok7.piece_count() + 6, 1}));
}

TEST(T5Tokenizer, EosAppendedAndPlainTextMatchesSentencePiece) {
  // For ordinary text (single spaces, no special tokens) HF's pipeline gives what SentencePiece's own
  // Encode gives: that is an independent reference for the segmentation.
  T5Tokenizer tok = T5Tokenizer::load(model_path());
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(model_path()).ok());
  for (const std::string& s : {std::string("Sleeve Length: Long Sleeves"), std::string("What is the Colour of this kurta?"),
                               std::string("A Navy Blue jacket for men and women, 17 pieces."),
                               std::string("striped slim jeans")}) {
    SCOPED_TRACE(s);
    std::vector<int> ref = sp.EncodeAsIds(s);
    std::vector<int64_t> want(ref.begin(), ref.end());
    EXPECT_EQ(tok.encode(s, false), want);
    want.push_back(1);
    EXPECT_EQ(tok.encode(s), want);
    for (int64_t id : tok.encode(s, false)) {
      EXPECT_GE(id, 3);
      EXPECT_LT(id, tok.piece_count());
    }
  }
  EXPECT_EQ(tok.encode(""), std::vector<int64_t>({1}));
  EXPECT_TRUE(tok.encode("", false).empty());
  EXPECT_EQ(tok.encode("   \t\n"), std::vector<int64_t>({1}));
}

TEST(T5Tokenizer, PiecesCarryTheWordBoundaryMark) {
  T5Tokenizer tok = T5Tokenizer::load(model_path());
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(model_path()).ok());
  std::string joined;
  for (int64_t id : tok.encode("Long Sleeves", false)) joined += sp.IdToPiece(static_cast<int>(id));
  EXPECT_EQ(joined, "\xe2\x96\x81Long\xe2\x96\x81Sleeves");
}

TEST(T5Tokenizer, DecodeInvertsEncodeForNormalText) {
  T5Tokenizer tok = T5Tokenizer::load(model_path());
  for (const std::string& s : corpus()) {
    ASSERT_EQ(tok.decode(tok.encode(s)), s);
  }
  EXPECT_EQ(tok.decode(tok.encode("Sleeve Length: Long Sleeves")), "Sleeve Length: Long Sleeves");
}

TEST(T5Tokenizer, WhitespaceIsSplitAndCollapsed) {
  T5Tokenizer tok = T5Tokenizer::load(model_path());
  std::vector<int64_t> want = tok.encode("Long Sleeves");
  EXPECT_EQ(tok.encode("  Long   Sleeves \t\n"), want);
  EXPECT_EQ(tok.encode("Long\tSleeves"), want);
  EXPECT_EQ(tok.encode("Long\xc2\xa0Sleeves"), want);      // no-break space
  EXPECT_EQ(tok.encode("Long\xe3\x80\x80Sleeves"), want);  // ideographic space
}

TEST(T5Tokenizer, NfkcCharsmapIsApplied) {
  T5Tokenizer tok = T5Tokenizer::load(model_path());
  // Full-width letters and the "fi" ligature normalise to ASCII under nmt_nfkc.
  EXPECT_EQ(tok.encode("\xef\xbc\xac\xef\xbd\x8f\xef\xbd\x8e\xef\xbd\x87 Sleeves"), tok.encode("Long Sleeves"));
  EXPECT_EQ(tok.encode("\xef\xac\x81t"), tok.encode("fit"));
}

TEST(T5Tokenizer, ExtraIdsAndSpecialTokensInsideText) {
  T5Tokenizer tok = T5Tokenizer::load(model_path());
  const int64_t e0 = tok.extra_id(0), e1 = tok.extra_id(1), e42 = tok.extra_id(42);
  EXPECT_EQ(tok.encode("Long <extra_id_0> Sleeves"),
            concat({tok.encode("Long", false), {e0}, tok.encode("Sleeves", false), {1}}));
  // No space around: each side is still its own word and gets the "▁" prefix (HF's Metaspace "always").
  EXPECT_EQ(tok.encode("Long<extra_id_1>Sleeves"),
            concat({tok.encode("Long", false), {e1}, tok.encode("Sleeves", false), {1}}));
  EXPECT_EQ(tok.encode("<extra_id_42>"), std::vector<int64_t>({e42, 1}));
  EXPECT_EQ(tok.encode("a</s><pad><unk>", false), concat({tok.encode("a", false), {1, 0, 2}}));
  // Not special: out of range, leading zero, malformed. These are plain text (no extra ids in the output).
  for (const std::string& s : {std::string("<extra_id_100>"), std::string("<extra_id_05>"), std::string("<extra_id_>"),
                               std::string("<extra_id_3")}) {
    SCOPED_TRACE(s);
    for (int64_t id : tok.encode(s, false)) EXPECT_LT(id, tok.piece_count());
  }
}

TEST(T5Tokenizer, UnknownCharactersFuseIntoOneUnk) {
  T5Tokenizer tok = T5Tokenizer::load(model_path());
  std::vector<int64_t> ids = tok.encode("Long \xe2\x98\x83\xe2\x98\x83\xe2\x98\x83 Sleeves", false);  // snowmen
  int unks = 0;
  for (int64_t id : ids) unks += id == tok.unk_id();
  EXPECT_EQ(unks, 1);
}

TEST(T5Tokenizer, DecodeSkipsSpecialTokens) {
  T5Tokenizer tok = T5Tokenizer::load(model_path());
  std::vector<int64_t> ids = concat({{0}, tok.encode("Long", false), {tok.extra_id(0), 2},
                                     tok.encode("Sleeves", false), {1, 0, 0}});
  EXPECT_EQ(tok.decode(ids), "Long Sleeves");
  // Without skipping, every token goes through HF's Metaspace decoder: only the first token (here <pad>)
  // loses its leading "▁", so "▁Long" keeps its space.
  EXPECT_EQ(tok.decode(ids, false), "<pad> Long<extra_id_0><unk> Sleeves</s><pad><pad>");
  // Ids without a token are dropped, as HF does.
  EXPECT_EQ(tok.decode(concat({tok.encode("Long", false), {tok.vocab_size(), -1}})), "Long");
  EXPECT_EQ(tok.decode({}), "");
}

TEST(T5Tokenizer, TrainingIsDeterministic) {
  std::string d = test::temp_dir("spm_det");
  std::string a = join_path(d, "a.model"), b = join_path(d, "b.model");
  std::vector<std::string> c = corpus();
  c.resize(300);
  train_t5_sentencepiece(c, 120, a);
  train_t5_sentencepiece(c, 120, b);
  EXPECT_EQ(read_file(a), read_file(b));
}

TEST(T5Tokenizer, LoadErrorsNameThePath) {
  std::string d = test::temp_dir("spm_bad");
  try {
    T5Tokenizer::load(join_path(d, "missing.model"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.model"), std::string::npos) << e.what();
  }
  std::string junk = join_path(d, "junk.model");
  write_file_atomic(junk, std::string("this is not a sentencepiece model"));
  try {
    T5Tokenizer::load(junk);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("junk.model"), std::string::npos) << e.what();
  }
  EXPECT_THROW(train_t5_sentencepiece({}, 100, join_path(d, "x.model")), Error);
}
