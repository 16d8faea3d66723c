#include "wafermesh/kernels/fp32_gemm.hpp"

#include "isa_kernels.hpp"

namespace wm::kernels {

void gemm_f32(std::int64_t M, std::int64_t N, std::int64_t K, const float* A, std::int64_t lda,
              const float* B, std::int64_t ldb, float* C, std::int64_t ldc, bool accumulate) {
  detail::isa_kernels().gemm_f32(M, N, K, A, lda, B, ldb, false, C, ldc, accumulate);
}

void gemm_f32_abt(std::int64_t M, std::int64_t N, std::int64_t K, const float* A, std::int64_t lda,
                  const float* B, std::int64_t ldb, float* C, std::int64_t ldc, bool accumulate) {
  detail::isa_kernels().gemm_f32(M, N, K, A, lda, B, ldb, true, C, ldc, accumulate);
}

void gemm_f32_ref(std::int64_t M, std::int64_t N, std::int64_t K, const float* A, std::int64_t lda,
                  const float* B, std::int64_t ldb, float* C, std::int64_t ldc, bool accumulate) {
  for (std::int64_t i = 0; i < M; ++i) {
    for (std::int64_t j = 0; j < N; ++j) {
      float acc = 0.0f;
      for (std::int64_t k = 0; k < K; ++k) acc = acc + A[i * lda + k] * B[k * ldb + j];
      C[i * ldc + j] = accumulate ? C[i * ldc + j] + acc : acc;
    }
  }
}

void gemm_f32_abt_ref(std::int64_t M, std::int64_t N, std::int64_t K, const float* A,
                      std::int64_t lda, const float* B, std::int64_t ldb, float* C,
                      std::int64_t ldc, bool accumulate) {
  for (std::int64_t i = 0; i < M; ++i) {
    for (std::int64_t j = 0; j < N; ++j) {
      float acc = 0.0f;
      for (std::int64_t k = 0; k < K; ++k) acc = acc + A[i * lda + k] * B[j * ldb + k];
      C[i * ldc + j] = accumulate ? C[i * ldc + j] + acc : acc;
    }
  }
}

// Rows are independent serial sums (the documented order), so the only speed-up that keeps the
// order is doing several rows at once (instruction-level parallelism) and rows across threads.
void gemv_f32(std::int64_t M, std::int64_t K, const float* A, std::int64_t lda, const float* x,
              float* y, bool accumulate) {
  constexpr std::int64_t kRows = 8;
  const std::int64_t blocks = (M + kRows - 1) / kRows;
  auto block = [&](std::int64_t b) {
    const std::int64_t i0 = b * kRows;
    if (i0 + kRows <= M) {
      float acc[kRows] = {};
      for (std::int64_t k = 0; k < K; ++k) {
        for (std::int64_t r = 0; r < kRows; ++r) acc[r] = acc[r] + A[(i0 + r) * lda + k] * x[k];
      }
      for (std::int64_t r = 0; r < kRows; ++r) y[i0 + r] = accumulate ? y[i0 + r] + acc[r] : acc[r];
    } else {
      gemv_f32_ref(M - i0, K, A + i0 * lda, lda, x, y + i0, accumulate);
    }
  };
  // Small products stay on the calling thread with no OpenMP construct at all: even an inactive
  // parallel region costs a team set-up, which dominated per-PE tiles of the mesh GEMV.
  if (M * K < (std::int64_t{1} << 16)) {
    for (std::int64_t b = 0; b < blocks; ++b) block(b);
    return;
  }
#pragma omp parallel for schedule(static)
  for (std::int64_t b = 0; b < blocks; ++b) block(b);
}

void gemv_f32_ref(std::int64_t M, std::int64_t K, const float* A, std::int64_t lda, const float* x,
                  float* y, bool accumulate) {
  for (std::int64_t i = 0; i < M; ++i) {
    float acc = 0.0f;
    for (std::int64_t k = 0; k < K; ++k) acc = acc + A[i * lda + k] * x[k];
    y[i] = accumulate ? y[i] + acc : acc;
  }
}

}  // namespace wm::kernels
