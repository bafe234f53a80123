// safetensors reader and writer, written from the format's spec
// (https://github.com/huggingface/safetensors, "Format"):
//   bytes [0, 8)        u64 little-endian N = header size
//   bytes [8, 8 + N)    UTF-8 JSON object {name: {"dtype", "shape", "data_offsets": [begin, end]}, ...,
//                       optional "__metadata__": {str: str}}, may be padded with trailing spaces
//   bytes [8 + N, ...)  the data area; data_offsets are relative to its start
#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "util/error.h"
#include "util/fs.h"

namespace tailor {

namespace {

// The reference implementation refuses headers above 100 MB; a larger one is corruption, not a model.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8}, {DType::I32, "I32", 4}, {DType::I16, "I16", 2}, {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},   {DType::BOOL, "BOOL", 1},
};

std::string ticked(const std::string& s) { return "'" + s + "'"; }

// Element count × element size with overflow detection; false when it does not fit in 64 bits.
bool byte_size_of(const std::vector<int64_t>& shape, size_t elem_size, uint64_t* out) {
  uint64_t n = elem_size;
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  }
  *out = n;
  return true;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A JSON number that is a non-negative integer (not 2.0, not -1, not "3").
bool json_to_u64(const nlohmann::json& j, uint64_t* out) {
  if (j.is_number_unsigned()) {
    *out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer() && j.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(j.get<int64_t>());
    return true;
  }
  return false;
}

}  // namespace

size_t dtype_size(DType t) {
  for (const DTypeInfo& d : kDTypes)
    if (d.dtype == t) return d.size;
  throw Error("unknown dtype enum value " + std::to_string(static_cast<int>(t)));
}

const char* dtype_name(DType t) {
  for (const DTypeInfo& d : kDTypes)
    if (d.dtype == t) return d.name;
  return "?";
}

bool parse_dtype(const std::string& s, DType* out) {
  for (const DTypeInfo& d : kDTypes) {
    if (s == d.name) {
      *out = d.dtype;
      return true;
    }
  }
  return false;
}

// ---- reading ---------------------------------------------------------------------------------

// Long (~130 lines) on purpose: the format's checks in the order of the file's bytes (size, header
// length, header JSON, each entry's dtype, shape and offsets, coverage of the data), each with its own
// error; read top to bottom beside the spec.
std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;

  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open " + path + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    std::string e = std::strerror(errno);
    ::close(fd);
    throw Error("cannot stat " + path + ": " + e);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path + ": not a regular file");
  }
  uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    throw Error(path + ": file is " + std::to_string(file_size) +
                " bytes, shorter than the 8-byte safetensors header size field");
  }
  void* map = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  std::string map_err = std::strerror(errno);
  ::close(fd);  // the mapping stays valid without the descriptor
  if (map == MAP_FAILED) throw Error("cannot mmap " + path + ": " + map_err);
  f->map_ = map;
  f->map_size_ = file_size;
  const uint8_t* base = static_cast<const uint8_t*>(map);

  uint64_t header_size = 0;
  for (int i = 0; i < 8; ++i) header_size |= static_cast<uint64_t>(base[i]) << (8 * i);
  if (header_size > file_size - 8)
    throw Error(path + ": header size " + std::to_string(header_size) + " (bytes 0..8) is larger than the " +
                std::to_string(file_size - 8) + " bytes that follow it in the file (truncated or not safetensors)");
  if (header_size > kMaxHeaderBytes)
    throw Error(path + ": header size " + std::to_string(header_size) + " exceeds the 100 MB limit");
  if (header_size == 0 || base[8] != '{')
    throw Error(path + ": header at byte 8 does not start with '{' (not a safetensors file)");

  const char* header_begin = reinterpret_cast<const char*>(base + 8);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_begin, header_begin + header_size);
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte counts from 1 within the header text.
    uint64_t at = 8 + (e.byte > 0 ? e.byte - 1 : 0);
    throw Error(path + ": header is not valid JSON (error near byte " + std::to_string(at) +
                " of the file): " + e.what());
  } catch (const nlohmann::json::exception& e) {  // e.g. a number out of range (1e999)
    throw Error(path + ": header is not valid JSON: " + e.what());
  }
  if (!header.is_object()) throw Error(path + ": header JSON (byte 8) is not an object");

  const uint64_t data_start = 8 + header_size;
  const uint64_t data_size = file_size - data_start;

  struct Range {
    uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Range> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) throw Error(path + ": __metadata__ is not an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          throw Error(path + ": __metadata__ entry " + ticked(m.key()) + " is not a string");
        f->metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    std::string where = path + ": tensor " + ticked(name);
    if (!v.is_object()) throw Error(where + ": entry is not an object");
    if (!v.contains("dtype") || !v["dtype"].is_string()) throw Error(where + ": missing or non-string \"dtype\"");
    if (!v.contains("shape") || !v["shape"].is_array()) throw Error(where + ": missing \"shape\" list");
    if (!v.contains("data_offsets")) throw Error(where + ": missing \"data_offsets\"");

    TensorView t;
    t.name = name;
    t.file = path;
    std::string dtype_text = v["dtype"].get<std::string>();
    if (!parse_dtype(dtype_text, &t.dtype))
      throw Error(where + ": unsupported dtype " + ticked(dtype_text) +
                  " (known: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)");
    for (const nlohmann::json& d : v["shape"]) {
      uint64_t dim = 0;
      if (!json_to_u64(d, &dim) || dim > static_cast<uint64_t>(INT64_MAX))
        throw Error(where + ": shape " + v["shape"].dump() + " is not a list of non-negative integers");
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    const nlohmann::json& off = v["data_offsets"];
    uint64_t begin = 0, end = 0;
    if (!off.is_array() || off.size() != 2 || !json_to_u64(off[0], &begin) || !json_to_u64(off[1], &end))
      throw Error(where + ": data_offsets " + off.dump() + " is not [begin, end] of non-negative integers");
    if (end < begin)
      throw Error(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                  "] end before begin");
    uint64_t expected = 0;
    if (!byte_size_of(t.shape, dtype_size(t.dtype), &expected))
      throw Error(where + ": shape " + shape_text(t.shape) + " overflows 64-bit byte size");
    if (expected != end - begin)
      throw Error(where + ": shape " + shape_text(t.shape) + " x " + dtype_text + " needs " +
                  std::to_string(expected) + " bytes but data_offsets [" + std::to_string(begin) + ", " +
                  std::to_string(end) + "] hold " + std::to_string(end - begin));
    if (end > data_size)
      throw Error(where + ": data ends at byte " + std::to_string(data_start + end) + " of the file (data_offsets [" +
                  std::to_string(begin) + ", " + std::to_string(end) + "]) but the file has only " +
                  std::to_string(file_size) + " bytes (truncated file or offsets outside the data area)");
    t.offset = data_start + begin;
    t.data = base + t.offset;
    t.nbytes = static_cast<size_t>(end - begin);
    auto ins = f->tensors_.emplace(name, std::move(t));
    ranges.push_back({begin, end, &ins.first->first});
  }

  // No two tensors may share bytes (zero-byte tensors occupy nothing).
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const Range* prev = nullptr;
  for (const Range& r : ranges) {
    if (r.begin == r.end) continue;
    if (prev && r.begin < prev->end)
      throw Error(path + ": tensor " + ticked(*r.name) + " (data bytes " + std::to_string(data_start + r.begin) +
                  ".." + std::to_string(data_start + r.end) + ") overlaps tensor " + ticked(*prev->name) +
                  " (bytes " + std::to_string(data_start + prev->begin) + ".." +
                  std::to_string(data_start + prev->end) + ")");
    prev = &r;
  }
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

// ---- checkpoints (single file or sharded directory) ------------------------------------------

Checkpoint Checkpoint::open(const std::string& dir_or_file) {
  namespace fs = std::filesystem;
  Checkpoint c;
  c.where_ = dir_or_file;
  std::error_code ec;
  if (!fs::exists(dir_or_file, ec)) throw Error("checkpoint " + dir_or_file + " does not exist");

  if (!fs::is_directory(dir_or_file, ec)) {
    std::shared_ptr<SafetensorsFile> f = SafetensorsFile::open(dir_or_file);
    for (const auto& kv : f->tensors()) c.index_[kv.first] = &kv.second;
    c.files_.push_back(std::move(f));
    return c;
  }

  // Like HF: a single model.safetensors wins over an index.
  std::string single = join_path(dir_or_file, "model.safetensors");
  std::string index_path = join_path(dir_or_file, "model.safetensors.index.json");
  if (fs::exists(single, ec)) {
    std::shared_ptr<SafetensorsFile> f = SafetensorsFile::open(single);
    for (const auto& kv : f->tensors()) c.index_[kv.first] = &kv.second;
    c.files_.push_back(std::move(f));
    return c;
  }
  if (!fs::exists(index_path, ec)) {
    for (const char* pickle : {"pytorch_model.bin", "pytorch_model.bin.index.json"})
      if (fs::exists(join_path(dir_or_file, pickle), ec))
        throw Error("checkpoint directory " + dir_or_file + " has only PyTorch pickle weights (" + pickle +
                    "); tailor reads safetensors only (unpickling can run code). Convert it once with transformers: "
                    "python3 -c \"from transformers import Blip2ForConditionalGeneration as M; "
                    "M.from_pretrained('" + dir_or_file + "').save_pretrained('" + dir_or_file + "-safetensors')\"");
    throw Error("checkpoint directory " + dir_or_file +
                " has neither model.safetensors nor model.safetensors.index.json");
  }

  nlohmann::json index;
  try {
    index = nlohmann::json::parse(read_file(index_path));
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(index_path + ": not valid JSON (byte " + std::to_string(e.byte) + "): " + e.what());
  } catch (const nlohmann::json::exception& e) {
    throw Error(index_path + ": not valid JSON: " + e.what());
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    throw Error(index_path + ": missing \"weight_map\" object");

  std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;  // shard file name -> opened file
  std::map<std::string, std::set<std::string>> listed;             // shard file name -> tensors mapped to it
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
    const std::string& tensor = it.key();
    if (!it.value().is_string())
      throw Error(index_path + ": weight_map entry for tensor " + ticked(tensor) + " is not a file name");
    std::string shard = it.value().get<std::string>();
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..")
      throw Error(index_path + ": tensor " + ticked(tensor) + " maps to invalid shard name " + ticked(shard));
    if (!shards.count(shard)) {
      std::string shard_path = join_path(dir_or_file, shard);
      if (!fs::exists(shard_path, ec))
        throw Error(index_path + ": tensor " + ticked(tensor) + " is in shard " + shard + ", but " + shard_path +
                    " does not exist");
      shards[shard] = SafetensorsFile::open(shard_path);
      c.files_.push_back(shards[shard]);
    }
    const SafetensorsFile& f = *shards[shard];
    auto t = f.tensors().find(tensor);
    if (t == f.tensors().end())
      throw Error(index_path + ": tensor " + ticked(tensor) + " is mapped to shard " + shard +
                  ", which does not contain it");
    c.index_[tensor] = &t->second;
    listed[shard].insert(tensor);
  }
  // A tensor present in a shard but absent from the index would be silently ignored: refuse it.
  for (const auto& kv : shards) {
    for (const auto& t : kv.second->tensors()) {
      if (!listed[kv.first].count(t.first))
        throw Error(index_path + ": shard " + kv.first + " holds tensor " + ticked(t.first) +
                    " that weight_map does not map to it");
    }
  }
  return c;
}

const TensorView& Checkpoint::get(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error("checkpoint " + where_ + " has no tensor " + ticked(name));
  return *it->second;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& kv : index_) out.push_back(kv.first);
  return out;  // std::map keeps them sorted
}

// ---- writing ---------------------------------------------------------------------------------

namespace {

// Checks one tensor to write; returns its byte size.
uint64_t checked_size(const std::string& path, const TensorToWrite& t) {
  if (t.name.empty() || t.name == "__metadata__")
    throw Error("cannot write " + path + ": invalid tensor name " + ticked(t.name));
  uint64_t expected = 0;
  if (!byte_size_of(t.shape, dtype_size(t.dtype), &expected))
    throw Error("cannot write " + path + ": tensor " + ticked(t.name) + " has invalid shape " + shape_text(t.shape));
  if (expected != t.nbytes)
    throw Error("cannot write " + path + ": tensor " + ticked(t.name) + " shape " + shape_text(t.shape) + " x " +
                dtype_name(t.dtype) + " needs " + std::to_string(expected) + " bytes, got " +
                std::to_string(t.nbytes));
  if (t.nbytes > 0 && !t.data)
    throw Error("cannot write " + path + ": tensor " + ticked(t.name) + " has no data");
  return expected;
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the tensors in the caller's order, which is also the order of their bytes.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& kv : metadata) m[kv.first] = kv.second;
    header["__metadata__"] = m;
  }
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    uint64_t n = checked_size(path, t);
    if (!seen.insert(t.name).second) throw Error("cannot write " + path + ": duplicate tensor " + ticked(t.name));
    nlohmann::ordered_json e = nlohmann::ordered_json::object();
    e["dtype"] = dtype_name(t.dtype);
    e["shape"] = t.shape;
    e["data_offsets"] = {offset, offset + n};
    header[t.name] = e;
    offset += n;
  }
  std::string json = header.dump();
  // Pad with spaces so the data area starts 8-byte aligned (8 + N is a multiple of 8).
  while (json.size() % 8 != 0) json.push_back(' ');
  uint8_t size_field[8];
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) size_field[i] = static_cast<uint8_t>(n >> (8 * i));

  std::vector<ByteSpan> parts;
  parts.push_back({size_field, 8});
  parts.push_back({json.data(), json.size()});
  for (const TensorToWrite& t : tensors)
    if (t.nbytes > 0) parts.push_back({t.data, t.nbytes});
  write_file_atomic_parts(path, parts);
}

void write_safetensors_dir(const std::string& dir, const std::vector<TensorToWrite>& tensors,
                           uint64_t max_shard_bytes) {
  namespace fs = std::filesystem;
  make_dirs(dir);
  uint64_t total = 0;
  for (const TensorToWrite& t : tensors) total += checked_size(dir, t);

  const std::regex shard_re("model-[0-9]{5}-of-[0-9]{5}\\.safetensors");
  auto remove_stale_shards = [&](const std::set<std::string>& keep) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      std::string fname = e.path().filename().string();
      if (std::regex_match(fname, shard_re) && !keep.count(fname)) fs::remove(e.path(), ec);
    }
  };
  std::string single = join_path(dir, "model.safetensors");
  std::string index_path = join_path(dir, "model.safetensors.index.json");

  if (total <= max_shard_bytes) {
    write_safetensors(single, tensors);
    // The single file is read first, so removing older shard files afterwards is safe.
    std::error_code ec;
    fs::remove(index_path, ec);
    remove_stale_shards({});
    return;
  }

  // Greedy shards in the given order; a tensor larger than the limit gets a shard of its own (as HF).
  std::vector<std::vector<const TensorToWrite*>> groups(1);
  uint64_t in_group = 0;
  for (const TensorToWrite& t : tensors) {
    if (!groups.back().empty() && in_group + t.nbytes > max_shard_bytes) {
      groups.emplace_back();
      in_group = 0;
    }
    groups.back().push_back(&t);
    in_group += t.nbytes;
  }
  // An older single file would shadow the shards: remove it before writing them.
  std::error_code ec;
  fs::remove(single, ec);

  nlohmann::json weight_map = nlohmann::json::object();
  std::set<std::string> written;
  char name[64];
  for (size_t i = 0; i < groups.size(); ++i) {
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, groups.size());
    std::vector<TensorToWrite> part;
    for (const TensorToWrite* t : groups[i]) {
      part.push_back(*t);
      weight_map[t->name] = name;
    }
    write_safetensors(join_path(dir, name), part);
    written.insert(name);
  }
  nlohmann::json index;
  index["metadata"] = {{"total_size", total}};
  index["weight_map"] = weight_map;
  write_file_atomic(index_path, index.dump(2) + "\n");
  remove_stale_shards(written);
}

}  // namespace tailor
