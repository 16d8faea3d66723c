#pragma once
// fp32 block product for the distributed algorithms: one thread, no allocation after the first
// call, tuned for the small tiles a PE holds (tens of rows and columns). The mesh code calls it once
// per PE from its own parallel loop over PEs, where gemm_f32's internal threading and per-call
// panel allocation would dominate.
//
// Same summation order as gemm_f32 / gemm_f32_ref (fp32_gemm.hpp), so the three agree bit for bit:
// per output element acc = 0; acc = acc + a_k * b_k for k ascending; then C = acc or C = C + acc.
#include <cstdint>

namespace wm::kernels {

// C (M, N), ldc {=, +=} A (M, K), lda . B, where B is (K, N), ldb, or with b_trans B is (N, K), ldb
// and the product is A . B^T.
void gemm_f32_tile(std::int64_t M, std::int64_t N, std::int64_t K, const float* A, std::int64_t lda,
                   const float* B, std::int64_t ldb, bool b_trans, float* C, std::int64_t ldc, bool accumulate);

}  // namespace wm::kernels
