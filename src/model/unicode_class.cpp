#include "wafermesh/model/unicode_class.hpp"

#include <algorithm>
#include <iterator>

namespace wm::model {

namespace {

#include "unicode_tables.inc"

template <std::size_t N>
bool in_ranges(const CodeRange (&r)[N], char32_t c) {
  const CodeRange* it = std::upper_bound(std::begin(r), std::end(r), c,
                                         [](char32_t v, const CodeRange& x) { return v < x.first; });
  return it != std::begin(r) && c <= (it - 1)->last;
}

}  // namespace

bool is_letter(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
  return in_ranges(kLetterRanges, c);
}

bool is_number(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  return in_ranges(kNumberRanges, c);
}

bool is_space(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
  return in_ranges(kSpaceRanges, c);
}

const char* unicode_tables_version() { return kUnicodeVersion; }

Utf8Char utf8_at(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c0 = b(i);
  if (c0 < 0x80) return {c0, 1};
  std::size_t len;
  char32_t cp, min;
  if (c0 >= 0xC2 && c0 <= 0xDF) len = 2, cp = c0 & 0x1F, min = 0x80;
  else if (c0 >= 0xE0 && c0 <= 0xEF) len = 3, cp = c0 & 0x0F, min = 0x800;
  else if (c0 >= 0xF0 && c0 <= 0xF4) len = 4, cp = c0 & 0x07, min = 0x10000;
  else return {kInvalidCodePoint, 1};
  if (i + len > s.size()) return {kInvalidCodePoint, 1};
  for (std::size_t k = 1; k < len; ++k) {
    const unsigned char ck = b(i + k);
    if ((ck & 0xC0) != 0x80) return {kInvalidCodePoint, 1};
    cp = (cp << 6) | (ck & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {kInvalidCodePoint, 1};
  return {cp, len};
}

}  // namespace wm::model
