// gemm_f32_tile at ISA level "avx512" (this file's -m flags are set in src/kernels/CMakeLists.txt).
#include "fp32_tile_impl.hpp"

namespace wm::kernels::detail {

void gemm_f32_tile_avx512(std::int64_t M, std::int64_t N, std::int64_t K, const float* A, std::int64_t lda,
                        const float* B, std::int64_t ldb, bool b_trans, float* C, std::int64_t ldc,
                        bool accumulate) {
  // 4 rows x 64 columns (16 accumulators) walks each row of B, A and C front to back in 256-byte
  // runs, which the hardware prefetcher follows. In a P = 64 MeshGEMM step (2048 distinct 64 x 64
  // tiles per rank, from DRAM) this beat 8 x 32: `bench gemm --algo meshgemm --P 64 --M 4096 --K
  // 4096 --N 4096 --pe.sram_bytes 81920` on 2 ranks took 0.84-1.09 s against 0.97-1.16 s. A 5 x 64
  // tile was faster on a synthetic stream of tiles but slower there (0.93-1.20 s). From L1 and L2
  // all were within 10%. Narrow products keep 8 x 32, which pads less.
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
