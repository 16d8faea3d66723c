#include "wafermesh/kernels/fp32_tile.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

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
using Bf16PanelFn = void (*)(std::int64_t, std::int64_t, const std::uint16_t*, const float*, float*, bool);
void gemv_bf16_panels_scalar(std::int64_t, std::int64_t, const std::uint16_t*, const float*, float*, bool);
void gemv_bf16_panels_avx2(std::int64_t, std::int64_t, const std::uint16_t*, const float*, float*, bool);
void gemv_bf16_panels_avx512(std::int64_t, std::int64_t, const std::uint16_t*, const float*, float*, bool);

namespace {
std::uint32_t bits_of(float v) {
  std::uint32_t u;
  std::memcpy(&u, &v, sizeof(u));
  return u;
}
// Rows r0 .. r0 + w - 1 of A column by column at out + r0 K, each value through `conv`: the groups
// of 64 (row c of a group at slot group_slot(c) of its column), then panels of <= 16.
template <class W, class Conv, class Slot>
void pack_panels(std::int64_t M, std::int64_t K, const float* A, std::int64_t lda, W* out, Conv conv,
                 Slot group_slot) {
  auto panel = [&](std::int64_t r0, std::int64_t w) {
    W* dst = out + r0 * K;
    for (std::int64_t k = 0; k < K; ++k)
      for (std::int64_t r = 0; r < w; ++r) dst[k * w + (w == 64 ? group_slot(r) : r)] = conv(A[(r0 + r) * lda + k]);
  };
  const std::int64_t tail = M / 64 * 64;
  for (std::int64_t r0 = 0; r0 < tail; r0 += 64) panel(r0, 64);
  for (std::int64_t r0 = tail; r0 < M; r0 += 16) panel(r0, std::min<std::int64_t>(16, M - r0));
}
// Threads over chunks of whole 64-row groups (the tail rows stay one chunk's, as one call's).
template <class W, class Fn>
void panels_mt(std::int64_t M, std::int64_t K, const W* Ap, const float* x, float* y, bool accumulate, Fn fn) {
  constexpr std::int64_t kChunks = 64;  // several per thread: even shares for any thread count
  const std::int64_t groups = (M + 63) / 64;
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < kChunks; ++c) {
    const std::int64_t r0 = groups * c / kChunks * 64, r1 = std::min(M, groups * (c + 1) / kChunks * 64);
    if (r1 > r0) fn(r1 - r0, K, Ap + r0 * K, x, y + r0, accumulate);
  }
}
}  // namespace
}  // namespace detail

void gemm_f32_tile(std::int64_t M, std::int64_t N, std::int64_t K, const float* A, std::int64_t lda,
                   const float* B, std::int64_t ldb, bool b_trans, float* C, std::int64_t ldc, bool accumulate) {
  const detail::TileFn fn =
      by_isa<detail::TileFn>(detail::gemm_f32_tile_scalar, detail::gemm_f32_tile_avx2, detail::gemm_f32_tile_avx512);
  fn(M, N, K, A, lda, B, ldb, b_trans, C, ldc, accumulate);
}

void pack_f32_panels(std::int64_t M, std::int64_t K, const float* A, std::int64_t lda, float* out) {
  detail::pack_panels(M, K, A, lda, out, [](float v) { return v; }, [](std::int64_t c) { return c; });
}

bool bf16_exact(std::int64_t M, std::int64_t K, const float* A, std::int64_t lda) {
  std::uint32_t low = 0;
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t k = 0; k < K; ++k) low |= detail::bits_of(A[i * lda + k]) & 0xFFFFu;
  return low == 0;
}

void pack_bf16_panels(std::int64_t M, std::int64_t K, const float* A, std::int64_t lda, std::uint16_t* out) {
  detail::pack_panels(M, K, A, lda, out, [](float v) {
    const std::uint32_t u = detail::bits_of(v);
    if (u & 0xFFFFu) throw std::invalid_argument("pack_bf16_panels: a value is not exact in bf16");
    return std::uint16_t(u >> 16);
  }, [](std::int64_t c) {  // runs of 32: rows j and j + 16 side by side
    const std::int64_t run = c / 32, r = c % 32;
    return run * 32 + (r < 16 ? 2 * r : 2 * (r - 16) + 1);
  });
}

void gemv_f32_panels(std::int64_t M, std::int64_t K, const float* A, const float* x, float* y, bool accumulate) {
  const detail::PanelFn fn = by_isa<detail::PanelFn>(detail::gemv_f32_panels_scalar, detail::gemv_f32_panels_avx2,
                                                      detail::gemv_f32_panels_avx512);
  fn(M, K, A, x, y, accumulate);
}

void gemv_f32_panels_mt(std::int64_t M, std::int64_t K, const float* Ap, const float* x, float* y, bool accumulate) {
  detail::panels_mt(M, K, Ap, x, y, accumulate, gemv_f32_panels);
}

void gemv_bf16_panels(std::int64_t M, std::int64_t K, const std::uint16_t* Ap, const float* x, float* y,
                      bool accumulate) {
  const detail::Bf16PanelFn fn = by_isa<detail::Bf16PanelFn>(
      detail::gemv_bf16_panels_scalar, detail::gemv_bf16_panels_avx2, detail::gemv_bf16_panels_avx512);
  fn(M, K, Ap, x, y, accumulate);
}

void gemv_bf16_panels_mt(std::int64_t M, std::int64_t K, const std::uint16_t* Ap, const float* x, float* y,
                         bool accumulate) {
  detail::panels_mt(M, K, Ap, x, y, accumulate, gemv_bf16_panels);
}

}  // namespace wm::kernels
