#include "wafermesh/kernels/fp32_tile.hpp"

#include <algorithm>

#include "wafermesh/kernels/cpu_dispatch.hpp"

namespace wm::kernels {

namespace detail {
using TileFn = void (*)(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t, const float*,
                        std::int64_t, bool, float*, std::int64_t, bool);
void gemm_f32_tile_scalar(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t, const float*,
                          std::int64_t, bool, float*, std::int64_t, bool);
void gemm_f32_tile_avx2(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t, const float*,
                        std::int64_t, bool, float*, std::int64_t, bool);
void gemm_f32_tile_avx512(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t, const float*,
                          std::int64_t, bool, float*, std::int64_t, bool);
using PanelFn = void (*)(std::int64_t, std::int64_t, const float*, const float*, float*, bool);
void gemv_f32_panels_scalar(std::int64_t, std::int64_t, const float*, const float*, float*, bool);
void gemv_f32_panels_avx2(std::int64_t, std::int64_t, const float*, const float*, float*, bool);
void gemv_f32_panels_avx512(std::int64_t, std::int64_t, const float*, const float*, float*, bool);
}  // namespace detail

void gemm_f32_tile(std::int64_t M, std::int64_t N, std::int64_t K, const float* A, std::int64_t lda,
                   const float* B, std::int64_t ldb, bool b_trans, float* C, std::int64_t ldc, bool accumulate) {
  detail::TileFn fn = detail::gemm_f32_tile_scalar;
  switch (isa_active()) {
    case Isa::isa_avx512: fn = detail::gemm_f32_tile_avx512; break;
    case Isa::isa_avx2: fn = detail::gemm_f32_tile_avx2; break;
    case Isa::isa_scalar: break;
  }
  fn(M, N, K, A, lda, B, ldb, b_trans, C, ldc, accumulate);
}

void pack_f32_panels(std::int64_t M, std::int64_t K, const float* A, std::int64_t lda, float* out) {
  // Rows r0 .. r0 + w - 1 column by column at out + r0 K: the groups of 64, then panels of <= 16.
  auto panel = [&](std::int64_t r0, std::int64_t w) {
    float* dst = out + r0 * K;
    for (std::int64_t k = 0; k < K; ++k)
      for (std::int64_t r = 0; r < w; ++r) dst[k * w + r] = A[(r0 + r) * lda + k];
  };
  const std::int64_t tail = M / 64 * 64;
  for (std::int64_t r0 = 0; r0 < tail; r0 += 64) panel(r0, 64);
  for (std::int64_t r0 = tail; r0 < M; r0 += 16) panel(r0, std::min<std::int64_t>(16, M - r0));
}

void gemv_f32_panels(std::int64_t M, std::int64_t K, const float* A, const float* x, float* y, bool accumulate) {
  detail::PanelFn fn = detail::gemv_f32_panels_scalar;
  switch (isa_active()) {
    case Isa::isa_avx512: fn = detail::gemv_f32_panels_avx512; break;
    case Isa::isa_avx2: fn = detail::gemv_f32_panels_avx2; break;
    case Isa::isa_scalar: break;
  }
  fn(M, K, A, x, y, accumulate);
}

void gemv_f32_panels_mt(std::int64_t M, std::int64_t K, const float* Ap, const float* x, float* y, bool accumulate) {
  constexpr std::int64_t kChunks = 64;  // several per thread: even shares for any thread count
  const std::int64_t groups = (M + 63) / 64;
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < kChunks; ++c) {
    const std::int64_t r0 = groups * c / kChunks * 64, r1 = std::min(M, groups * (c + 1) / kChunks * 64);
    if (r1 > r0) gemv_f32_panels(r1 - r0, K, Ap + r0 * K, x, y + r0, accumulate);
  }
}

}  // namespace wm::kernels
