// ISA level "scalar": portable C++ (base x86-64 flags). Same algorithms and work split as the SIMD
// levels, int32 accumulation throughout (no int16 partial sums to bound).
#include <algorithm>
#include <vector>

#include "fp32_gemm_impl.hpp"
#include "isa_kernels.hpp"

namespace wm::kernels::detail {
namespace {

void lut_gemm_i32_scalar(const TernaryMatrixLut& w, const LutTables& t, std::int32_t* y,
                         std::int64_t ldy) {
  constexpr std::int64_t kRows = TernaryMatrixLut::kTileRows, kRec = TernaryMatrixLut::kRecordBytes;
  constexpr std::int64_t kPairBlock = 32;  // pairs whose records stay in L1 while tokens loop
  const std::int64_t M = w.rows(), P = w.pairs(), N = t.tokens();
#pragma omp parallel
  {
    std::vector<std::int32_t> acc(static_cast<std::size_t>(N * kRows));  // (N, 64)
#pragma omp for schedule(static)
    for (std::int64_t ti = 0; ti < w.tiles(); ++ti) {
      std::fill(acc.begin(), acc.end(), 0);
      const std::uint8_t* tile = w.tile(ti);
      for (std::int64_t p0 = 0; p0 < P; p0 += kPairBlock) {
        const std::int64_t p1 = std::min(P, p0 + kPairBlock);
        for (std::int64_t n = 0; n < N; ++n) {
          std::int32_t* a = acc.data() + n * kRows;
          for (std::int64_t p = p0; p < p1; ++p) {
            const std::uint8_t* rec = tile + p * kRec;
            const std::uint8_t* tab = t.token(n) + p * LutTables::kPairBytes;
            for (int h = 0; h < 2; ++h) {
              const std::uint8_t* lo = tab + 32 * h;
              for (int r = 0; r < kRows; ++r) {
                const int e = TernaryMatrixLut::record_magnitude(rec, h, r);
                const std::int32_t v = static_cast<std::int16_t>(lo[e] | (lo[LutTables::kHighOffset + e] << 8));
                a[r] += TernaryMatrixLut::record_negative(rec, h, r) ? -v : v;
              }
            }
          }
        }
      }
      for (std::int64_t n = 0; n < N; ++n) {
        for (std::int64_t r = 0; r < kRows && ti * kRows + r < M; ++r) {
          y[n * ldy + ti * kRows + r] = acc[static_cast<std::size_t>(n * kRows + r)];
        }
      }
    }
  }
}

void mad2b_gemm_i32_scalar(const TernaryMatrix2b& w, const ActivationsQ8& a, std::int32_t* y,
                           std::int64_t ldy) {
  const std::int64_t M = w.rows(), N = a.tokens(), blocks = w.padded_cols() / 256;
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < M; ++i) {
    const std::uint8_t* row = w.row(i);
    for (std::int64_t n = 0; n < N; ++n) {
      const std::int8_t* q = a.token(n);
      std::int32_t acc = 0;
      for (std::int64_t b = 0; b < blocks; ++b) {
        for (int j = 0; j < 64; ++j) {
          const int c = row[b * 64 + j];
          const std::int8_t* qb = q + b * 256 + j;
          acc += (c & 3) * qb[0] + ((c >> 2) & 3) * qb[64] + ((c >> 4) & 3) * qb[128] +
                 ((c >> 6) & 3) * qb[192];
        }
      }
      y[n * ldy + i] = acc - a.sum(n);
    }
  }
}

void gemm_f32_scalar(std::int64_t M, std::int64_t N, std::int64_t K, const float* A,
                     std::int64_t lda, const float* B, std::int64_t ldb, bool b_trans, float* C,
                     std::int64_t ldc, bool accumulate) {
  gemm_f32_tiled<4, 4>(M, N, K, A, lda, B, ldb, b_trans, C, ldc, accumulate);
}

}  // namespace

const IsaKernels& isa_kernels_scalar() {
  static const IsaKernels k{lut_table_build_ref, lut_gemm_i32_scalar, mad2b_gemm_i32_scalar,
                            nullptr, gemm_f32_scalar};
  return k;
}

}  // namespace wm::kernels::detail
