#include "wafermesh/kernels/fp32_tile.hpp"

#include "wafermesh/kernels/cpu_dispatch.hpp"

namespace wm::kernels {

namespace detail {
using TileFn = void (*)(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t, const float*,
                        std::int64_t, bool, float*, std::int64_t, bool);
void gemm_f32_tile_scalar(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t, const float*,
                          std::int64_t, bool, float*, std::int64_t, bool);
void gemm_f32_tile_avx2(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t, const float*,
                        std::int64_t, bool, float*, std::int64_t, bool);
void gemm_f32_tile_avx512(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t, const float*,
                          std::int64_t, bool, float*, std::int64_t, bool);
}  // namespace detail

void gemm_f32_tile(std::int64_t M, std::int64_t N, std::int64_t K, const float* A, std::int64_t lda,
                   const float* B, std::int64_t ldb, bool b_trans, float* C, std::int64_t ldc, bool accumulate) {
  detail::TileFn fn = detail::gemm_f32_tile_scalar;
  switch (isa_active()) {
    case Isa::isa_avx512: fn = detail::gemm_f32_tile_avx512; break;
    case Isa::isa_avx2: fn = detail::gemm_f32_tile_avx2; break;
    case Isa::isa_scalar: break;
  }
  fn(M, N, K, A, lda, B, ldb, b_trans, C, ldc, accumulate);
}

}  // namespace wm::kernels
