// gemm_f32_tile at ISA level "avx2" (this file's -m flags are set in src/kernels/CMakeLists.txt).
#include "fp32_tile_impl.hpp"

namespace wm::kernels::detail {

void gemm_f32_tile_avx2(std::int64_t M, std::int64_t N, std::int64_t K, const float* A, std::int64_t lda,
                        const float* B, std::int64_t ldb, bool b_trans, float* C, std::int64_t ldc,
                        bool accumulate) {
  gemm_f32_tile_body<8, 4>(M, N, K, A, lda, B, ldb, b_trans, C, ldc, accumulate);
}

void gemv_f32_panels_avx2(std::int64_t M, std::int64_t K, const float* A, const float* x, float* y,
                          bool accumulate) {
  gemv_f32_panels_body(M, K, A, x, y, accumulate);
}

void gemv_bf16_panels_avx2(std::int64_t M, std::int64_t K, const std::uint16_t* A, const float* x, float* y,
                          bool accumulate) {
  gemv_f32_panels_body(M, K, A, x, y, accumulate);
}

}  // namespace wm::kernels::detail
