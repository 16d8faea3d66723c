#pragma once
// Internal: the body of gemm_f32_tile, included by one translation unit per ISA level (compiled
// with that level's -m flags; GCC vector extensions pick the register width). Internal linkage,
// so instantiations for different levels never merge.
//
// Register tile: kMr rows x kNvT vectors of kLanes columns. Vector lanes hold different output
// columns, so no element's summation order changes. B is read in place when it is (K, N) and the
// column block is full; otherwise (B^T, or the last ragged block) it is packed into a (K, 2*kLanes)
// panel held per thread and reused across calls.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace wm::kernels::detail {
namespace {

template <int kLanes, int kMr, int kNvT = 2>
void gemm_f32_tile_body(std::int64_t M, std::int64_t N, std::int64_t K, const float* A, std::int64_t lda,
                        const float* B, std::int64_t ldb, bool b_trans, float* C, std::int64_t ldc,
                        bool accumulate) {
  typedef float vec __attribute__((vector_size(sizeof(float) * kLanes)));
  constexpr int kNv = kNvT;
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


// Panel weights are fp32 or bf16 (gemv_bf16_panels: the upper halves of floats, widened exactly).
typedef float vec16 __attribute__((vector_size(sizeof(float) * 16)));
inline float widen(float v) { return v; }
inline float widen(std::uint16_t b) {
  const std::uint32_t u = std::uint32_t(b) << 16;
  float v;
  std::memcpy(&v, &u, sizeof(v));
  return v;
}
// (Results through a reference: returning a 64-byte vector by value below AVX-512 draws -Wpsabi.)
inline void load16(vec16& a, const float* p) { std::memcpy(&a, p, sizeof(a)); }
inline void load16(vec16& a, const std::uint16_t* p) {
  typedef std::uint16_t half16 __attribute__((vector_size(2 * 16)));
  typedef std::uint32_t word16 __attribute__((vector_size(4 * 16)));
  half16 h;
  std::memcpy(&h, p, sizeof(h));
  const word16 u = __builtin_convertvector(h, word16) << 16;
  std::memcpy(&a, &u, sizeof(a));
}

// gemv_f32_panels (fp32_tile.hpp), tail rows: NP panels of `group` at once, so NP independent
// add chains hide the add latency. Lanes are rows; each row's sum runs over k in ascending order.
template <int NP, class W>
void gemv_f32_panel_group(std::int64_t M, std::int64_t K, const W* A, std::int64_t p0, const float* x,
                          float* y, bool accumulate) {
  typedef vec16 vec;
  constexpr std::int64_t kW = 16;
  const W* base[NP];
  std::int64_t w[NP];
  // A panel narrower than 16 is read with 16-wide loads too (the extra lanes take the next
  // column's values and are dropped); the last columns, where such a load would pass the end of
  // the panel, run lane by lane.
  std::int64_t kv = K;
  for (int j = 0; j < NP; ++j) {
    const std::int64_t p = p0 + j;
    w[j] = std::min(kW, M - p * kW);
    base[j] = A + p * kW * K;
    kv = std::min(kv, std::max<std::int64_t>(0, K - (kW + w[j] - 1) / w[j] + 1));
  }
  vec acc[NP] = {};
  for (std::int64_t k = 0; k < kv; ++k) {
    const float xk = x[k];
    for (int j = 0; j < NP; ++j) {
      vec a;
      load16(a, base[j] + k * w[j]);
      acc[j] = acc[j] + a * xk;
    }
  }
  float out[NP][kW];
  std::memcpy(out, acc, sizeof(out));
  for (std::int64_t k = kv; k < K; ++k)
    for (int j = 0; j < NP; ++j)
      for (std::int64_t r = 0; r < w[j]; ++r) out[j][r] = out[j][r] + widen(base[j][k * w[j] + r]) * x[k];
  for (int j = 0; j < NP; ++j)
    for (std::int64_t r = 0; r < w[j]; ++r) {
      float* yi = y + (p0 + j) * kW + r;
      *yi = accumulate ? *yi + out[j][r] : out[j][r];
    }
}

// gemv_f32_panels, full groups: 64 rows stored k by k (64 floats per column), so a group is one
// sequential stream. Four 16-lane chains, same per-row order as above.
inline void gemv_f32_row_group(std::int64_t K, const float* A, const float* x, float* y, bool accumulate) {
  vec16 acc[4] = {};
  for (std::int64_t k = 0; k < K; ++k) {
    const float xk = x[k];
    for (int j = 0; j < 4; ++j) {
      vec16 a;
      load16(a, A + k * 64 + j * 16);
      acc[j] = acc[j] + a * xk;
    }
  }
  float out[64];
  std::memcpy(out, acc, sizeof(out));
  for (int r = 0; r < 64; ++r) y[r] = accumulate ? y[r] + out[r] : out[r];
}

// The same on bf16 groups, whose 64 values per column come as two runs of 32 with rows j and
// j + 16 interleaved (pack_bf16_panels): a run read as 16 words gives rows j (low halves, shifted
// up) and rows j + 16 (high halves, masked), two integer operations per 32 weights.
inline void gemv_f32_row_group(std::int64_t K, const std::uint16_t* A, const float* x, float* y, bool accumulate) {
  typedef std::uint32_t word16 __attribute__((vector_size(4 * 16)));
  vec16 acc[4] = {};
  for (std::int64_t k = 0; k < K; ++k) {
    const float xk = x[k];
    for (int h = 0; h < 2; ++h) {
      word16 u;
      std::memcpy(&u, A + k * 64 + h * 32, sizeof(u));
      const word16 lo = u << 16, hi = u & 0xFFFF0000u;
      vec16 a, b;
      std::memcpy(&a, &lo, sizeof(a));
      std::memcpy(&b, &hi, sizeof(b));
      acc[2 * h] = acc[2 * h] + a * xk;
      acc[2 * h + 1] = acc[2 * h + 1] + b * xk;
    }
  }
  float out[64];
  std::memcpy(out, acc, sizeof(out));
  for (int r = 0; r < 64; ++r) y[r] = accumulate ? y[r] + out[r] : out[r];
}

template <class W>
inline void gemv_f32_panels_body(std::int64_t M, std::int64_t K, const W* A, const float* x, float* y,
                                 bool accumulate) {
  const std::int64_t groups = M / 64;
  for (std::int64_t g = 0; g < groups; ++g) gemv_f32_row_group(K, A + g * 64 * K, x, y + g * 64, accumulate);
  // The rows after the last full group are a panel layout of their own (at most four panels).
  const std::int64_t r0 = groups * 64;
  const std::int64_t Mt = M - r0;
  const W* At = A + r0 * K;
  float* yt = y + r0;
  switch ((Mt + 15) / 16) {
    case 4: gemv_f32_panel_group<4>(Mt, K, At, 0, x, yt, accumulate); break;
    case 3: gemv_f32_panel_group<3>(Mt, K, At, 0, x, yt, accumulate); break;
    case 2: gemv_f32_panel_group<2>(Mt, K, At, 0, x, yt, accumulate); break;
    case 1: gemv_f32_panel_group<1>(Mt, K, At, 0, x, yt, accumulate); break;
    default: break;
  }
}

}  // namespace
}  // namespace wm::kernels::detail
