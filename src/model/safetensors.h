// safetensors, implemented from the format's spec: 8-byte little-endian header length N, N bytes of
// JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the data.
// Files are memory-mapped; every inconsistency is an Error naming the file, tensor and byte offset.
// No libtorch here: the model loader turns views into tensors.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tailor {

enum class DType : uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };
size_t dtype_size(DType t);
const char* dtype_name(DType t);  // the spec's spelling: "F32", "BF16", ...
bool parse_dtype(const std::string& s, DType* out);

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // inside the mapping, valid while the file object lives
  size_t nbytes = 0;
  std::string file;     // which file it came from (for errors)
  uint64_t offset = 0;  // absolute byte offset of the data in that file
};

class SafetensorsFile {
 public:
  // Maps and validates the whole header: sizes, dtypes, shapes × dtype == byte ranges, ranges inside the
  // file and not overlapping.
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;  // owns the mapping
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  const std::string& path() const { return path_; }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint directory: model.safetensors, or shards listed in model.safetensors.index.json
// ({"weight_map": {tensor: shard file}}); also accepts a path to a single .safetensors file.
class Checkpoint {
 public:
  static Checkpoint open(const std::string& dir_or_file);
  bool has(const std::string& name) const { return index_.count(name) > 0; }
  const TensorView& get(const std::string& name) const;  // Error names the missing tensor
  std::vector<std::string> names() const;                  // sorted
  const std::string& where() const { return where_; }

 private:
  std::string where_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> index_;
};

struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;
};

// Writes one file atomically (temp + rename). Tensors are stored in the given order, 8-byte aligned header.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});
// Writes model.safetensors when everything fits in max_shard_bytes, else model-0000i-of-0000n.safetensors
// shards plus model.safetensors.index.json (HF's layout).
void write_safetensors_dir(const std::string& dir, const std::vector<TensorToWrite>& tensors,
                           uint64_t max_shard_bytes = 5ull << 30);

}  // namespace tailor
