#pragma once
// Internal: the table of kernel entry points one ISA level provides. Each level's translation unit
// (compiled with its own -m flags) defines one table; cpu_dispatch.cpp hands out the active one.
#include <cstdint>

#include "wafermesh/kernels/activations.hpp"
#include "wafermesh/kernels/cpu_dispatch.hpp"
#include "wafermesh/kernels/pack.hpp"

namespace wm::kernels::detail {

struct IsaKernels {
  // q (K) -> table (ceil(K/3), 32) for one token.
  void (*lut_table_build)(const std::int8_t* q, std::int64_t K, std::uint8_t* table);
  // y (N, M) row stride ldy.
  void (*lut_gemm_i32)(const TernaryMatrixLut& w, const LutTables& t, std::int32_t* y,
                       std::int64_t ldy);
  void (*mad2b_gemm_i32)(const TernaryMatrix2b& w, const ActivationsQ8& a, std::int32_t* y,
                         std::int64_t ldy);
  // Decode with the table build fused in (see lut_gemv_i32 with ActivationsQ8); t is already sized
  // for one token. nullptr: the level builds the tables first, then runs lut_gemm_i32.
  void (*lut_gemv_fused)(const TernaryMatrixLut& w, const ActivationsQ8& a, LutTables& t,
                         std::int32_t* y);
  // See fp32_gemm.hpp; b_trans selects B (N, K) instead of B (K, N).
  void (*gemm_f32)(std::int64_t M, std::int64_t N, std::int64_t K, const float* A, std::int64_t lda,
                   const float* B, std::int64_t ldb, bool b_trans, float* C, std::int64_t ldc,
                   bool accumulate);
};

const IsaKernels& isa_kernels_scalar();
const IsaKernels& isa_kernels_avx2();
const IsaKernels& isa_kernels_avx512();
// Table of isa_active().
const IsaKernels& isa_kernels();

// Balanced-ternary digits of the table entries: entry e = 9 d0[e] + 3 d1[e] + d2[e], e = 0..15
// (14 and 15 unused, all-zero digits so their table bytes are 0).
inline constexpr std::int8_t kLutD0[16] = {0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
inline constexpr std::int8_t kLutD1[16] = {0, 0, 1, 1, 1, -1, -1, -1, 0, 0, 0, 1, 1, 1, 0, 0};
inline constexpr std::int8_t kLutD2[16] = {0, 1, -1, 0, 1, -1, 0, 1, -1, 0, 1, -1, 0, 1, 0, 0};

// Row (within a 64-row tile) of int32 accumulator position p in the AVX2 / AVX-512 LUT kernels.
// unpacklo/unpackhi_epi8 interleave per 128-bit lane, so the int16 sums come out as row runs of 8:
// lo lanes hold rows 0-7 16-23 32-39 48-55, hi lanes 8-15 24-31 40-47 56-63; both kernels widen
// them into positions [0-7 16-23 | 8-15 24-31 | 32-39 48-55 | 40-47 56-63].
inline constexpr int kLutPosRowStart[8] = {0, 16, 8, 24, 32, 48, 40, 56};
inline constexpr int lut_pos_row(int p) { return kLutPosRowStart[p / 8] + p % 8; }

// int16 partial sums of the SIMD LUT kernels are widened to int32 after at most this many
// additions per int16 lane. Bound: an entry is |a0| + |a1| + |a2| <= 3 * 128 = 384 in magnitude; a
// negative group adds ~T = -T - 1, so one addition is a value in [-385, 384]; 64 of them stay within
// 64 * 385 = 24640 <= 32767. (85 would still fit, 86 would not.) A lane adds one value per group
// (AVX2: a block is 64 groups) or per pair (AVX-512: lanes 0-1 take group g, 2-3 group g', so a
// block is 64 pairs).
inline constexpr std::int64_t kLutI16AddsPerBlock = 64;

// Software prefetch distance of the streaming weight loops, in bytes ahead of the current read.
// One thread streams one tile (or one block of rows) at a time, and the hardware prefetcher alone
// keeps too few lines in flight for a lone stream to reach DRAM bandwidth; 8 KiB ahead gives the
// best single-thread DRAM rate of the distances tried, and longer distances gain nothing
// (results/PERFORMANCE.md). Prefetching past the end of a buffer is harmless. Where the streams
// start matters more: two halves of one tile leave the start of every second half unprefetched,
// two runs of whole tiles do not (see lut_gemv_rows_avx512).
inline constexpr std::int64_t kLutPrefetchBytes = 8192;
inline constexpr std::int64_t kMad2bPrefetchBytes = 8192;

// f.template operator()<k>() for the compile-time k equal to n, 1 <= n <= kMax.
template <int kMax, class F>
inline void with_static_count(std::int64_t n, F&& f) {
  if constexpr (kMax > 1) {
    if (n < kMax) return with_static_count<kMax - 1>(n, f);
  }
  f.template operator()<kMax>();
}

// The tiling of the SIMD 2-bit GEMMs: blocks of kRowBlock rows (the last may have fewer) spread
// over OpenMP threads, each cut into tiles of 4 tokens and one of the remaining 1-3.
// tile.template operator()<kR, kT>(i0, n0) computes rows i0 .. i0 + kR - 1 for tokens n0 .. n0 + kT - 1.
template <int kRowBlock, class Tile>
void mad2b_for_tiles(std::int64_t M, std::int64_t N, const Tile& tile) {
  const std::int64_t row_blocks = (M + kRowBlock - 1) / kRowBlock;
#pragma omp parallel for schedule(static)
  for (std::int64_t rb = 0; rb < row_blocks; ++rb) {
    const std::int64_t i0 = rb * kRowBlock;
    with_static_count<kRowBlock>(M - i0, [&]<int kR>() {
      std::int64_t n = 0;
      for (; n + 4 <= N; n += 4) tile.template operator()<kR, 4>(i0, n);
      if (n < N) with_static_count<3>(N - n, [&]<int kT>() { tile.template operator()<kR, kT>(i0, n); });
    });
  }
}

// The three activations of group g; the two-weight tail is (0, q[3g], q[3g+1] or 0).
inline void lut_group_acts(const std::int8_t* q, std::int64_t K, std::int64_t g, int& a0, int& a1,
                           int& a2) {
  const std::int64_t k = 3 * g;
  if (k + 3 <= K) {
    a0 = q[k];
    a1 = q[k + 1];
    a2 = q[k + 2];
  } else {
    a0 = 0;
    a1 = q[k];
    a2 = (k + 1 < K) ? q[k + 1] : 0;
  }
}

// Tables of pair p (groups 2p, 2p+1) of one token, plain scalar: the reference builder, and the
// SIMD builders' tail (a pair that reaches past the last full group).
inline void lut_table_build_pair_scalar(const std::int8_t* q, std::int64_t K, std::int64_t p,
                                        std::uint8_t* table) {
  const std::int64_t G = (K + 2) / 3;
  for (std::int64_t g = 2 * p; g < 2 * p + 2; ++g) {
    int a0 = 0, a1 = 0, a2 = 0;  // the padding group of an odd count is all zero
    if (g < G) lut_group_acts(q, K, g, a0, a1, a2);
    std::uint8_t* lo = table + p * LutTables::kPairBytes + (g % 2) * 32;
    std::uint8_t* hi = lo + LutTables::kHighOffset;
    for (int e = 0; e < 16; ++e) {
      const int v = kLutD0[e] * a0 + kLutD1[e] * a1 + kLutD2[e] * a2;
      lo[e] = lo[16 + e] = static_cast<std::uint8_t>(v & 0xFF);
      hi[e] = hi[16 + e] = static_cast<std::uint8_t>((v >> 8) & 0xFF);
    }
  }
}

}  // namespace wm::kernels::detail
