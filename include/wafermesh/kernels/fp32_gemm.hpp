#pragma once
// fp32 GEMM / GEMV for non-ternary models and for the distributed algorithms' local tiles.
// Row-major throughout.
//
// Summation order (fixed, documented, relied on by bitwise comparisons):
//   every output element is  acc = 0.0f;  for k = 0, 1, ..., K-1:  acc = acc + a_k * b_k;
//   then  C = acc  (accumulate = false)  or  C = C + acc  (accumulate = true),
//   with every product and every sum rounded to fp32 (no FMA contraction, no reassociation).
// The fast kernels keep exactly this order: they vectorise across output columns (or rows for
// GEMV), never across k. So gemm_f32 == gemm_f32_ref bit for bit, at every ISA level and thread
// count; threads only split the set of output elements.
#include <cstdint>

namespace wm::kernels {

// C (M, N), ldc  {=, +=}  A (M, K), lda  .  B (K, N), ldb
void gemm_f32(std::int64_t M, std::int64_t N, std::int64_t K, const float* A, std::int64_t lda,
              const float* B, std::int64_t ldb, float* C, std::int64_t ldc, bool accumulate);
void gemm_f32_ref(std::int64_t M, std::int64_t N, std::int64_t K, const float* A, std::int64_t lda,
                  const float* B, std::int64_t ldb, float* C, std::int64_t ldc, bool accumulate);

// C (M, N), ldc  {=, +=}  A (M, K), lda  .  B^T,  B (N, K), ldb
void gemm_f32_abt(std::int64_t M, std::int64_t N, std::int64_t K, const float* A, std::int64_t lda,
                  const float* B, std::int64_t ldb, float* C, std::int64_t ldc, bool accumulate);
void gemm_f32_abt_ref(std::int64_t M, std::int64_t N, std::int64_t K, const float* A,
                      std::int64_t lda, const float* B, std::int64_t ldb, float* C,
                      std::int64_t ldc, bool accumulate);

// y (M) {=, +=} A (M, K), lda . x (K)
void gemv_f32(std::int64_t M, std::int64_t K, const float* A, std::int64_t lda, const float* x,
              float* y, bool accumulate);
void gemv_f32_ref(std::int64_t M, std::int64_t K, const float* A, std::int64_t lda, const float* x,
                  float* y, bool accumulate);

}  // namespace wm::kernels
