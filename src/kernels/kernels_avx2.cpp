// ISA level "avx2": AVX2 + FMA (this file is compiled with -mavx2 -mfma and reached only through
// cpu_dispatch when the CPU has them).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "fp32_gemm_impl.hpp"
#include "isa_kernels.hpp"

namespace wm::kernels::detail {
namespace {

// See lut_table_build_avx512 (same code, 256-bit).
void lut_table_build_avx2(const std::int8_t* q, std::int64_t K, std::uint8_t* table) {
  const __m256i d0 = _mm256_setr_epi16(0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0);
  const __m256i d1 = _mm256_setr_epi16(0, 0, 1, 1, 1, -1, -1, -1, 0, 0, 0, 1, 1, 1, 0, 0);
  const __m256i d2 = _mm256_setr_epi16(0, 1, -1, 0, 1, -1, 0, 1, -1, 0, 1, -1, 0, 1, 0, 0);
  const __m256i low = _mm256_set1_epi16(0x00FF);
  const std::int64_t G = (K + 2) / 3, G2 = (G + 1) / 2 * 2;
  for (std::int64_t g = 0; g < G2; ++g) {
    int a0 = 0, a1 = 0, a2 = 0;  // the padding group of an odd count is all zero
    if (g < G) lut_group_acts(q, K, g, a0, a1, a2);
    const __m256i v = _mm256_add_epi16(
        _mm256_add_epi16(_mm256_sign_epi16(_mm256_set1_epi16(static_cast<short>(a0)), d0),
                         _mm256_sign_epi16(_mm256_set1_epi16(static_cast<short>(a1)), d1)),
        _mm256_sign_epi16(_mm256_set1_epi16(static_cast<short>(a2)), d2));
    // packus per 128-bit lane gives [lo 0-7, hi 0-7 | lo 8-15, hi 8-15]; permute to [lo 0-15 x 2]
    // and [hi 0-15 x 2], the two 32-byte halves of the group's slot in the pair layout.
    const __m256i packed = _mm256_packus_epi16(_mm256_and_si256(v, low),
                                               _mm256_and_si256(_mm256_srli_epi16(v, 8), low));
    std::uint8_t* lo = table + (g / 2) * LutTables::kPairBytes + (g % 2) * 32;
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(lo),
                        _mm256_permute4x64_epi64(packed, _MM_SHUFFLE(2, 0, 2, 0)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(lo + LutTables::kHighOffset),
                        _mm256_permute4x64_epi64(packed, _MM_SHUFFLE(3, 1, 3, 1)));
  }
}

// 32 sign bits (bit p = position p) -> 32 bytes, 0xFF where the bit is set.
inline __m256i sign_bytes(std::uint32_t bits) {
  const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                       2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
  const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), sel);
  return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

// ---------------------------------------------------------------- LUT GEMM
// As lut_gemm_i32_avx512, one group (32 nibble bytes) at a time: low nibbles = rows 0-31, high
// nibbles = rows 32-63, each against the group's 32-byte table (its 16 entries twice, one copy per
// 128-bit lane); the sign is applied as a byte XOR with an expanded mask (x ^ 0xFF = ~x).
void lut_gemm_i32_avx2(const TernaryMatrixLut& w, const LutTables& t, std::int32_t* y,
                       std::int64_t ldy) {
  constexpr std::int64_t kRows = TernaryMatrixLut::kTileRows, kRec = TernaryMatrixLut::kRecordBytes;
  constexpr std::int64_t kPairBlock = kLutI16AddsPerBlock / 2;  // a lane adds one value per group
  const std::int64_t M = w.rows(), P = w.pairs(), N = t.tokens();
  const std::int32_t* neg = w.neg_count();
#pragma omp parallel
  {
    std::vector<std::int32_t> acc(static_cast<std::size_t>(N * kRows));  // (N, 64) position order
    const __m256i low4 = _mm256_set1_epi8(0x0F);
#pragma omp for schedule(static)
    for (std::int64_t ti = 0; ti < w.tiles(); ++ti) {
      std::fill(acc.begin(), acc.end(), 0);
      const std::uint8_t* tile = w.tile(ti);
      for (std::int64_t p0 = 0; p0 < P; p0 += kPairBlock) {
        const std::int64_t p1 = std::min(P, p0 + kPairBlock);
        for (std::int64_t n = 0; n < N; ++n) {
          const std::uint8_t* tab = t.token(n);
          // int16 sums; [rows 0-31 | rows 32-63][unpack lo | hi]
          __m256i s00 = _mm256_setzero_si256(), s01 = _mm256_setzero_si256();
          __m256i s10 = _mm256_setzero_si256(), s11 = _mm256_setzero_si256();
          for (std::int64_t p = p0; p < p1; ++p) {
            const std::uint8_t* rec = tile + p * kRec;
            // A record is 80 bytes, so one prefetch per record would skip every fifth cache line.
            _mm_prefetch(reinterpret_cast<const char*>(rec) + kLutPrefetchBytes, _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(rec) + kLutPrefetchBytes + 64, _MM_HINT_T0);
            std::uint32_t sb[4];  // [rows 0-31 of g, of g', rows 32-63 of g, of g']
            std::memcpy(sb, rec + TernaryMatrixLut::kSignOffset, sizeof(sb));
            for (int h = 0; h < 2; ++h) {
              const std::uint8_t* tb = tab + p * LutTables::kPairBytes + 32 * h;
              const __m256i nib = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + 32 * h));
              const __m256i idx0 = _mm256_and_si256(nib, low4);
              const __m256i idx1 = _mm256_and_si256(_mm256_srli_epi16(nib, 4), low4);
              const __m256i tl = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tb));
              const __m256i th =
                  _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tb + LutTables::kHighOffset));
              const __m256i m0 = sign_bytes(sb[h]), m1 = sign_bytes(sb[2 + h]);
              const __m256i lo0 = _mm256_xor_si256(_mm256_shuffle_epi8(tl, idx0), m0);
              const __m256i hi0 = _mm256_xor_si256(_mm256_shuffle_epi8(th, idx0), m0);
              const __m256i lo1 = _mm256_xor_si256(_mm256_shuffle_epi8(tl, idx1), m1);
              const __m256i hi1 = _mm256_xor_si256(_mm256_shuffle_epi8(th, idx1), m1);
              s00 = _mm256_add_epi16(s00, _mm256_unpacklo_epi8(lo0, hi0));
              s01 = _mm256_add_epi16(s01, _mm256_unpackhi_epi8(lo0, hi0));
              s10 = _mm256_add_epi16(s10, _mm256_unpacklo_epi8(lo1, hi1));
              s11 = _mm256_add_epi16(s11, _mm256_unpackhi_epi8(lo1, hi1));
            }
          }
          // Same position order as the AVX-512 kernel (isa_kernels.hpp, lut_pos_row).
          std::int32_t* a = acc.data() + n * kRows;
          const __m256i sums[4] = {s00, s01, s10, s11};
          for (int q = 0; q < 4; ++q) {
            __m256i* d0 = reinterpret_cast<__m256i*>(a + 16 * q);
            __m256i* d1 = reinterpret_cast<__m256i*>(a + 16 * q + 8);
            _mm256_storeu_si256(d0, _mm256_add_epi32(_mm256_loadu_si256(d0),
                                                     _mm256_cvtepi16_epi32(_mm256_castsi256_si128(sums[q]))));
            _mm256_storeu_si256(d1, _mm256_add_epi32(_mm256_loadu_si256(d1),
                                                     _mm256_cvtepi16_epi32(_mm256_extracti128_si256(sums[q], 1))));
          }
        }
      }
      for (std::int64_t n = 0; n < N; ++n) {
        for (int p = 0; p < kRows; ++p) {
          const std::int64_t row = ti * kRows + lut_pos_row(p);
          if (row < M) y[n * ldy + row] = acc[static_cast<std::size_t>(n * kRows + p)] + neg[row];
        }
      }
    }
  }
}

// ---------------------------------------------------------------- 2-bit multiply-add GEMM
// maddubs(u8 code, s8 q) adds two products per int16 lane: code in {0,1,2}, q in [-128, 127], so a
// lane is in [-512, 508] (never saturates). The four shifts of a 32-byte half are summed in int16,
// |sum| <= 4 * 512 = 2048 < 32767, then madd(., 1) widens pairs into int32 exactly.
template <int kR, int kT>
void mad2b_tile_avx2(const TernaryMatrix2b& w, const ActivationsQ8& a, std::int64_t i0,
                     std::int64_t n0, std::int32_t* y, std::int64_t ldy) {
  const std::int64_t blocks = w.padded_cols() / TernaryMatrix2b::kBlockWeights;
  const __m256i m3 = _mm256_set1_epi8(3);
  const __m256i one16 = _mm256_set1_epi16(1);
  __m256i acc[kR][kT];
  for (int r = 0; r < kR; ++r)
    for (int t = 0; t < kT; ++t) acc[r][t] = _mm256_setzero_si256();
  const std::uint8_t* rows[kR];
  for (int r = 0; r < kR; ++r) rows[r] = w.row(i0 + r);
  const std::int8_t* qs[kT];
  for (int t = 0; t < kT; ++t) qs[t] = a.token(n0 + t);
  for (std::int64_t b = 0; b < blocks; ++b) {
    for (int h = 0; h < 2; ++h) {
      for (int r = 0; r < kR; ++r) {
        if (h == 0) _mm_prefetch(reinterpret_cast<const char*>(rows[r] + b * 64) + kMad2bPrefetchBytes, _MM_HINT_T0);
        const __m256i wb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows[r] + b * 64 + h * 32));
        const __m256i c0 = _mm256_and_si256(wb, m3);
        const __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(wb, 2), m3);
        const __m256i c2 = _mm256_and_si256(_mm256_srli_epi16(wb, 4), m3);
        const __m256i c3 = _mm256_and_si256(_mm256_srli_epi16(wb, 6), m3);
        for (int t = 0; t < kT; ++t) {
          const __m256i* qb = reinterpret_cast<const __m256i*>(qs[t] + b * 256 + h * 32);
          __m256i p = _mm256_maddubs_epi16(c0, _mm256_loadu_si256(qb));
          p = _mm256_add_epi16(p, _mm256_maddubs_epi16(c1, _mm256_loadu_si256(qb + 2)));
          p = _mm256_add_epi16(p, _mm256_maddubs_epi16(c2, _mm256_loadu_si256(qb + 4)));
          p = _mm256_add_epi16(p, _mm256_maddubs_epi16(c3, _mm256_loadu_si256(qb + 6)));
          acc[r][t] = _mm256_add_epi32(acc[r][t], _mm256_madd_epi16(p, one16));
        }
      }
    }
  }
  for (int r = 0; r < kR; ++r) {
    for (int t = 0; t < kT; ++t) {
      const __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(acc[r][t]),
                                       _mm256_extracti128_si256(acc[r][t], 1));
      const __m128i s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
      const __m128i s1 = _mm_add_epi32(s2, _mm_shuffle_epi32(s2, 1));
      y[(n0 + t) * ldy + i0 + r] = _mm_cvtsi128_si32(s1) - a.sum(n0 + t);
    }
  }
}

void mad2b_gemm_i32_avx2(const TernaryMatrix2b& w, const ActivationsQ8& a, std::int32_t* y,
                         std::int64_t ldy) {
  mad2b_for_tiles<2>(w.rows(), a.tokens(), [&]<int kR, int kT>(std::int64_t i0, std::int64_t n0) {
    mad2b_tile_avx2<kR, kT>(w, a, i0, n0, y, ldy);
  });
}

void gemm_f32_avx2(std::int64_t M, std::int64_t N, std::int64_t K, const float* A,
                   std::int64_t lda, const float* B, std::int64_t ldb, bool b_trans, float* C,
                   std::int64_t ldc, bool accumulate) {
  gemm_f32_tiled<8, 4>(M, N, K, A, lda, B, ldb, b_trans, C, ldc, accumulate);
}

}  // namespace

const IsaKernels& isa_kernels_avx2() {
  static const IsaKernels k{lut_table_build_avx2, lut_gemm_i32_avx2, mad2b_gemm_i32_avx2,
                            nullptr, gemm_f32_avx2};
  return k;
}

}  // namespace wm::kernels::detail
