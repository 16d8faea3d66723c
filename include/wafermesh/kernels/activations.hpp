#pragma once
// Per-token activation objects, built once per token and then read (shared) by every row and
// every thread of a kernel call.
#include <cstdint>
#include <vector>

#include "wafermesh/kernels/aligned_buffer.hpp"

namespace wm::kernels {

// int8 activations of N tokens, zero-padded to Kp = round_up(K, 256) columns so that SIMD loops
// need no tail (the padded weights are zero too), plus the per-token sum of q (the 2-bit kernel
// computes sum (w+1) q - sum q) and the per-token absmax scale s.
class ActivationsQ8 {
 public:
  static constexpr std::int64_t kPadCols = 256;

  ActivationsQ8() = default;
  // x: (N, K) floats, row stride ldx; absmax-quantised per token (quantize.hpp).
  static ActivationsQ8 from_float(const float* x, std::int64_t N, std::int64_t K, std::int64_t ldx);
  // q: (N, K) any int8 (including -128), row stride ldq; scale: (N) or nullptr for s = 1.
  static ActivationsQ8 from_int8(const std::int8_t* q, std::int64_t N, std::int64_t K,
                                 std::int64_t ldq, const float* scale = nullptr);

  std::int64_t tokens() const { return tokens_; }
  std::int64_t cols() const { return cols_; }
  std::int64_t padded_cols() const { return padded_cols_; }
  // (Kp) codes of token n, zero beyond K.
  const std::int8_t* token(std::int64_t n) const { return q_.data() + n * padded_cols_; }
  std::int32_t sum(std::int64_t n) const { return sum_[n]; }
  float scale(std::int64_t n) const { return scale_[n]; }
  const float* scales() const { return scale_.data(); }  // (N)

 private:
  std::int64_t tokens_ = 0, cols_ = 0, padded_cols_ = 0;
  std::vector<std::int8_t, AlignedAllocator<std::int8_t>> q_;  // (N, Kp)
  std::vector<std::int32_t> sum_;  // (N)
  std::vector<float> scale_;       // (N)
};

// Lookup tables of N tokens for the TernaryMatrixLut kernels. For token n and group g (three
// activations a0 a1 a2; the two-weight tail uses (0, a0, a1)), entry e = 0..13 is the exact sum
// d0 a0 + d1 a1 + d2 a2 where (d0 d1 d2) is the balanced-ternary pattern with 9 d0 + 3 d1 + d2 = e.
// |entry| <= 3 * 128 = 384 needs int16, so it is stored split in bytes for 16-entry byte shuffles,
// low bytes and high bytes of entries 0..13 (14, 15 are 0). Groups are paired as in
// TernaryMatrixLut; pair p = groups g = 2p, g' = 2p+1 (g' all zero past the last group), 128 bytes:
//   [  0, 16) low bytes of g    [ 16, 32) low bytes of g  again
//   [ 32, 48) low bytes of g'   [ 48, 64) low bytes of g' again
//   [ 64,128) the same for the high bytes
// so one 64-byte load is the pshufb table of a whole record for AVX-512 (lanes 0-1 look up g,
// lanes 2-3 g') and one 32-byte load is the table of one group for AVX2. 64 bytes per group.
// Example: a = (10, -3, 1): entry 5 is pattern (1, -1, -1) = 10 + 3 - 1 = 12 -> bytes 0x0C, 0x00.
class LutTables {
 public:
  static constexpr std::int64_t kPairBytes = 128;
  static constexpr std::int64_t kHighOffset = 64;

  LutTables() = default;
  // Built with the active ISA level (the result is the same at every level).
  static LutTables build(const ActivationsQ8& a);
  // Same, into this object, reusing its storage (a decode loop builds one table set per token
  // without allocating).
  void assign(const ActivationsQ8& a);
  // Sizes the object for `tokens` tokens of K columns without building anything (scales = 1): for
  // kernels that build the tables themselves, each thread its slice (lut_gemv_i32 with
  // ActivationsQ8). Reuses the storage.
  void resize(std::int64_t tokens, std::int64_t K);
  void set_scale(std::int64_t n, float s) { scale_[static_cast<std::size_t>(n)] = s; }
  // q: (N, K) int8, row stride ldq; scale: (N) or nullptr for s = 1.
  static LutTables from_int8(const std::int8_t* q, std::int64_t N, std::int64_t K,
                             std::int64_t ldq, const float* scale = nullptr);
  // Same, into this object, reusing its storage.
  void assign_int8(const std::int8_t* q, std::int64_t N, std::int64_t K, std::int64_t ldq,
                   const float* scale = nullptr);

  std::int64_t tokens() const { return tokens_; }
  std::int64_t cols() const { return cols_; }
  std::int64_t groups() const { return (cols_ + 2) / 3; }
  std::int64_t pairs() const { return (groups() + 1) / 2; }
  // (pairs, 128) tables of token n.
  const std::uint8_t* token(std::int64_t n) const { return table_.data() + n * pairs() * kPairBytes; }
  std::uint8_t* token(std::int64_t n) { return table_.data() + n * pairs() * kPairBytes; }
  // The 16 low bytes of group g's entries in a token's tables; the high bytes are at +kHighOffset.
  static const std::uint8_t* group_low(const std::uint8_t* token_tables, std::int64_t g) {
    return token_tables + (g / 2) * kPairBytes + (g % 2) * 32;
  }
  float scale(std::int64_t n) const { return scale_[n]; }

 private:
  std::int64_t tokens_ = 0, cols_ = 0;
  std::vector<std::uint8_t, AlignedAllocator<std::uint8_t>> table_;  // (N, pairs, 128)
  std::vector<float> scale_;         // (N)
};

// Reference table builder, one token: q (K) -> tables (pairs, 128). Plain scalar code.
void lut_table_build_ref(const std::int8_t* q, std::int64_t K, std::uint8_t* table);

}  // namespace wm::kernels
