#pragma once
// Overflow-checked size arithmetic for parsers of untrusted files: every size computed from a
// header field goes through these, so a forged count can never wrap around into a small number.
#include <cstdint>
#include <optional>

namespace wm::io {

// a * b, or nothing when either is negative or the product exceeds int64.
inline std::optional<std::int64_t> checked_mul(std::int64_t a, std::int64_t b) {
  std::int64_t r;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// a + b, or nothing when either is negative or the sum exceeds int64.
inline std::optional<std::int64_t> checked_add(std::int64_t a, std::int64_t b) {
  std::int64_t r;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// A uint64 header field as int64, or nothing when it exceeds int64.
inline std::optional<std::int64_t> as_int64(std::uint64_t v) {
  if (v > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
  return static_cast<std::int64_t>(v);
}

}  // namespace wm::io
