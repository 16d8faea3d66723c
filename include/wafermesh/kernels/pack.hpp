#pragma once
// Packed ternary weight formats (DESIGN.md §5). Both are "prepared" objects: built once from int8
// ternary values or from float weights (absmean-quantised), then read by the kernels. Any M and K
// work; padding is internal and unpack() returns exactly the M x K matrix that went in.
#include <cstdint>
#include <vector>

#include "wafermesh/kernels/aligned_buffer.hpp"

namespace wm::kernels {

// ---------------------------------------------------------------------------------------------
// 2-bit codes: code = w + 1 in {0, 1, 2}, four weights per byte, for the multiply-add kernel
// (sum code*q - sum q). Each row is padded to Kp = round_up(K, 256) weights (code 1, i.e. w = 0).
// A 64-byte block holds 256 weights: byte j, bits 2s..2s+1 hold weight 64*s + j of the block.
// So one 64-byte load and three shifts give four byte vectors whose activations are four contiguous
// 64-byte runs of q: no shuffles. AVX2 reads the block as two 32-byte halves with the same rule.
//   Example, K = 5: Kp = 256, row bytes = 64; weight 4 sits in byte 4, bits 0..1.
// ---------------------------------------------------------------------------------------------
class TernaryMatrix2b {
 public:
  static constexpr std::int64_t kBlockWeights = 256;
  static constexpr std::int64_t kBlockBytes = 64;

  TernaryMatrix2b() = default;
  // w: (M, K) int8 in {-1, 0, +1}, row stride ldw. Throws std::invalid_argument on another value.
  // gamma is stored for the float-output kernels (1 = exact integer dot products).
  static TernaryMatrix2b from_int8(const std::int8_t* w, std::int64_t M, std::int64_t K,
                                   std::int64_t ldw, float gamma = 1.0f);
  // w: (M, K) floats, row stride ldw; absmean-quantised (quantize.hpp), gamma kept.
  static TernaryMatrix2b from_float(const float* w, std::int64_t M, std::int64_t K, std::int64_t ldw);
  // out: (M, K) int8, row stride ldo.
  void unpack(std::int8_t* out, std::int64_t ldo) const;

  std::int64_t rows() const { return rows_; }
  std::int64_t cols() const { return cols_; }
  std::int64_t padded_cols() const { return padded_cols_; }
  std::int64_t row_bytes() const { return padded_cols_ / 4; }
  float gamma() const { return gamma_; }
  // Bytes of packed weights a GEMV streams (rows * row_bytes).
  std::int64_t bytes() const { return static_cast<std::int64_t>(data_.size()); }
  // (row_bytes) codes of row i.
  const std::uint8_t* row(std::int64_t i) const { return data_.data() + i * row_bytes(); }

 private:
  std::int64_t rows_ = 0, cols_ = 0, padded_cols_ = 0;
  float gamma_ = 1.0f;
  std::vector<std::uint8_t, AlignedAllocator<std::uint8_t>> data_;  // (M, Kp / 4)
};

// ---------------------------------------------------------------------------------------------
// Lookup-table format: three weights per 4-bit index plus a sign bit (~1.67 bits/weight).
// Group g covers columns 3g, 3g+1, 3g+2 and has index v = 9 w0 + 3 w1 + w2 in [-13, 13]; the
// format stores |v| (a nibble) and sign = (v < 0). Mirror consolidation: the 27 patterns fold to 14
// table entries because pattern -p has index -v. When K % 3 != 0 the last group is a two-weight
// tail, v = 3 w0 + w1 in [-4, 4] (w1 = 0 when only one column is left). That is the three-weight
// index of the pattern (0, w0, w1), so the tail needs no second kernel: its table is built from
// the activations (0, a0, a1).
//
// Rows are grouped in tiles of 64 (the tail tile padded with zero rows) and groups in pairs (an odd
// last group is paired with an all-zero one). Storage, tile-major:
//   record (tile t, pair p), 80 bytes = 64 rows x 6 weights x 5/3 bits, groups g = 2p and g' = 2p+1:
//     bytes  0..31  nibbles of g:  byte b: low nibble = |v| of row b, high nibble = row 32 + b
//     bytes 32..63  nibbles of g', same
//     bytes 64..71  little-endian uint64 "low rows" signs:  bit j = g row j, bit 32 + j = g' row j
//     bytes 72..79  little-endian uint64 "high rows" signs: bit j = g row 32+j, bit 32+j = g' row 32+j
// A tile's records are contiguous, so a GEMV streams the matrix once, front to back. One 64-byte
// load of a record masked to low (high) nibbles gives the byte indices of rows 0-31 (32-63) of both
// groups for one AVX-512 pshufb against the pair's tables (LutTables), with the matching 64-bit
// sign mask; AVX2 takes each group's 32 bytes on its own.
//   Example, M = 7, K = 5: 1 tile, 2 groups (one full, one two-weight tail) = 1 pair, 80 bytes.
// ---------------------------------------------------------------------------------------------
class TernaryMatrixLut {
 public:
  static constexpr std::int64_t kTileRows = 64;
  static constexpr std::int64_t kGroupWeights = 3;
  static constexpr std::int64_t kRecordGroups = 2;
  static constexpr std::int64_t kRecordBytes = 80;
  static constexpr std::int64_t kSignOffset = 64;

  TernaryMatrixLut() = default;
  static TernaryMatrixLut from_int8(const std::int8_t* w, std::int64_t M, std::int64_t K,
                                    std::int64_t ldw, float gamma = 1.0f);
  static TernaryMatrixLut from_float(const float* w, std::int64_t M, std::int64_t K,
                                     std::int64_t ldw);
  void unpack(std::int8_t* out, std::int64_t ldo) const;
  // Flat form, for moving a packed matrix as bytes (a weight tile travelling between PEs): the
  // records, then the per-row negative-group counts. serialized_bytes(M, K) is its size for an
  // M x K matrix; deserialize(serialize(m)) == m.
  static std::int64_t serialized_bytes(std::int64_t M, std::int64_t K);
  void serialize(std::uint8_t* out) const;
  static TernaryMatrixLut deserialize(const std::uint8_t* in, std::int64_t M, std::int64_t K, float gamma = 1.0f);

  std::int64_t rows() const { return rows_; }
  std::int64_t cols() const { return cols_; }
  std::int64_t groups() const { return (cols_ + 2) / 3; }
  std::int64_t pairs() const { return (groups() + 1) / 2; }
  std::int64_t tiles() const { return (rows_ + kTileRows - 1) / kTileRows; }
  float gamma() const { return gamma_; }
  std::int64_t bytes() const { return static_cast<std::int64_t>(data_.size()); }
  // (pairs, 80) records of tile t.
  const std::uint8_t* tile(std::int64_t t) const {
    return data_.data() + t * pairs() * kRecordBytes;
  }
  // Decoders of one record (see the layout above): group h (0, 1) of the pair, row r (0..63) of
  // the tile.
  static int record_magnitude(const std::uint8_t* rec, int h, int r) {
    const std::uint8_t b = rec[32 * h + r % 32];
    return r < 32 ? (b & 15) : (b >> 4);
  }
  static int record_sign_bit(int h, int r) { return (r < 32 ? 0 : 64) + 32 * h + r % 32; }
  static bool record_negative(const std::uint8_t* rec, int h, int r) {
    const int bit = record_sign_bit(h, r);
    return (rec[kSignOffset + bit / 8] >> (bit % 8)) & 1;
  }
  // (tiles * 64) number of groups with the sign bit set, per row. The SIMD kernels add ~T = -T - 1
  // for a negative group (a byte-wise XOR) and add this count back once per row.
  const std::int32_t* neg_count() const { return neg_count_.data(); }

 private:
  std::int64_t rows_ = 0, cols_ = 0;
  float gamma_ = 1.0f;
  std::vector<std::uint8_t, AlignedAllocator<std::uint8_t>> data_;  // (tiles, pairs, 80)
  std::vector<std::int32_t> neg_count_;  // (tiles * 64)
};

}  // namespace wm::kernels
