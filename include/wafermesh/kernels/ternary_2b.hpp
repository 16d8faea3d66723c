#pragma once
// Multiply-add ternary kernels on TernaryMatrix2b (pack.hpp): dot = sum (w+1) q - sum q, with the
// unsigned codes (w+1) in {0,1,2} as the u8 operand of maddubs (AVX2) or vpdpbusd (AVX512-VNNI).
// The second fast path and the comparison point for the lookup-table kernels.
//
// Exact and bit-identical at every ISA level and thread count (see ternary_lut.hpp).
// Work split: OpenMP over blocks of rows (static schedule); tokens are looped inside a row block,
// 4 at a time, so each row's codes are read from memory once per call.
#include <cstdint>

#include "wafermesh/kernels/activations.hpp"
#include "wafermesh/kernels/pack.hpp"

namespace wm::kernels {

// y: (N, M) int32, row stride ldy >= M. a.cols() must equal w.cols().
void mad2b_gemm_i32(const TernaryMatrix2b& w, const ActivationsQ8& a, std::int32_t* y,
                    std::int64_t ldy);
// One token; y: (M).
void mad2b_gemv_i32(const TernaryMatrix2b& w, const ActivationsQ8& a, std::int32_t* y);
// y[n, i] = float(dot) / s_n * gamma (see lut_gemm_f32).
void mad2b_gemm_f32(const TernaryMatrix2b& w, const ActivationsQ8& a, float* y, std::int64_t ldy);
void mad2b_gemv_f32(const TernaryMatrix2b& w, const ActivationsQ8& a, float* y);

// Reference: plain scalar, one thread, decodes the packed codes: y = sum code*q - sum q.
// q: (N, K) row stride ldq. y: (N, M) row stride ldy.
void mad2b_gemm_i32_ref(const TernaryMatrix2b& w, const std::int8_t* q, std::int64_t N,
                        std::int64_t ldq, std::int32_t* y, std::int64_t ldy);

}  // namespace wm::kernels
