#pragma once
// Internal: the body of gemm_f32_tile, included by one translation unit per ISA level (compiled
// with that level's -m flags; GCC vector extensions pick the register width). Internal linkage,
// so instantiations for different levels never merge.
//
// Register tile: kMr rows x 2 vectors of kLanes columns. Vector lanes hold different output
// columns, so no element's summation order changes. B is read in place when it is (K, N) and the
// column block is full; otherwise (B^T, or the last ragged block) it is packed into a (K, 2*kLanes)
// panel held per thread and reused across calls.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace wm::kernels::detail {
namespace {

template <int kLanes, int kMr>
void gemm_f32_tile_body(std::int64_t M, std::int64_t N, std::int64_t K, const float* A, std::int64_t lda,
                        const float* B, std::int64_t ldb, bool b_trans, float* C, std::int64_t ldc,
                        bool accumulate) {
  typedef float vec __attribute__((vector_size(sizeof(float) * kLanes)));
  constexpr int kNv = 2;
  constexpr std::int64_t kNr = kNv * kLanes;
  if (M <= 0 || N <= 0) return;
  thread_local std::vector<float> panel;  // (K, kNr)
  for (std::int64_t j0 = 0; j0 < N; j0 += kNr) {
    const std::int64_t nr = std::min(kNr, N - j0);
    const float* bp;
    std::int64_t bstride;
    if (!b_trans && nr == kNr) {
      bp = B + j0;
      bstride = ldb;
    } else {
      panel.resize(static_cast<std::size_t>(std::max<std::int64_t>(K, 1) * kNr));
      for (std::int64_t k = 0; k < K; ++k)
        for (std::int64_t jj = 0; jj < kNr; ++jj)
          panel[static_cast<std::size_t>(k * kNr + jj)] =
              jj < nr ? (b_trans ? B[(j0 + jj) * ldb + k] : B[k * ldb + j0 + jj]) : 0.0f;
      bp = panel.data();
      bstride = kNr;
    }
    for (std::int64_t i0 = 0; i0 < M; i0 += kMr) {
      const std::int64_t mr = std::min<std::int64_t>(kMr, M - i0);
      const float* arow[kMr];  // rows past M re-read the last row; their results are dropped
      for (int r = 0; r < kMr; ++r) arow[r] = A + (i0 + std::min<std::int64_t>(r, mr - 1)) * lda;
      vec acc[kMr][kNv] = {};
      for (std::int64_t k = 0; k < K; ++k) {
        vec b[kNv];
        for (int v = 0; v < kNv; ++v) std::memcpy(&b[v], bp + k * bstride + v * kLanes, sizeof(vec));
        for (int r = 0; r < kMr; ++r) {
          const float a = arow[r][k];
          for (int v = 0; v < kNv; ++v) acc[r][v] = acc[r][v] + a * b[v];
        }
      }
      for (std::int64_t r = 0; r < mr; ++r) {
        float* c = C + (i0 + r) * ldc + j0;
        if (nr == kNr) {
          for (int v = 0; v < kNv; ++v) {
            vec out = acc[r][v];
            if (accumulate) {
              vec old;
              std::memcpy(&old, c + v * kLanes, sizeof(vec));
              out = old + out;
            }
            std::memcpy(c + v * kLanes, &out, sizeof(vec));
          }
        } else {
          float out[kNr];
          std::memcpy(out, acc[r], sizeof(out));
          for (std::int64_t jj = 0; jj < nr; ++jj) c[jj] = accumulate ? c[jj] + out[jj] : out[jj];
        }
      }
    }
  }
}

}  // namespace
}  // namespace wm::kernels::detail
