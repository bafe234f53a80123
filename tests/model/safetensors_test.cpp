// tailor-test: base
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "model/safetensors.h"
#include "test_util.h"
#include "util/error.h"
#include "util/fs.h"

using namespace tailor;

namespace {

// Builds a safetensors file by hand, following the spec byte by byte (independent of the writer):
// u64 little-endian header length, header text, data bytes.
std::string assemble(const std::string& header, const std::string& data) {
  std::string out;
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return out + header + data;
}

std::string write_bytes(const std::string& dir, const std::string& name, const std::string& bytes) {
  std::string p = join_path(dir, name);
  write_file_atomic(p, bytes);
  return p;
}

// Opens `path`, expects an Error, and returns its message.
std::string open_error(const std::string& path) {
  try {
    SafetensorsFile::open(path);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for " << path;
  return "";
}

std::string checkpoint_error(const std::string& path) {
  try {
    Checkpoint::open(path);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for " << path;
  return "";
}

#define EXPECT_CONTAINS(hay, needle) \
  EXPECT_NE(std::string(hay).find(needle), std::string::npos) << "message: " << (hay) << "\nexpected: " << (needle)

std::vector<uint8_t> pattern_bytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed * 31 + i * 7 + (i >> 8));
  return v;
}

}  // namespace

TEST(Safetensors, HandAssembledFileFollowsTheSpec) {
  std::string dir = test::temp_dir("st_hand");
  // a: F32 [2] = {1.0, -2.0}; b: I16 [3] = {1, -1, 258}; header padded with spaces; keys unsorted.
  std::string data;
  const unsigned char a_bytes[] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0};
  const unsigned char b_bytes[] = {0x01, 0x00, 0xff, 0xff, 0x02, 0x01};
  data.append(reinterpret_cast<const char*>(a_bytes), 8);
  data.append(reinterpret_cast<const char*>(b_bytes), 6);
  std::string header =
      R"({"b":{"dtype":"I16","shape":[3],"data_offsets":[8,14]},)"
      R"("__metadata__":{"format":"pt","note":"hand"},)"
      R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}    )";
  std::string p = write_bytes(dir, "hand.safetensors", assemble(header, data));

  auto f = SafetensorsFile::open(p);
  ASSERT_EQ(f->tensors().size(), 2u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->metadata().at("note"), "hand");
  const TensorView& a = f->tensors().at("a");
  EXPECT_EQ(a.dtype, DType::F32);
  EXPECT_EQ(a.shape, std::vector<int64_t>({2}));
  EXPECT_EQ(a.nbytes, 8u);
  EXPECT_EQ(a.offset, 8 + header.size());
  float av[2];
  std::memcpy(av, a.data, 8);
  EXPECT_EQ(av[0], 1.0f);
  EXPECT_EQ(av[1], -2.0f);
  const TensorView& b = f->tensors().at("b");
  EXPECT_EQ(b.dtype, DType::I16);
  EXPECT_EQ(b.offset, 8 + header.size() + 8);
  int16_t bv[3];
  std::memcpy(bv, b.data, 6);
  EXPECT_EQ(bv[0], 1);
  EXPECT_EQ(bv[1], -1);
  EXPECT_EQ(bv[2], 258);
  EXPECT_EQ(b.file, p);
}

TEST(Safetensors, WriterOutputMatchesTheSpecByteLayout) {
  // Check the writer's bytes directly: size field, JSON header padded to 8, data in the given order.
  std::string dir = test::temp_dir("st_layout");
  std::vector<uint8_t> x = pattern_bytes(6, 1);  // U8 [2,3]
  std::vector<uint8_t> y = pattern_bytes(4, 2);  // F32 [1]
  std::string p = join_path(dir, "w.safetensors");
  write_safetensors(p, {{"x", DType::U8, {2, 3}, x.data(), x.size()}, {"y", DType::F32, {1}, y.data(), y.size()}});
  std::string bytes = read_file(p);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[i])) << (8 * i);
  EXPECT_EQ((8 + n) % 8, 0u);
  ASSERT_EQ(bytes.size(), 8 + n + 10);
  std::string header = bytes.substr(8, n);
  EXPECT_EQ(header[0], '{');
  EXPECT_NE(header.find(R"("x":{"dtype":"U8","shape":[2,3],"data_offsets":[0,6]})"), std::string::npos) << header;
  EXPECT_NE(header.find(R"("y":{"dtype":"F32","shape":[1],"data_offsets":[6,10]})"), std::string::npos) << header;
  EXPECT_NE(header.find(R"("__metadata__":{"format":"pt"})"), std::string::npos) << header;
  EXPECT_EQ(0, std::memcmp(bytes.data() + 8 + n, x.data(), 6));
  EXPECT_EQ(0, std::memcmp(bytes.data() + 8 + n + 6, y.data(), 4));
}

TEST(Safetensors, RoundTripAllDTypesScalarsEmptyAndMetadata) {
  std::string dir = test::temp_dir("st_round");
  const DType all[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64,
                       DType::I32, DType::I16, DType::I8,  DType::U8,   DType::BOOL};
  std::vector<std::vector<uint8_t>> store;
  std::vector<TensorToWrite> ts;
  int k = 0;
  for (DType d : all) {
    std::vector<int64_t> shape = {3, 5};
    store.push_back(pattern_bytes(15 * dtype_size(d), static_cast<uint8_t>(k)));
    if (d == DType::BOOL)
      for (uint8_t& b : store.back()) b &= 1;
    ts.push_back({std::string("t_") + dtype_name(d), d, shape, store.back().data(), store.back().size()});
    ++k;
  }
  store.push_back(pattern_bytes(4, 99));
  ts.push_back({"scalar", DType::F32, {}, store.back().data(), 4});
  ts.push_back({"empty", DType::F16, {0, 7}, nullptr, 0});
  std::string p = join_path(dir, "all.safetensors");
  write_safetensors(p, ts, {{"format", "pt"}, {"creator", "tailor"}});

  auto f = SafetensorsFile::open(p);
  EXPECT_EQ(f->metadata().size(), 2u);
  EXPECT_EQ(f->metadata().at("creator"), "tailor");
  ASSERT_EQ(f->tensors().size(), ts.size());
  for (const TensorToWrite& t : ts) {
    SCOPED_TRACE(t.name);
    const TensorView& v = f->tensors().at(t.name);
    EXPECT_EQ(v.dtype, t.dtype);
    EXPECT_EQ(v.shape, t.shape);
    ASSERT_EQ(v.nbytes, t.nbytes);
    if (t.nbytes) EXPECT_EQ(0, std::memcmp(v.data, t.data, t.nbytes));
  }
  for (DType d : all) {
    DType back;
    ASSERT_TRUE(parse_dtype(dtype_name(d), &back));
    EXPECT_EQ(back, d);
  }
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_size(DType::F64), 8u);
  EXPECT_EQ(dtype_size(DType::BOOL), 1u);

  // A direct file path works as a checkpoint too.
  Checkpoint c = Checkpoint::open(p);
  EXPECT_EQ(c.names().size(), ts.size());
  EXPECT_TRUE(c.has("t_BF16"));
}

TEST(Safetensors, ShardedDirectoryRoundTripAndIndex) {
  std::string dir = test::temp_dir("st_shard");
  std::vector<std::vector<uint8_t>> store;
  std::vector<TensorToWrite> ts;
  uint64_t total = 0;
  for (int i = 0; i < 7; ++i) {
    store.push_back(pattern_bytes(100 * 4, static_cast<uint8_t>(i)));
    ts.push_back({"layer." + std::to_string(i) + ".weight", DType::F32, {10, 10}, store.back().data(), 400});
    total += 400;
  }
  // 1000-byte shards: two 400-byte tensors per shard -> 4 shards.
  write_safetensors_dir(dir, ts, 1000);
  namespace fs = std::filesystem;
  EXPECT_FALSE(fs::exists(join_path(dir, "model.safetensors")));
  std::string idx = read_file(join_path(dir, "model.safetensors.index.json"));
  EXPECT_CONTAINS(idx, "\"total_size\": " + std::to_string(total));
  EXPECT_CONTAINS(idx, "\"layer.6.weight\": \"model-00004-of-00004.safetensors\"");
  EXPECT_TRUE(fs::exists(join_path(dir, "model-00001-of-00004.safetensors")));

  Checkpoint c = Checkpoint::open(dir);
  ASSERT_EQ(c.names().size(), 7u);
  for (size_t i = 0; i < ts.size(); ++i) {
    const TensorView& v = c.get(ts[i].name);
    EXPECT_EQ(v.shape, std::vector<int64_t>({10, 10}));
    EXPECT_EQ(0, std::memcmp(v.data, store[i].data(), 400));
  }
  EXPECT_CONTAINS(c.get("layer.3.weight").file, "model-00002-of-00004.safetensors");

  // Rewriting as one file removes the shards and the index.
  write_safetensors_dir(dir, ts);
  EXPECT_TRUE(fs::exists(join_path(dir, "model.safetensors")));
  EXPECT_FALSE(fs::exists(join_path(dir, "model.safetensors.index.json")));
  EXPECT_FALSE(fs::exists(join_path(dir, "model-00001-of-00004.safetensors")));
  Checkpoint c2 = Checkpoint::open(dir);
  EXPECT_EQ(c2.names().size(), 7u);
  EXPECT_EQ(0, std::memcmp(c2.get("layer.5.weight").data, store[5].data(), 400));

  try {
    c2.get("layer.9.weight");
    FAIL();
  } catch (const Error& e) {
    EXPECT_CONTAINS(e.what(), "layer.9.weight");
  }
}

// ---- corruption: one test per kind, each message must name the tensor or the byte offset ----

class SafetensorsCorrupt : public ::testing::Test {
 protected:
  std::string dir = test::temp_dir("st_bad");
  std::string file(const std::string& name, const std::string& header, const std::string& data) {
    return write_bytes(dir, name, assemble(header, data));
  }
};

TEST_F(SafetensorsCorrupt, FileShorterThanEightBytes) {
  std::string p = write_bytes(dir, "short.safetensors", std::string("\x05\0\0", 3));
  std::string m = open_error(p);
  EXPECT_CONTAINS(m, p);
  EXPECT_CONTAINS(m, "3 bytes");
}

TEST_F(SafetensorsCorrupt, HeaderSizeLargerThanFile) {
  std::string bytes = assemble(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", "x");
  bytes[0] = static_cast<char>(0xff);  // N = 255 + ..., far beyond the file
  bytes[1] = 0x10;
  std::string p = write_bytes(dir, "bigheader.safetensors", bytes);
  std::string m = open_error(p);
  EXPECT_CONTAINS(m, p);
  EXPECT_CONTAINS(m, "header size 4351");
}

TEST_F(SafetensorsCorrupt, HeaderNotJson) {
  std::string p = file("notjson.safetensors", R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},,})", "x");
  std::string m = open_error(p);
  EXPECT_CONTAINS(m, "not valid JSON");
  EXPECT_CONTAINS(m, "byte 61");  // 8 + 0-based index of the second comma in the header (53)
}

TEST_F(SafetensorsCorrupt, HeaderNotAnObject) {
  std::string p = file("array.safetensors", R"([1, 2, 3])", "");
  std::string m = open_error(p);
  EXPECT_CONTAINS(m, p);
  EXPECT_CONTAINS(m, "byte 8");
}

TEST_F(SafetensorsCorrupt, UnknownDType) {
  std::string p = file("dtype.safetensors", R"({"w.q":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}})", "x");
  std::string m = open_error(p);
  EXPECT_CONTAINS(m, "'w.q'");
  EXPECT_CONTAINS(m, "F8_E4M3");
}

TEST_F(SafetensorsCorrupt, ShapeNotNonNegativeInts) {
  for (const char* shape : {"[-1]", "[2.5]", "[\"3\"]", "3"}) {
    SCOPED_TRACE(shape);
    std::string p = file("shape.safetensors",
                         std::string(R"({"emb":{"dtype":"U8","shape":)") + shape + R"(,"data_offsets":[0,1]}})", "x");
    std::string m = open_error(p);
    EXPECT_CONTAINS(m, "'emb'");
    EXPECT_CONTAINS(m, "shape");
  }
}

TEST_F(SafetensorsCorrupt, OffsetsOutsideDataArea) {
  std::string header = R"({"bias":{"dtype":"U8","shape":[4],"data_offsets":[10,14]}})";
  std::string p = file("outside.safetensors", header, "abcd");
  std::string m = open_error(p);
  EXPECT_CONTAINS(m, "'bias'");
  EXPECT_CONTAINS(m, "byte " + std::to_string(8 + header.size() + 14));  // absolute end offset
}

TEST_F(SafetensorsCorrupt, EndBeforeBegin) {
  std::string p = file("order.safetensors", R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[3,1]}})", "abcd");
  std::string m = open_error(p);
  EXPECT_CONTAINS(m, "'w'");
  EXPECT_CONTAINS(m, "[3, 1]");
}

TEST_F(SafetensorsCorrupt, ShapeTimesDTypeDisagreesWithRange) {
  std::string p = file("size.safetensors", R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})",
                       std::string(12, 'x'));
  std::string m = open_error(p);
  EXPECT_CONTAINS(m, "'w'");
  EXPECT_CONTAINS(m, "needs 16 bytes");
}

TEST_F(SafetensorsCorrupt, OverlappingRanges) {
  std::string p = file("overlap.safetensors",
                       R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                       R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
                       "abcdef");
  std::string m = open_error(p);
  EXPECT_CONTAINS(m, "'a'");
  EXPECT_CONTAINS(m, "'b'");
  EXPECT_CONTAINS(m, "overlaps");
}

TEST_F(SafetensorsCorrupt, TruncatedFile) {
  std::vector<uint8_t> a = pattern_bytes(64, 3), b = pattern_bytes(64, 4);
  std::string p = join_path(dir, "trunc.safetensors");
  write_safetensors(p, {{"a", DType::F32, {16}, a.data(), 64}, {"b", DType::F32, {16}, b.data(), 64}});
  std::string bytes = read_file(p);
  uint64_t full = bytes.size();
  write_bytes(dir, "trunc.safetensors", bytes.substr(0, full - 10));
  std::string m = open_error(p);
  EXPECT_CONTAINS(m, "'b'");
  EXPECT_CONTAINS(m, "byte " + std::to_string(full));
  EXPECT_CONTAINS(m, "truncated");
}

TEST_F(SafetensorsCorrupt, ShardedIndexErrors) {
  namespace fs = std::filesystem;
  std::vector<uint8_t> a = pattern_bytes(8, 5);
  std::string d1 = join_path(dir, "missing_shard");
  make_dirs(d1);
  write_safetensors(join_path(d1, "model-00001-of-00002.safetensors"), {{"a", DType::F32, {2}, a.data(), 8}});
  write_file_atomic(join_path(d1, "model.safetensors.index.json"),
                    std::string(R"({"metadata":{"total_size":16},"weight_map":{)"
                                R"("a":"model-00001-of-00002.safetensors","z.w":"model-00002-of-00002.safetensors"}})"));
  std::string m = checkpoint_error(d1);
  EXPECT_CONTAINS(m, "'z.w'");
  EXPECT_CONTAINS(m, "model-00002-of-00002.safetensors does not exist");

  std::string d2 = join_path(dir, "wrong_shard");
  make_dirs(d2);
  write_safetensors(join_path(d2, "s1.safetensors"), {{"a", DType::F32, {2}, a.data(), 8}});
  write_file_atomic(join_path(d2, "model.safetensors.index.json"),
                    std::string(R"({"weight_map":{"a":"s1.safetensors","b":"s1.safetensors"}})"));
  m = checkpoint_error(d2);
  EXPECT_CONTAINS(m, "'b'");
  EXPECT_CONTAINS(m, "does not contain it");

  std::string d3 = join_path(dir, "unlisted");
  make_dirs(d3);
  write_safetensors(join_path(d3, "s1.safetensors"),
                    {{"a", DType::F32, {2}, a.data(), 8}, {"extra", DType::U8, {8}, a.data(), 8}});
  write_file_atomic(join_path(d3, "model.safetensors.index.json"), std::string(R"({"weight_map":{"a":"s1.safetensors"}})"));
  m = checkpoint_error(d3);
  EXPECT_CONTAINS(m, "'extra'");

  std::string d4 = join_path(dir, "empty_dir");
  make_dirs(d4);
  m = checkpoint_error(d4);
  EXPECT_CONTAINS(m, "model.safetensors");
  EXPECT_CONTAINS(m, d4);
}

TEST_F(SafetensorsCorrupt, WriterRejectsWrongByteCount) {
  std::vector<uint8_t> a(10);
  try {
    write_safetensors(join_path(dir, "w.safetensors"), {{"w", DType::F32, {3}, a.data(), 10}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_CONTAINS(e.what(), "'w'");
  }
  EXPECT_FALSE(std::filesystem::exists(join_path(dir, "w.safetensors")));
}
