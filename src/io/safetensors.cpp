#include "wafermesh/io/safetensors.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "wafermesh/io/checked.hpp"
#include "wafermesh/io/format_error.hpp"
#include "wafermesh/io/json.hpp"

namespace wm::io {

namespace {

constexpr std::int64_t kMaxHeaderBytes = 100'000'000;  // the format's own limit

// Bytes per element of a safetensors dtype, 0 when unknown.
std::int64_t dtype_size(const std::string& d) {
  static const std::map<std::string, std::int64_t> sizes = {
      {"F64", 8}, {"I64", 8}, {"U64", 8}, {"F32", 4}, {"I32", 4}, {"U32", 4}, {"F16", 2},  {"BF16", 2},
      {"I16", 2}, {"U16", 2}, {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  const auto it = sizes.find(d);
  return it == sizes.end() ? 0 : it->second;
}

std::optional<DType> decoded_dtype(const std::string& d) {
  if (d == "F32") return DType::f32;
  if (d == "F16") return DType::f16;
  if (d == "BF16") return DType::bf16;
  if (d == "U8") return DType::u8;
  return std::nullopt;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FileFormatError(path + ": cannot open");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(std::make_shared<MappedFile>(path)) {
  auto fail = [&](const std::string& why) -> void { throw FileFormatError(path + ": " + why); };
  const std::int64_t size = file_->size();
  if (size < 8) fail("truncated: " + std::to_string(size) + " bytes, a safetensors file has at least 8");
  std::uint64_t n_u;
  std::memcpy(&n_u, file_->data(), 8);
  if (n_u > static_cast<std::uint64_t>(kMaxHeaderBytes))
    fail("header length " + std::to_string(n_u) + " exceeds the format's limit of " + std::to_string(kMaxHeaderBytes) +
         " bytes");
  const auto n = static_cast<std::int64_t>(n_u);
  if (n > size - 8)
    fail("truncated: the header needs " + std::to_string(n) + " bytes after the length, the file has " +
         std::to_string(size - 8));
  const std::string_view text(reinterpret_cast<const char*>(file_->data() + 8), static_cast<std::size_t>(n));
  if (text.empty() || text.front() != '{') fail("the header does not begin with '{'");
  const Json header = parse_json(text, path);
  if (!header.is_object()) fail("the header is not a JSON object");
  const std::int64_t data_start = 8 + n, data_bytes = size - data_start;

  for (const auto& [name, v] : header.members()) {
    if (name == "__metadata__") {
      if (!v.is_object()) fail("__metadata__ is not an object");
      for (const auto& [k, m] : v.members())
        if (m.is_string()) metadata_[k] = m.as_string();
      continue;
    }
    const std::string tw = "tensor " + name;
    if (!v.is_object()) fail(tw + ": its entry is not an object");
    const Json* dt = v.find("dtype");
    const Json* shape = v.find("shape");
    const Json* offs = v.find("data_offsets");
    if (!dt || !dt->is_string()) fail(tw + ": no string \"dtype\"");
    if (!shape || !shape->is_array()) fail(tw + ": no array \"shape\"");
    if (!offs || !offs->is_array() || offs->items().size() != 2) fail(tw + ": \"data_offsets\" is not [begin, end]");
    SafeTensor t;
    t.name = name;
    t.file = path;
    t.dtype_name = dt->as_string();
    t.dtype = decoded_dtype(t.dtype_name);
    const std::int64_t esize = dtype_size(t.dtype_name);
    if (esize == 0) fail(tw + ": unknown dtype \"" + t.dtype_name + "\"");
    if (shape->items().size() > 8) fail(tw + ": " + std::to_string(shape->items().size()) + " dimensions (at most 8)");
    std::int64_t elements = 1;
    for (const Json& d : shape->items()) {
      if (!d.is_integer() || d.as_int() < 0) fail(tw + ": a shape entry is not a non-negative integer");
      const auto p = checked_mul(elements, d.as_int());
      if (!p) fail(tw + ": the shape's element count overflows");
      t.shape.push_back(d.as_int());
      elements = *p;
    }
    t.elements = elements;
    const Json& b = offs->items()[0];
    const Json& e = offs->items()[1];
    if (!b.is_integer() || !e.is_integer() || b.as_int() < 0 || e.as_int() < b.as_int())
      fail(tw + ": data_offsets are not integers 0 <= begin <= end");
    const auto need = checked_mul(elements, esize);
    if (!need || *need != e.as_int() - b.as_int())
      fail(tw + ": data_offsets [" + std::to_string(b.as_int()) + ", " + std::to_string(e.as_int()) + ") hold " +
           std::to_string(e.as_int() - b.as_int()) + " bytes, the shape needs " +
           (need ? std::to_string(*need) : std::string("more than 2^63")));
    if (e.as_int() > data_bytes)
      fail(tw + ": data [" + std::to_string(b.as_int()) + ", " + std::to_string(e.as_int()) +
           ") lies outside the data of " + std::to_string(data_bytes) + " bytes (file truncated?)");
    t.bytes = *need;
    t.data = file_->data() + data_start + b.as_int();
    if (index_.count(name)) fail(tw + " appears twice");
    index_.emplace(name, tensors_.size());
    tensors_.push_back(std::move(t));
  }
  // Extents must not overlap.
  std::vector<const SafeTensor*> by_start;
  for (const SafeTensor& t : tensors_) by_start.push_back(&t);
  std::sort(by_start.begin(), by_start.end(), [](const SafeTensor* a, const SafeTensor* b) { return a->data < b->data; });
  for (std::size_t i = 1; i < by_start.size(); ++i)
    if (by_start[i - 1]->data + by_start[i - 1]->bytes > by_start[i]->data)
      fail("tensors " + by_start[i - 1]->name + " and " + by_start[i]->name + " overlap");
}

const SafeTensor* SafetensorsFile::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

SafetensorsSet::SafetensorsSet(const std::string& path) : path_(path) {
  const bool is_index = path.size() >= 5 && path.substr(path.size() - 5) == ".json";
  if (!is_index) {
    files_.push_back(std::make_unique<SafetensorsFile>(path));
    for (const SafeTensor& t : files_.back()->tensors()) index_.emplace(t.name, &t);
    return;
  }
  auto fail = [&](const std::string& why) -> void { throw FileFormatError(path + ": " + why); };
  const Json idx = parse_json(read_text_file(path), path);
  const Json* map = idx.is_object() ? idx.find("weight_map") : nullptr;
  if (!map || !map->is_object()) fail("no object \"weight_map\"");
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  std::map<std::string, SafetensorsFile*> opened;
  for (const auto& [name, shard] : map->members()) {
    if (!shard.is_string()) fail("weight_map entry " + name + " is not a file name");
    const std::string& f = shard.as_string();
    if (f.empty() || f.find('/') != std::string::npos || f.find('\\') != std::string::npos || f == "." || f == "..")
      fail("weight_map entry " + name + ": shard \"" + f + "\" is not a plain file name in the index's folder");
    SafetensorsFile*& sf = opened[f];
    if (!sf) {
      files_.push_back(std::make_unique<SafetensorsFile>((dir / f).string()));
      sf = files_.back().get();
    }
    const SafeTensor* t = sf->find(name);
    if (!t) fail("weight_map says tensor " + name + " is in " + f + ", which does not hold it");
    if (!index_.emplace(name, t).second) fail("tensor " + name + " appears twice in weight_map");
  }
}

const SafeTensor* SafetensorsSet::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

std::vector<const SafeTensor*> SafetensorsSet::all() const {
  std::vector<const SafeTensor*> v;
  for (const auto& [n, t] : index_) v.push_back(t);
  return v;
}

}  // namespace wm::io
