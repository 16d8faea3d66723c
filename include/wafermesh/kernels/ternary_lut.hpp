#pragma once
// Lookup-table ternary kernels on TernaryMatrixLut (pack.hpp) with per-token LutTables
// (activations.hpp). Each row does one table lookup and one conditional negate per three weights.
//
// Exactness: every result is the exact integer dot product, identical bit for bit at every ISA level
// and thread count and equal to lut_gemm_i32_ref and ternary_gemm_i32_naive, for any int8
// activations (including -128) and K < 2^24 (|y| <= 128 K < 2^31).
//
// Work split: OpenMP over tiles of 64 rows (static schedule). Decode (N = 1, AVX-512) gives each
// thread a contiguous run of tiles and reads its two halves as two interleaved record streams; prefill (N > 1) takes four tiles per step, loops the
// tokens inside blocks of 64 record pairs, so a step's weights are read from memory once per call
// however many tokens there are and each table block is shared by the four tiles. Tables are
// built once per token before the call (LutTables) and only read by the kernel.
#include <cstdint>

#include "wafermesh/kernels/activations.hpp"
#include "wafermesh/kernels/pack.hpp"

namespace wm::kernels {

// y: (N, M) int32, row stride ldy >= M; y[n, i] = sum_k W[i, k] q[n, k]. N = t.tokens().
void lut_gemm_i32(const TernaryMatrixLut& w, const LutTables& t, std::int32_t* y, std::int64_t ldy);
// Decode: one token. t must hold exactly one token. y: (M).
void lut_gemv_i32(const TernaryMatrixLut& w, const LutTables& t, std::int32_t* y);
// Decode from int8 activations, table build included: t is resized to one token and filled with
// a's tables (reusable afterwards, e.g. by another matrix with the same input). At the AVX-512
// level each thread builds the whole table for itself (the first into t) and runs its own tiles
// against it; when there are fewer than two tiles per thread, each builds and applies its share of
// the groups to every row instead, and the int32 partial sums are added.
// a must hold one token; y: (M).
void lut_gemv_i32(const TernaryMatrixLut& w, const ActivationsQ8& a, LutTables& t, std::int32_t* y);
// BitLinear output: y[n, i] = float(dot) / s_n * gamma, applied once per row and token, in that
// order (so y is reproducible from the int32 result). y: (N, M) floats, row stride ldy.
void lut_gemm_f32(const TernaryMatrixLut& w, const LutTables& t, float* y, std::int64_t ldy);
void lut_gemv_f32(const TernaryMatrixLut& w, const LutTables& t, float* y);
// Convenience for raw int8 activations: q (N, K) row stride ldq; builds the tables, then as above.
void lut_gemm_i32(const TernaryMatrixLut& w, const std::int8_t* q, std::int64_t N, std::int64_t ldq,
                  std::int32_t* y, std::int64_t ldy);

// Reference: plain scalar, one thread. Builds tables with lut_table_build_ref, then for every
// token, row and group decodes nibble and sign from the packed records and adds +-table[|v|] in
// int32. q: (N, K) row stride ldq. y: (N, M) row stride ldy.
void lut_gemm_i32_ref(const TernaryMatrixLut& w, const std::int8_t* q, std::int64_t N,
                      std::int64_t ldq, std::int32_t* y, std::int64_t ldy);

}  // namespace wm::kernels
