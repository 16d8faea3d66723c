#include "wafermesh/io/gguf.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "wafermesh/io/checked.hpp"
#include "wafermesh/io/format_error.hpp"

namespace wm::io {

namespace {

constexpr int kMaxDims = 4;                          // GGML_MAX_DIMS
constexpr std::int64_t kMaxStoredArray = 1 << 24;     // longer arrays are checked and skipped, not stored
constexpr std::int64_t kMaxAlignment = 1 << 20;

std::int64_t scalar_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::u8:
    case GgufValueType::i8:
    case GgufValueType::boolean: return 1;
    case GgufValueType::u16:
    case GgufValueType::i16: return 2;
    case GgufValueType::u32:
    case GgufValueType::i32:
    case GgufValueType::f32: return 4;
    case GgufValueType::u64:
    case GgufValueType::i64:
    case GgufValueType::f64: return 8;
    case GgufValueType::string: return 8;  // at least its length field
    case GgufValueType::array: return 12;  // at least its type and count
  }
  return 1;
}

bool known_value_type(std::uint32_t t) { return t <= 12; }

class Cursor {
 public:
  Cursor(const MappedFile& f) : p_(f.data()), size_(f.size()), path_(f.path()) {}

  [[noreturn]] void fail(const std::string& why) const { throw FileFormatError(path_ + ": " + why); }
  std::int64_t at() const { return at_; }
  std::int64_t left() const { return size_ - at_; }

  void need(std::int64_t n, const std::string& what) const {
    if (n > left())
      fail("truncated: " + what + " needs " + std::to_string(n) + " bytes at offset " + std::to_string(at_) +
           ", the file has " + std::to_string(size_));
  }
  template <typename T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + at_, sizeof(T));
    at_ += sizeof(T);
    return v;
  }
  std::string string(const std::string& what) {
    const std::uint64_t len = read<std::uint64_t>(what + " (string length)");
    const auto n = as_int64(len);
    if (!n || *n > left())
      fail("truncated: " + what + " is a string of " + std::to_string(len) + " bytes at offset " +
           std::to_string(at_) + ", only " + std::to_string(left()) + " bytes are left");
    std::string s(reinterpret_cast<const char*>(p_ + at_), static_cast<std::size_t>(*n));
    at_ += *n;
    return s;
  }
  void skip(std::int64_t n) { at_ += n; }

 private:
  const std::uint8_t* p_;
  std::int64_t size_;
  std::int64_t at_ = 0;
  const std::string& path_;
};

// Reads one scalar of type t into v (integer/real/text).
void read_scalar(Cursor& c, GgufValueType t, GgufValue& v, const std::string& what) {
  switch (t) {
    case GgufValueType::u8: v.integer = c.read<std::uint8_t>(what); break;
    case GgufValueType::i8: v.integer = c.read<std::int8_t>(what); break;
    case GgufValueType::u16: v.integer = c.read<std::uint16_t>(what); break;
    case GgufValueType::i16: v.integer = c.read<std::int16_t>(what); break;
    case GgufValueType::u32: v.integer = c.read<std::uint32_t>(what); break;
    case GgufValueType::i32: v.integer = c.read<std::int32_t>(what); break;
    case GgufValueType::f32: v.real = c.read<float>(what); break;
    case GgufValueType::boolean: {
      const std::uint8_t b = c.read<std::uint8_t>(what);
      if (b > 1) c.fail(what + ": bool value " + std::to_string(b) + " is neither 0 nor 1");
      v.integer = b;
      break;
    }
    case GgufValueType::string: v.text = c.string(what); break;
    case GgufValueType::u64: {
      const std::uint64_t u = c.read<std::uint64_t>(what);
      const auto i = as_int64(u);
      if (!i) c.fail(what + ": u64 value " + std::to_string(u) + " exceeds 2^63 - 1");
      v.integer = *i;
      break;
    }
    case GgufValueType::i64: v.integer = c.read<std::int64_t>(what); break;
    case GgufValueType::f64: v.real = c.read<double>(what); break;
    case GgufValueType::array: break;
  }
}

void read_value(Cursor& c, GgufValueType t, GgufValue& v, const std::string& what, int depth) {
  v.type = t;
  if (t != GgufValueType::array) {
    read_scalar(c, t, v, what);
    return;
  }
  const std::uint32_t et = c.read<std::uint32_t>(what + " (array element type)");
  if (!known_value_type(et)) c.fail(what + ": unknown array element type " + std::to_string(et));
  v.elem_type = static_cast<GgufValueType>(et);
  const std::uint64_t count_u = c.read<std::uint64_t>(what + " (array length)");
  const auto count = as_int64(count_u);
  const std::int64_t esize = scalar_size(v.elem_type);
  const auto min_bytes = count ? checked_mul(*count, esize) : std::nullopt;
  if (!min_bytes || *min_bytes > c.left())
    c.fail(what + ": array of " + std::to_string(count_u) + " " + gguf_value_type_name(v.elem_type) +
           " needs at least " + (min_bytes ? std::to_string(*min_bytes) : std::string("more than 2^63")) +
           " bytes, " + std::to_string(c.left()) + " are left");
  v.count = *count;
  if (v.elem_type == GgufValueType::array) {
    if (depth >= 2) c.fail(what + ": arrays nested more than two deep");
    v.nested = true;
    for (std::int64_t i = 0; i < *count; ++i) {
      GgufValue inner;  // each inner array carries its own element type and count
      read_value(c, GgufValueType::array, inner, what + "[" + std::to_string(i) + "]", depth + 1);
    }
    return;
  }
  const bool store = *count <= kMaxStoredArray;
  if (v.elem_type == GgufValueType::string) {
    if (store) v.strings.reserve(static_cast<std::size_t>(std::min<std::int64_t>(*count, 1 << 20)));
    for (std::int64_t i = 0; i < *count; ++i) {
      std::string s = c.string(what + "[" + std::to_string(i) + "]");
      if (store) v.strings.push_back(std::move(s));
    }
    return;
  }
  if (!store) {  // checked above: the bytes are there
    c.skip(*min_bytes);
    return;
  }
  v.numbers.resize(static_cast<std::size_t>(*count));
  GgufValue e;
  for (std::int64_t i = 0; i < *count; ++i) {
    read_scalar(c, v.elem_type, e, what);
    v.numbers[static_cast<std::size_t>(i)] =
        (v.elem_type == GgufValueType::f32 || v.elem_type == GgufValueType::f64) ? e.real : double(e.integer);
  }
}

}  // namespace

const char* gguf_value_type_name(GgufValueType t) {
  switch (t) {
    case GgufValueType::u8: return "u8";
    case GgufValueType::i8: return "i8";
    case GgufValueType::u16: return "u16";
    case GgufValueType::i16: return "i16";
    case GgufValueType::u32: return "u32";
    case GgufValueType::i32: return "i32";
    case GgufValueType::f32: return "f32";
    case GgufValueType::boolean: return "bool";
    case GgufValueType::string: return "string";
    case GgufValueType::array: return "array";
    case GgufValueType::u64: return "u64";
    case GgufValueType::i64: return "i64";
    case GgufValueType::f64: return "f64";
  }
  return "?";
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufValueType::u8:
    case GgufValueType::i8:
    case GgufValueType::u16:
    case GgufValueType::i16:
    case GgufValueType::u32:
    case GgufValueType::i32:
    case GgufValueType::u64:
    case GgufValueType::i64: return true;
    default: return false;
  }
}

std::string ggml_type_name(std::uint32_t type) {
  static const char* const names[] = {
      "F32",  "F16",  "Q4_0", "Q4_1", "type 4", "type 5", "Q5_0", "Q5_1", "Q8_0", "Q8_1",
      "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",   "Q8_K",   "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S",
      "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M",
      "BF16", "type 31", "type 32", "type 33", "TQ1_0", "TQ2_0", "I2_S"};
  if (type < sizeof(names) / sizeof(names[0])) return names[type];
  return "type " + std::to_string(type);
}

std::optional<DType> dtype_of_ggml_type(std::uint32_t type) {
  switch (type) {
    case 0: return DType::f32;
    case 1: return DType::f16;
    case 30: return DType::bf16;
    case 34: return DType::tq1_0;
    case 35: return DType::tq2_0;
    case 36: return DType::i2_s;
    default: return std::nullopt;
  }
}

bool is_gguf_file(const std::string& path) {
  // Only a regular file is read for its magic: opening a FIFO would block until a writer appears.
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  std::ifstream in(path, std::ios::binary);
  char m[4] = {};
  return in.read(m, 4) && m[0] == 'G' && m[1] == 'G' && m[2] == 'U' && m[3] == 'F';
}

GgufFile::GgufFile(const std::string& path) : file_(std::make_shared<MappedFile>(path)) {
  Cursor c(*file_);
  if (file_->size() < 4 || std::memcmp(file_->data(), "GGUF", 4) != 0)
    c.fail("not a GGUF file (it does not begin with the magic \"GGUF\")");
  c.skip(4);
  version_ = c.read<std::uint32_t>("the version");
  if (version_ == 0x03000000u || version_ == 0x02000000u) c.fail("big-endian GGUF files are not supported");
  if (version_ == 1) c.fail("GGUF version 1 (32-bit counts) is not supported; versions 2 and 3 are");
  if (version_ != 2 && version_ != 3)
    c.fail("GGUF version " + std::to_string(version_) + " is not supported; versions 2 and 3 are");
  const std::uint64_t n_tensors_u = c.read<std::uint64_t>("the tensor count");
  const std::uint64_t n_kv_u = c.read<std::uint64_t>("the metadata count");
  // Each key/value takes at least 8 + 4 + 1 bytes, each tensor info at least 8 + 4 + 8 + 4 + 8.
  if (n_kv_u > static_cast<std::uint64_t>(c.left() / 13))
    c.fail("metadata count " + std::to_string(n_kv_u) + " cannot fit in the " + std::to_string(c.left()) +
           " bytes left (at least 13 bytes each)");
  if (n_tensors_u > static_cast<std::uint64_t>(c.left() / 32))
    c.fail("tensor count " + std::to_string(n_tensors_u) + " cannot fit in the " + std::to_string(c.left()) +
           " bytes left (at least 32 bytes each)");
  const auto n_kv = static_cast<std::int64_t>(n_kv_u), n_tensors = static_cast<std::int64_t>(n_tensors_u);

  for (std::int64_t i = 0; i < n_kv; ++i) {
    const std::string what = "metadata entry " + std::to_string(i) + " of " + std::to_string(n_kv);
    std::string key = c.string(what + " (key)");
    const std::uint32_t t = c.read<std::uint32_t>("key " + key + " (value type)");
    if (!known_value_type(t)) c.fail("key " + key + ": unknown value type " + std::to_string(t));
    GgufValue v;
    read_value(c, static_cast<GgufValueType>(t), v, "key " + key, 0);
    if (kv_.count(key)) c.fail("key " + key + " appears twice");
    kv_.emplace(std::move(key), std::move(v));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (a->type != GgufValueType::u32)
      c.fail(std::string("key general.alignment has type ") + gguf_value_type_name(a->type) + ", expected u32");
    if (a->integer <= 0 || a->integer > kMaxAlignment || (a->integer & (a->integer - 1)) != 0)
      c.fail("key general.alignment = " + std::to_string(a->integer) + " is not a power of two in [1, 2^20]");
    alignment_ = a->integer;
  }

  tensors_.reserve(static_cast<std::size_t>(n_tensors));
  for (std::int64_t i = 0; i < n_tensors; ++i) {
    const std::string what = "tensor info " + std::to_string(i) + " of " + std::to_string(n_tensors);
    GgufTensor t;
    t.name = c.string(what + " (name)");
    const std::string tw = "tensor " + t.name;
    const std::uint32_t n_dims = c.read<std::uint32_t>(tw + " (dimension count)");
    if (n_dims < 1 || n_dims > kMaxDims)
      c.fail(tw + ": " + std::to_string(n_dims) + " dimensions, expected 1 to " + std::to_string(kMaxDims));
    std::int64_t elements = 1;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      const std::uint64_t ne = c.read<std::uint64_t>(tw + " (dimension " + std::to_string(d) + ")");
      const auto ne_i = as_int64(ne);
      const auto prod = ne_i ? checked_mul(elements, *ne_i) : std::nullopt;
      if (!prod)
        c.fail(tw + ": dimension " + std::to_string(d) + " = " + std::to_string(ne) +
               " makes the element count overflow");
      t.ne.push_back(*ne_i);
      elements = *prod;
    }
    t.elements = elements;
    t.ggml_type = c.read<std::uint32_t>(tw + " (type)");
    t.dtype = dtype_of_ggml_type(t.ggml_type);
    const std::uint64_t off = c.read<std::uint64_t>(tw + " (offset)");
    const auto off_i = as_int64(off);
    if (!off_i) c.fail(tw + ": data offset " + std::to_string(off) + " exceeds 2^63 - 1");
    t.offset = *off_i;
    if (t.offset % alignment_ != 0)
      c.fail(tw + ": data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
             std::to_string(alignment_));
    if (t.dtype) {
      std::string why;
      const auto bytes = dtype_tensor_bytes(*t.dtype, t.elements, &why);
      if (!bytes) c.fail(tw + ": " + dtype_name(*t.dtype) + " tensor of " + std::to_string(t.elements) +
                         " elements: " + why);
      t.bytes = *bytes;
    }
    if (tensor_index_.count(t.name)) c.fail(tw + " appears twice");
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment.
  const std::int64_t end = c.at();
  data_offset_ = (end + alignment_ - 1) / alignment_ * alignment_;
  const std::int64_t data_bytes = file_->size() - data_offset_;
  for (GgufTensor& t : tensors_) {
    const std::int64_t bytes = t.bytes >= 0 ? t.bytes : 0;
    const auto stop = checked_add(t.offset, bytes);
    if (data_bytes < 0 || !stop || *stop > data_bytes)
      c.fail("tensor " + t.name + ": data [" + std::to_string(t.offset) + ", " +
             (stop ? std::to_string(*stop) : std::string("overflow")) + ") lies outside the data section of " +
             std::to_string(std::max<std::int64_t>(data_bytes, 0)) + " bytes (file truncated?)");
    t.data = file_->data() + data_offset_ + t.offset;
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  const auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::optional<std::string> GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::string)
    throw FileFormatError(path() + ": key " + key + " has type " + gguf_value_type_name(v->type) +
                          ", expected string");
  return v->text;
}

std::optional<std::int64_t> GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_integer())
    throw FileFormatError(path() + ": key " + key + " has type " + gguf_value_type_name(v->type) +
                          ", expected an integer");
  return v->integer;
}

std::optional<double> GgufFile::get_real(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->is_float()) return v->real;
  if (v->is_integer()) return static_cast<double>(v->integer);
  throw FileFormatError(path() + ": key " + key + " has type " + gguf_value_type_name(v->type) +
                        ", expected a number");
}

std::optional<bool> GgufFile::get_bool(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::boolean)
    throw FileFormatError(path() + ": key " + key + " has type " + gguf_value_type_name(v->type) +
                          ", expected bool");
  return v->integer != 0;
}

}  // namespace wm::io
