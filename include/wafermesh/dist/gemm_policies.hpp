#pragma once
// Element policies of the distributed GEMM: tile sizes, how a PE's tiles are cut from the global
// operands, and the local block product (a kernels call). Internal to src/dist.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "wafermesh/dist/gemm.hpp"
#include "wafermesh/kernels/fp32_gemm.hpp"
#include "wafermesh/kernels/fp32_tile.hpp"
#include "wafermesh/kernels/activations.hpp"
#include "wafermesh/kernels/pack.hpp"
#include "wafermesh/kernels/ternary_lut.hpp"
#include "wafermesh/noc/cost_model.hpp"

namespace wm::dist {

struct GemmTiling {
  int32_t P;
  int64_t M, K, N;
  int64_t mt, kt, nt;  // tile sides: ceil(M/P), ceil(K/P), ceil(N/P)
  bool tb;
  bool compute;        // false: timing only (products charged, not computed)
  explicit GemmTiling(const GemmSpec& s)
      : P(s.P), M(s.M), K(s.K), N(s.N), mt((s.M + s.P - 1) / s.P), kt((s.K + s.P - 1) / s.P),
        nt((s.N + s.P - 1) / s.P), tb(s.transpose_b), compute(s.compute) {}
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
  static constexpr Work work = Work::fp;  // the block product's kind of work (cost_model.hpp)
  explicit F32Policy(const GemmSpec& s) : GemmTiling(s) {}
  size_t b_elems() const { return size_t(kt * nt); }
  uint64_t b_wafer_bytes(const MachineParams& mp) const { return b_elems() * mp.wafer_fp_bytes(); }
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
  // Tiles of a few multiply-accumulates (a large region of a small matrix): the same product
  // inline, in gemm_f32_ref's order (acc = 0; acc = acc + a_k b_k for k ascending; c = c + acc),
  // which every kernel variant follows bit for bit, without a call per PE.
  bool small() const { return macs() <= 64; }
  void mul_small(const float* a, const float* b, float* c, bool accumulate) const {
    for (int64_t i = 0; i < mt; ++i)
      for (int64_t j = 0; j < nt; ++j) {
        float acc = 0.0f;
        for (int64_t k = 0; k < kt; ++k) acc = acc + a[i * kt + k] * (tb ? b[j * kt + k] : b[k * nt + j]);
        c[i * nt + j] = accumulate ? c[i * nt + j] + acc : acc;
      }
  }
};

// int8 activations x ternary weights, exact int32. A B tile travels as the serialized lookup-table
// packing of W = (B block)^T, nt x kt (~1.67 bits per weight) on the host, and is charged as the
// nt x kt weights in wafer.ternary_format on the wafer (SRAM and wire): the rows of W are C's columns, so
// C (mt x nt) += A (mt x kt) . W^T is the LUT kernel with the mt rows of A as tokens. For C = A B^T
// the B block (nt x kt) is W itself; for C = A B it is transposed once, when the tiles are cut
// from the global matrix (a storage choice, not part of the algorithm).
struct TernaryPolicy : GemmTiling {
  using GA = int8_t;
  using GB = int8_t;
  using TA = int8_t;
  using TB = uint8_t;
  using TC = int32_t;
  static constexpr Work work = Work::ternary;
  explicit TernaryPolicy(const GemmSpec& s) : GemmTiling(s) {}
  size_t b_elems() const { return size_t(kernels::TernaryMatrixLut::serialized_bytes(nt, kt)); }
  uint64_t b_wafer_bytes(const MachineParams& mp) const { return mp.wafer_ternary_bytes(uint64_t(nt * kt)); }
  void load_a(const int8_t* A, int32_t r, int32_t c, int8_t* t) const { load_block(A, M, K, r, c, mt, kt, t); }
  void load_b(const int8_t* B, int32_t r, int32_t c, uint8_t* t) const {
    std::vector<int8_t> w(size_t(nt * kt));  // (nt, kt)
    if (tb) {
      load_block(B, N, K, r, c, nt, kt, w.data());
    } else {
      std::vector<int8_t> blk(size_t(kt * nt));  // (kt, nt)
      load_block(B, K, N, r, c, kt, nt, blk.data());
      for (int64_t k = 0; k < kt; ++k)
        for (int64_t j = 0; j < nt; ++j) w[size_t(j * kt + k)] = blk[size_t(k * nt + j)];
    }
    kernels::TernaryMatrixLut::from_int8(w.data(), nt, kt, kt).serialize(t);
  }
  void store_c(const int32_t* t, int32_t r, int32_t c, int32_t* C) const { store_block(t, M, N, r, c, mt, nt, C); }
  void mul(const int8_t* a, const uint8_t* b, int32_t* c, bool accumulate) const {
    const kernels::TernaryMatrixLut w = kernels::TernaryMatrixLut::deserialize(b, nt, kt);
    const kernels::LutTables tables = kernels::LutTables::from_int8(a, mt, kt, kt);
    std::vector<int32_t> y(size_t(mt * nt));  // (mt, nt)
    kernels::lut_gemm_i32(w, tables, y.data(), nt);
    for (size_t i = 0; i < y.size(); ++i) c[i] = accumulate ? c[i] + y[i] : y[i];
  }
};

}  // namespace wm::dist
