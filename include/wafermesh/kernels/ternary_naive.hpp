#pragma once
// Ground truth for every ternary kernel: the plain int8 x int8 dot product, int32 accumulation,
// no packing, no tables. Frozen; single thread.
#include <cstdint>

namespace wm::kernels {

// w: (M, K) int8, row stride ldw.  q: (N, K) int8, row stride ldq.
// y: (N, M) int32, row stride ldy;  y[n, i] = sum_k w[i, k] * q[n, k].
void ternary_gemm_i32_naive(const std::int8_t* w, std::int64_t M, std::int64_t K, std::int64_t ldw,
                            const std::int8_t* q, std::int64_t N, std::int64_t ldq, std::int32_t* y,
                            std::int64_t ldy);

}  // namespace wm::kernels
