#pragma once
// A small JSON reader (RFC 8259) for the JSON inside weight and tokenizer files: the safetensors
// header, config.json, model.safetensors.index.json and tokenizer.json (~9 MB for LLaMA-3).
// Objects keep their members in file order. The input is untrusted: nesting is limited to
// kJsonMaxDepth, and any syntax error is one FileFormatError naming the source and byte offset:
//   <source>: JSON syntax error at byte 1234: expected ',' or '}' in an object
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wm::io {

inline constexpr int kJsonMaxDepth = 128;

class Json {
 public:
  enum class Kind { null, boolean, number, string, array, object };

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::null; }
  bool is_bool() const { return kind_ == Kind::boolean; }
  bool is_number() const { return kind_ == Kind::number; }
  bool is_string() const { return kind_ == Kind::string; }
  bool is_array() const { return kind_ == Kind::array; }
  bool is_object() const { return kind_ == Kind::object; }
  // A number written without fraction or exponent that fits int64 (e.g. 4096, -1; not 4096.0).
  bool is_integer() const { return kind_ == Kind::number && integral_; }

  bool as_bool() const { return bool_; }
  double as_double() const { return num_; }
  std::int64_t as_int() const { return int_; }  // valid when is_integer()
  const std::string& as_string() const { return str_; }
  const std::vector<Json>& items() const { return items_; }
  const std::vector<std::pair<std::string, Json>>& members() const { return members_; }
  // The member named key (the first one if repeated), or nullptr. Linear: for small objects.
  const Json* find(std::string_view key) const;

  static const char* kind_name(Kind k);

 private:
  friend class JsonParser;
  Kind kind_ = Kind::null;
  bool bool_ = false;
  bool integral_ = false;
  double num_ = 0.0;
  std::int64_t int_ = 0;
  std::string str_;
  std::vector<Json> items_;
  std::vector<std::pair<std::string, Json>> members_;
};

// Parses `text` (one value, surrounded only by whitespace). `source` names the file in errors.
Json parse_json(std::string_view text, const std::string& source);

}  // namespace wm::io
