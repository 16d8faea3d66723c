// gemm_f32_tile at ISA level "avx512" (this file's -m flags are set in src/kernels/CMakeLists.txt).
#include "fp32_tile_impl.hpp"

namespace wm::kernels::detail {

void gemm_f32_tile_avx512(std::int64_t M, std::int64_t N, std::int64_t K, const float* A, std::int64_t lda,
                        const float* B, std::int64_t ldb, bool b_trans, float* C, std::int64_t ldc,
                        bool accumulate) {
  // 4 rows x 64 columns (16 accumulators) walks each row of B, A and C front to back in 256-byte
  // runs, which the hardware prefetcher follows: the fastest register tile for a MeshGEMM's stream
  // of distinct tiles from DRAM (results/PERFORMANCE.md); from L1 and L2 the tiles are alike.
  // Narrow products keep 8 x 32, which pads less.
  if (N >= 48) gemm_f32_tile_body<16, 4, 4>(M, N, K, A, lda, B, ldb, b_trans, C, ldc, accumulate);
  else gemm_f32_tile_body<16, 8>(M, N, K, A, lda, B, ldb, b_trans, C, ldc, accumulate);
}

void gemv_f32_panels_avx512(std::int64_t M, std::int64_t K, const float* A, const float* x, float* y,
                          bool accumulate) {
  gemv_f32_panels_body(M, K, A, x, y, accumulate);
}

void gemv_bf16_panels_avx512(std::int64_t M, std::int64_t K, const std::uint16_t* A, const float* x, float* y,
                          bool accumulate) {
  gemv_f32_panels_body(M, K, A, x, y, accumulate);
}

}  // namespace wm::kernels::detail
