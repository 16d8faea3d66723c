#pragma once
// Size arithmetic on numbers that come from users or files (model dims, checkpoint headers,
// region sides): products and sums that report overflow instead of wrapping, so that an error
// message never quotes a wrapped figure. Header-only (GCC/Clang overflow builtins).
#include <cstdint>
#include <initializer_list>
#include <optional>

namespace wm {

// The product of `factors`, or nullopt when it does not fit in int64_t.
inline std::optional<std::int64_t> checked_product(std::initializer_list<std::int64_t> factors) {
  std::int64_t p = 1;
  for (std::int64_t f : factors)
    if (__builtin_mul_overflow(p, f, &p)) return std::nullopt;
  return p;
}

// The sum of `terms`, or nullopt when it does not fit in int64_t.
inline std::optional<std::int64_t> checked_sum(std::initializer_list<std::int64_t> terms) {
  std::int64_t s = 0;
  for (std::int64_t t : terms)
    if (__builtin_add_overflow(s, t, &s)) return std::nullopt;
  return s;
}

// The same for unsigned byte counts.
inline std::optional<std::uint64_t> checked_product_u64(std::initializer_list<std::uint64_t> factors) {
  std::uint64_t p = 1;
  for (std::uint64_t f : factors)
    if (__builtin_mul_overflow(p, f, &p)) return std::nullopt;
  return p;
}

}  // namespace wm
