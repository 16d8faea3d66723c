#include "wafermesh/kernels/ternary_2b.hpp"

#include <stdexcept>
#include <string>
#include <vector>

#include "entry_points.hpp"
#include "isa_kernels.hpp"

namespace wm::kernels {
namespace {

void check_args(const char* what, const TernaryMatrix2b& w, const ActivationsQ8& a, std::int64_t ldy) {
  detail::check_product_args(what, w.rows(), w.cols(), a.cols(), ldy);
}

void check_one_token(const char* what, const ActivationsQ8& a) { detail::check_one_token(what, a.tokens(), ""); }

}  // namespace

void mad2b_gemm_i32(const TernaryMatrix2b& w, const ActivationsQ8& a, std::int32_t* y,
                    std::int64_t ldy) {
  check_args("mad2b_gemm_i32", w, a, ldy);
  if (w.rows() == 0 || a.tokens() == 0) return;
  detail::isa_kernels().mad2b_gemm_i32(w, a, y, ldy);
}

void mad2b_gemv_i32(const TernaryMatrix2b& w, const ActivationsQ8& a, std::int32_t* y) {
  check_one_token("mad2b_gemv_i32", a);
  mad2b_gemm_i32(w, a, y, w.rows());
}

void mad2b_gemm_f32(const TernaryMatrix2b& w, const ActivationsQ8& a, float* y, std::int64_t ldy) {
  check_args("mad2b_gemm_f32", w, a, ldy);
  detail::gemm_f32_from_i32(w, a, y, ldy, [&](std::int32_t* dot, std::int64_t ld) { mad2b_gemm_i32(w, a, dot, ld); });
}

void mad2b_gemv_f32(const TernaryMatrix2b& w, const ActivationsQ8& a, float* y) {
  check_one_token("mad2b_gemv_f32", a);
  mad2b_gemm_f32(w, a, y, w.rows());
}

void mad2b_gemm_i32_ref(const TernaryMatrix2b& w, const std::int8_t* q, std::int64_t N,
                        std::int64_t ldq, std::int32_t* y, std::int64_t ldy) {
  const std::int64_t M = w.rows(), K = w.cols();
  for (std::int64_t n = 0; n < N; ++n) {
    const std::int8_t* qn = q + n * ldq;
    std::int32_t sum_q = 0;
    for (std::int64_t k = 0; k < K; ++k) sum_q += qn[k];
    for (std::int64_t i = 0; i < M; ++i) {
      const std::uint8_t* row = w.row(i);
      std::int32_t acc = 0;
      for (std::int64_t k = 0; k < K; ++k) {
        const std::int64_t block = k / TernaryMatrix2b::kBlockWeights, in = k % TernaryMatrix2b::kBlockWeights;
        const int code = (row[block * TernaryMatrix2b::kBlockBytes + in % 64] >> (2 * (in / 64))) & 3;
        acc += code * qn[k];
      }
      y[n * ldy + i] = acc - sum_q;
    }
  }
}

}  // namespace wm::kernels
