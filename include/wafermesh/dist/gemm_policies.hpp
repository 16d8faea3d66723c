#pragma once
// Element policies of the distributed GEMM: tile sizes, how a PE's tiles are cut from the global
// operands, and the local block product (a kernels call). Internal to src/dist.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "wafermesh/dist/gemm.hpp"
#include "wafermesh/kernels/fp32_gemm.hpp"
#include "wafermesh/kernels/fp32_tile.hpp"

namespace wm::dist {

struct GemmTiling {
  int32_t P;
  int64_t M, K, N;
  int64_t mt, kt, nt;  // tile sides: ceil(M/P), ceil(K/P), ceil(N/P)
  bool tb;
  explicit GemmTiling(const GemmSpec& s)
      : P(s.P), M(s.M), K(s.K), N(s.N), mt((s.M + s.P - 1) / s.P), kt((s.K + s.P - 1) / s.P),
        nt((s.N + s.P - 1) / s.P), tb(s.transpose_b) {}
  size_t a_elems() const { return size_t(mt * kt); }
  size_t c_elems() const { return size_t(mt * nt); }
  uint64_t macs() const { return uint64_t(mt * kt * nt); }
};

// tile (rows x cols) = block (br, bc) of g (R x C, row-major), zero beyond the matrix.
template <class T>
void load_block(const T* g, int64_t R, int64_t C, int64_t br, int64_t bc, int64_t rows, int64_t cols, T* tile) {
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t gi = br * rows + i;
    T* out = tile + i * cols;
    const int64_t c0 = bc * cols, n = gi < R ? std::clamp<int64_t>(C - c0, 0, cols) : 0;
    if (n > 0) std::memcpy(out, g + gi * C + c0, size_t(n) * sizeof(T));
    std::fill(out + n, out + cols, T{});
  }
}

// block (br, bc) of g (R x C) = tile (rows x cols), dropping the padding.
template <class T>
void store_block(const T* tile, int64_t R, int64_t C, int64_t br, int64_t bc, int64_t rows, int64_t cols, T* g) {
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t gi = br * rows + i;
    if (gi >= R) break;
    const int64_t c0 = bc * cols, n = std::clamp<int64_t>(C - c0, 0, cols);
    if (n > 0) std::memcpy(g + gi * C + c0, tile + i * cols, size_t(n) * sizeof(T));
  }
}

struct F32Policy : GemmTiling {
  using GA = float;  // global A element
  using GB = float;  // global B element
  using TA = float;  // tile elements
  using TB = float;
  using TC = float;
  explicit F32Policy(const GemmSpec& s) : GemmTiling(s) {}
  size_t b_elems() const { return size_t(kt * nt); }
  void load_a(const float* A, int32_t r, int32_t c, float* t) const { load_block(A, M, K, r, c, mt, kt, t); }
  // B block (r, c): (kt x nt) of B (K x N), or (nt x kt) of B (N x K) when transposed.
  void load_b(const float* B, int32_t r, int32_t c, float* t) const {
    if (tb) load_block(B, N, K, r, c, nt, kt, t);
    else load_block(B, K, N, r, c, kt, nt, t);
  }
  void store_c(const float* t, int32_t r, int32_t c, float* C) const { store_block(t, M, N, r, c, mt, nt, C); }
  // c (mt x nt) {=, +=} a (mt x kt) b  or  a b^T; one thread (called per PE inside a parallel loop).
  void mul(const float* a, const float* b, float* c, bool accumulate) const {
    kernels::gemm_f32_tile(mt, nt, kt, a, kt, b, tb ? kt : nt, tb, c, nt, accumulate);
  }
};

}  // namespace wm::dist
