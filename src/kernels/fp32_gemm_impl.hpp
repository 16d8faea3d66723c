#pragma once
// Internal: the fp32 GEMM body, included by each ISA translation unit and compiled with that unit's
// -m flags (GCC vector extensions pick the register width). Everything here has internal linkage:
// the linker must never merge an AVX-512 instantiation into the scalar or AVX2 path.
//
// Order (fp32_gemm.hpp): per output element, acc = 0; acc = acc + a_k * b_k for k ascending; then
// C = acc or C = C + acc. Vector lanes hold different output columns, so vectorising changes no
// element's order; the translation units are built with -ffp-contract=off so a*b + c stays two
// roundings. B is copied into a (K, NR) panel (zero-padded columns) shared by all threads; threads
// split the rows of C.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace wm::kernels::detail {
namespace {

template <int kLanes, int kMr>
void gemm_f32_tiled(std::int64_t M, std::int64_t N, std::int64_t K, const float* A,
                    std::int64_t lda, const float* B, std::int64_t ldb, bool b_trans, float* C,
                    std::int64_t ldc, bool accumulate) {
  typedef float vec __attribute__((vector_size(sizeof(float) * kLanes)));
  constexpr int kNv = 2;                  // vectors per row of the register tile
  constexpr std::int64_t kNr = kNv * kLanes;  // columns per panel
  if (M <= 0 || N <= 0) return;
  std::vector<float> panel(static_cast<std::size_t>(std::max<std::int64_t>(K, 1) * kNr));  // (K, kNr)
  const std::int64_t row_blocks = (M + kMr - 1) / kMr;
#pragma omp parallel
  for (std::int64_t j0 = 0; j0 < N; j0 += kNr) {
    const std::int64_t nr = std::min(kNr, N - j0);
#pragma omp for schedule(static)
    for (std::int64_t k = 0; k < K; ++k) {
      for (std::int64_t jj = 0; jj < kNr; ++jj) {
        float v = 0.0f;
        if (jj < nr) v = b_trans ? B[(j0 + jj) * ldb + k] : B[k * ldb + j0 + jj];
        panel[static_cast<std::size_t>(k * kNr + jj)] = v;
      }
    }
#pragma omp for schedule(static)
    for (std::int64_t ib = 0; ib < row_blocks; ++ib) {
      const std::int64_t i0 = ib * kMr;
      const std::int64_t mr = std::min<std::int64_t>(kMr, M - i0);
      const float* arow[kMr];  // rows past M re-read the last row; their results are dropped
      for (int r = 0; r < kMr; ++r) arow[r] = A + (i0 + std::min<std::int64_t>(r, mr - 1)) * lda;
      vec acc[kMr][kNv] = {};
      const float* bp = panel.data();
      for (std::int64_t k = 0; k < K; ++k, bp += kNr) {
        vec b[kNv];
        for (int v = 0; v < kNv; ++v) std::memcpy(&b[v], bp + v * kLanes, sizeof(vec));
        for (int r = 0; r < kMr; ++r) {
          const float a = arow[r][k];
          for (int v = 0; v < kNv; ++v) acc[r][v] = acc[r][v] + a * b[v];
        }
      }
      for (std::int64_t r = 0; r < mr; ++r) {
        float out[kNr];
        std::memcpy(out, acc[r], sizeof(out));
        float* c = C + (i0 + r) * ldc + j0;
        for (std::int64_t jj = 0; jj < nr; ++jj) c[jj] = accumulate ? c[jj] + out[jj] : out[jj];
      }
    }
  }
}

}  // namespace
}  // namespace wm::kernels::detail
