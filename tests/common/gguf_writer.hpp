#pragma once
// A GGUF writer for tests (format: include/wafermesh/io/gguf.hpp): build a file in memory from
// metadata and tensors, then corrupt it or write it out.
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace wm::test {

class GgufWriter {
 public:
  void add_string(const std::string& key, const std::string& v) { kv(key, 8, str(v)); }
  void add_u32(const std::string& key, std::uint32_t v) { kv(key, 4, pod(v)); }
  void add_i32(const std::string& key, std::int32_t v) { kv(key, 5, pod(v)); }
  void add_f32(const std::string& key, float v) { kv(key, 6, pod(v)); }
  void add_bool(const std::string& key, bool v) { kv(key, 7, std::string(1, v ? '\1' : '\0')); }
  void add_strings(const std::string& key, const std::vector<std::string>& v) {
    std::string p = pod(std::uint32_t(8)) + pod(std::uint64_t(v.size()));
    for (const auto& s : v) p += str(s);
    kv(key, 9, p);
  }
  void add_i32s(const std::string& key, const std::vector<std::int32_t>& v) {
    std::string p = pod(std::uint32_t(5)) + pod(std::uint64_t(v.size()));
    for (auto x : v) p += pod(x);
    kv(key, 9, p);
  }
  void add_f32s(const std::string& key, const std::vector<float>& v) {
    std::string p = pod(std::uint32_t(6)) + pod(std::uint64_t(v.size()));
    for (auto x : v) p += pod(x);
    kv(key, 9, p);
  }
  // A raw entry: any type id and payload bytes (for malformed files).
  void add_raw(const std::string& key, std::uint32_t type, const std::string& payload) { kv(key, type, payload); }

  // ne[0] varies fastest; ggml type ids: F32 0, F16 1, BF16 30, TQ1_0 34, TQ2_0 35, I2_S 36.
  void add_tensor(const std::string& name, std::vector<std::uint64_t> ne, std::uint32_t type, const std::string& data) {
    tensors_.push_back({name, std::move(ne), type, data});
  }
  void add_f32_tensor(const std::string& name, std::vector<std::uint64_t> ne, const std::vector<float>& v) {
    std::string d(v.size() * 4, '\0');
    std::memcpy(d.data(), v.data(), d.size());
    add_tensor(name, std::move(ne), 0, d);
  }

  std::string bytes(std::uint32_t alignment = 32, std::uint32_t version = 3) const {
    std::string out = "GGUF" + pod(version) + pod(std::uint64_t(tensors_.size())) + pod(std::uint64_t(kv_.size()));
    for (const auto& e : kv_) out += e;
    std::uint64_t off = 0;
    std::string data;
    for (const auto& t : tensors_) {
      out += str(t.name) + pod(std::uint32_t(t.ne.size()));
      for (auto n : t.ne) out += pod(n);
      out += pod(t.type) + pod(off);
      std::string d = t.data;
      d.resize((d.size() + alignment - 1) / alignment * alignment, '\0');
      data += d;
      off += d.size();
    }
    out.resize((out.size() + alignment - 1) / alignment * alignment, '\0');
    return out + data;
  }
  void write(const std::string& path, std::uint32_t alignment = 32) const {
    const std::string b = bytes(alignment);
    std::ofstream(path, std::ios::binary).write(b.data(), std::streamsize(b.size()));
  }

  template <typename T>
  static std::string pod(T v) {
    std::string s(sizeof(T), '\0');
    std::memcpy(s.data(), &v, sizeof(T));
    return s;
  }
  static std::string str(const std::string& s) { return pod(std::uint64_t(s.size())) + s; }

 private:
  void kv(const std::string& key, std::uint32_t type, const std::string& payload) {
    kv_.push_back(str(key) + pod(type) + payload);
  }
  struct Tensor {
    std::string name;
    std::vector<std::uint64_t> ne;
    std::uint32_t type;
    std::string data;
  };
  std::vector<std::string> kv_;
  std::vector<Tensor> tensors_;
};

}  // namespace wm::test
