#pragma once
// Reader of safetensors files and sharded sets:
//
//   u64 N (little-endian), then N bytes of JSON: {"<tensor>": {"dtype": "BF16", "shape": [rows, cols],
//   "data_offsets": [begin, end]}, ..., "__metadata__": {...}}, then the data; offsets count from
//   the first byte after the JSON. Shapes are row-major (the last dimension varies fastest).
//   A sharded model has model.safetensors.index.json: {"weight_map": {"<tensor>": "<shard file>"}}.
//
// The file is untrusted: the header length must fit the file (and the format's 100 MB limit), the
// JSON is parsed with a depth limit, every tensor's extent must lie inside the data and equal its
// element count times the dtype's size (overflow-checked), extents must not overlap, shard names
// must be plain file names in the index's directory. Violations are one FileFormatError line
// naming the file, the tensor and the problem. Tensor data is memory-mapped.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "wafermesh/io/mapped_file.hpp"
#include "wafermesh/io/tensor_codecs.hpp"

namespace wm::io {

struct SafeTensor {
  std::string name;
  std::string dtype_name;        // as written: "F32", "BF16", "U8", "I64", ...
  std::optional<DType> dtype;    // F32, F16, BF16, U8; nothing for the others
  std::vector<std::int64_t> shape;
  std::int64_t elements = 0;
  std::int64_t bytes = 0;
  const std::uint8_t* data = nullptr;
  std::string file;              // the file it lives in
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  const std::string& path() const { return file_->path(); }
  const std::vector<SafeTensor>& tensors() const { return tensors_; }
  const SafeTensor* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::shared_ptr<MappedFile> file_;
  std::vector<SafeTensor> tensors_;
  std::map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// One model's tensors: a single model.safetensors, or the shards a model.safetensors.index.json
// names (each opened once). Tensor names must be unique across shards and each must be in the
// shard the index says.
class SafetensorsSet {
 public:
  // `path` is a .safetensors file or an index .json file.
  explicit SafetensorsSet(const std::string& path);
  const SafeTensor* find(const std::string& name) const;
  const std::string& path() const { return path_; }
  std::vector<const SafeTensor*> all() const;

 private:
  std::string path_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafeTensor*> index_;
};

}  // namespace wm::io
