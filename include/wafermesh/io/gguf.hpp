#pragma once
// Reader of GGUF files (the llama.cpp / ggml model format; versions 2 and 3, little-endian):
//
//   magic "GGUF", u32 version, u64 tensor_count, u64 kv_count
//   kv_count x   key: string, u32 value type, value
//   tensor_count x   name: string, u32 n_dims (1..4), u64 ne[n_dims] (ne[0] varies fastest),
//                    u32 ggml type, u64 offset (from the data section, a multiple of the alignment)
//   padding to general.alignment (u32 key, default 32), then the data section to the end
//   string = u64 length + bytes (no terminator); array = u32 element type + u64 count + elements
//   value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool, 8 string, 9 array,
//                10 u64, 11 i64, 12 f64
//
// A matrix W (out, in), y = W x, is stored with ne = [in, out]: row r of W is elements
// [r * in, (r + 1) * in).
//
// The file is untrusted. Every count and length is checked against the bytes left before anything
// is allocated for it, every size product is overflow-checked, every tensor must lie inside the
// data section at an aligned offset, keys and tensor names must be unique. A violation is one
// FileFormatError line naming the file, the key or tensor, and the problem, e.g.
//   model.gguf: truncated: tensor info 12 of 291 needs 8 bytes at offset 9824, the file has 9830
//   model.gguf: key tokenizer.ggml.tokens: array of 4294967296 strings needs at least 34359738368 bytes, 1200 are left
// Tensor data is memory-mapped, not copied.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "wafermesh/io/mapped_file.hpp"
#include "wafermesh/io/tensor_codecs.hpp"

namespace wm::io {

enum class GgufValueType : std::uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8, array = 9,
  u64 = 10, i64 = 11, f64 = 12,
};
const char* gguf_value_type_name(GgufValueType t);

// One metadata value. Scalars: the integer types in `integer` (u64 values above INT64_MAX are
// rejected at parse time), floats in `real`, bool in `integer` (0/1), strings in `text`.
// Arrays of scalars: `numbers` (integers exactly representable up to 2^53 are exact); arrays of
// strings: `strings`. Arrays of arrays are parsed and skipped (`nested` = true, contents empty).
struct GgufValue {
  GgufValueType type = GgufValueType::u8;
  GgufValueType elem_type = GgufValueType::u8;  // arrays
  std::int64_t integer = 0;
  double real = 0.0;
  std::string text;
  std::vector<double> numbers;
  std::vector<std::string> strings;
  bool nested = false;
  std::int64_t count = 0;  // arrays: element count

  bool is_integer() const;  // u8..i64 (not bool)
  bool is_float() const { return type == GgufValueType::f32 || type == GgufValueType::f64; }
  bool is_array() const { return type == GgufValueType::array; }
};

struct GgufTensor {
  std::string name;
  std::uint32_t ggml_type = 0;
  std::optional<DType> dtype;        // nothing for ggml types this project does not decode
  std::vector<std::int64_t> ne;      // ne[0] varies fastest
  std::int64_t elements = 0;
  std::int64_t offset = 0;           // from the start of the data section
  std::int64_t bytes = -1;           // -1 when the type is not decoded (size not known)
  const std::uint8_t* data = nullptr;
};

// The name of a ggml type id ("Q4_K", "TQ2_0", "I2_S", ...), or "type <id>" when unknown.
std::string ggml_type_name(std::uint32_t type);
// ggml ids of the decoded types: F32 0, F16 1, BF16 30, TQ1_0 34, TQ2_0 35, I2_S 36 (bitnet.cpp).
std::optional<DType> dtype_of_ggml_type(std::uint32_t type);

class GgufFile {
 public:
  // Maps and parses the whole header. Throws FileFormatError as described above.
  explicit GgufFile(const std::string& path);

  const std::string& path() const { return file_->path(); }
  std::uint32_t version() const { return version_; }
  std::int64_t alignment() const { return alignment_; }
  std::int64_t data_offset() const { return data_offset_; }
  std::int64_t file_size() const { return file_->size(); }

  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find_tensor(const std::string& name) const;

  // Typed look-ups; each throws FileFormatError "<path>: key <key>: ..." when the key is present
  // with the wrong type or out of range, and returns nothing when it is absent.
  std::optional<std::string> get_string(const std::string& key) const;
  std::optional<std::int64_t> get_int(const std::string& key) const;  // any integer type
  std::optional<double> get_real(const std::string& key) const;       // any float or integer type
  std::optional<bool> get_bool(const std::string& key) const;

 private:
  std::shared_ptr<MappedFile> file_;
  std::uint32_t version_ = 0;
  std::int64_t alignment_ = 32;
  std::int64_t data_offset_ = 0;
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, std::size_t> tensor_index_;
};

// True when the file at `path` begins with the GGUF magic (false when it cannot be read).
bool is_gguf_file(const std::string& path);

}  // namespace wm::io
