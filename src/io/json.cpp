#include "wafermesh/io/json.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

#include "wafermesh/io/format_error.hpp"

namespace wm::io {

const Json* Json::find(std::string_view key) const {
  for (const auto& m : members_)
    if (m.first == key) return &m.second;
  return nullptr;
}

const char* Json::kind_name(Kind k) {
  switch (k) {
    case Kind::null: return "null";
    case Kind::boolean: return "a boolean";
    case Kind::number: return "a number";
    case Kind::string: return "a string";
    case Kind::array: return "an array";
    case Kind::object: return "an object";
  }
  return "?";
}

class JsonParser {
 public:
  JsonParser(std::string_view text, const std::string& source) : s_(text), source_(source) {}

  Json parse_document() {
    Json v = value(0);
    skip_ws();
    if (at_ != s_.size()) fail("unexpected characters after the value");
    return v;
  }

 private:
  std::string_view s_;
  const std::string& source_;
  std::size_t at_ = 0;

  [[noreturn]] void fail(const std::string& why) const {
    throw FileFormatError(source_ + ": JSON syntax error at byte " + std::to_string(at_) + ": " + why);
  }
  void skip_ws() {
    while (at_ < s_.size() && (s_[at_] == ' ' || s_[at_] == '\t' || s_[at_] == '\n' || s_[at_] == '\r')) ++at_;
  }
  bool eat(char c) {
    skip_ws();
    if (at_ < s_.size() && s_[at_] == c) {
      ++at_;
      return true;
    }
    return false;
  }
  bool literal(std::string_view word) {
    if (s_.substr(at_, word.size()) != word) return false;
    at_ += word.size();
    return true;
  }

  Json value(int depth) {
    if (depth > kJsonMaxDepth) fail("nesting deeper than " + std::to_string(kJsonMaxDepth) + " levels");
    skip_ws();
    if (at_ >= s_.size()) fail("unexpected end of the text, expected a value");
    Json v;
    const char c = s_[at_];
    if (c == '{') {
      ++at_;
      v.kind_ = Json::Kind::object;
      if (eat('}')) return v;
      do {
        skip_ws();
        if (at_ >= s_.size() || s_[at_] != '"') fail("expected a string key in an object");
        std::string key = string_body();
        if (!eat(':')) fail("expected ':' after an object key");
        Json member = value(depth + 1);
        v.members_.emplace_back(std::move(key), std::move(member));
      } while (eat(','));
      if (!eat('}')) fail("expected ',' or '}' in an object");
      return v;
    }
    if (c == '[') {
      ++at_;
      v.kind_ = Json::Kind::array;
      if (eat(']')) return v;
      do v.items_.push_back(value(depth + 1));
      while (eat(','));
      if (!eat(']')) fail("expected ',' or ']' in an array");
      return v;
    }
    if (c == '"') {
      v.kind_ = Json::Kind::string;
      v.str_ = string_body();
      return v;
    }
    if (literal("true")) {
      v.kind_ = Json::Kind::boolean;
      v.bool_ = true;
      return v;
    }
    if (literal("false")) {
      v.kind_ = Json::Kind::boolean;
      return v;
    }
    if (literal("null")) return v;
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    fail(std::string("unexpected character '") + c + "'");
  }

  Json number() {
    const std::size_t start = at_;
    auto digits = [&] {
      const std::size_t d0 = at_;
      while (at_ < s_.size() && s_[at_] >= '0' && s_[at_] <= '9') ++at_;
      return at_ - d0;
    };
    if (s_[at_] == '-') ++at_;
    if (at_ < s_.size() && s_[at_] == '0') {
      ++at_;
    } else if (digits() == 0) {
      fail("a number needs digits");
    }
    bool integral = true;
    if (at_ < s_.size() && s_[at_] == '.') {
      ++at_;
      integral = false;
      if (digits() == 0) fail("a number needs digits after '.'");
    }
    if (at_ < s_.size() && (s_[at_] == 'e' || s_[at_] == 'E')) {
      ++at_;
      integral = false;
      if (at_ < s_.size() && (s_[at_] == '+' || s_[at_] == '-')) ++at_;
      if (digits() == 0) fail("a number needs digits in its exponent");
    }
    const std::string text(s_.substr(start, at_ - start));
    Json v;
    v.kind_ = Json::Kind::number;
    v.num_ = std::strtod(text.c_str(), nullptr);
    if (integral) {
      errno = 0;
      const long long i = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == 0) {
        v.integral_ = true;
        v.int_ = i;
      }
    }
    return v;
  }

  static void put_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  std::uint32_t hex4() {
    if (at_ + 4 > s_.size()) fail("a \\u escape needs four hex digits");
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[at_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= std::uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f') v |= std::uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= std::uint32_t(c - 'A' + 10);
      else fail("a \\u escape needs four hex digits");
    }
    return v;
  }

  // At the opening quote; returns the decoded contents and moves past the closing quote.
  std::string string_body() {
    ++at_;
    std::string out;
    while (true) {
      // Copy a run of plain characters at once.
      const std::size_t run = at_;
      while (at_ < s_.size() && s_[at_] != '"' && s_[at_] != '\\' && static_cast<unsigned char>(s_[at_]) >= 0x20)
        ++at_;
      out.append(s_.data() + run, at_ - run);
      if (at_ >= s_.size()) fail("unterminated string");
      const char c = s_[at_];
      if (c == '"') {
        ++at_;
        return out;
      }
      if (c != '\\') fail("a control character inside a string must be escaped");
      ++at_;
      if (at_ >= s_.size()) fail("unterminated string");
      const char e = s_[at_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          std::uint32_t cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (!(at_ + 2 <= s_.size() && s_[at_] == '\\' && s_[at_ + 1] == 'u'))
              fail("a high surrogate \\u escape must be followed by a low one");
            at_ += 2;
            const std::uint32_t lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("a high surrogate \\u escape must be followed by a low one");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail("a low surrogate \\u escape without a high one");
          }
          put_utf8(out, cp);
          break;
        }
        default: fail(std::string("unknown escape '\\") + e + "'");
      }
    }
  }
};

Json parse_json(std::string_view text, const std::string& source) { return JsonParser(text, source).parse_document(); }

}  // namespace wm::io
