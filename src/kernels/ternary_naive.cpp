#include "wafermesh/kernels/ternary_naive.hpp"

namespace wm::kernels {

void ternary_gemm_i32_naive(const std::int8_t* w, std::int64_t M, std::int64_t K, std::int64_t ldw,
                            const std::int8_t* q, std::int64_t N, std::int64_t ldq, std::int32_t* y,
                            std::int64_t ldy) {
  for (std::int64_t n = 0; n < N; ++n) {
    for (std::int64_t i = 0; i < M; ++i) {
      std::int32_t acc = 0;
      for (std::int64_t k = 0; k < K; ++k) acc += std::int32_t{w[i * ldw + k]} * q[n * ldq + k];
      y[n * ldy + i] = acc;
    }
  }
}

}  // namespace wm::kernels
