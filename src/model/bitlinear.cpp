#include "wafermesh/model/bitlinear.hpp"

#include "wafermesh/kernels/quantize.hpp"
#include "wafermesh/kernels/ternary_naive.hpp"

namespace wm::model {

TernaryWeight ternarize(const float* w, std::int64_t rows, std::int64_t cols) {
  TernaryWeight t;
  t.rows = rows;
  t.cols = cols;
  t.codes.resize(static_cast<std::size_t>(rows * cols));
  t.gamma = kernels::quantize_weights_absmean(w, rows, cols, cols, t.codes.data(), cols);
  return t;
}

void bitlinear_ref(const TernaryWeight& w, const float* x, float* y) {
  std::vector<std::int8_t> q(static_cast<std::size_t>(w.cols));   // (cols) int8 activations
  std::vector<std::int32_t> dot(static_cast<std::size_t>(w.rows));  // (rows) exact int32 sums
  float s = 0.0f;
  kernels::quantize_activations_absmax(x, 1, w.cols, w.cols, q.data(), w.cols, &s);
  kernels::ternary_gemm_i32_naive(w.codes.data(), w.rows, w.cols, w.cols, q.data(), 1, w.cols,
                                  dot.data(), w.rows);
  for (std::int64_t i = 0; i < w.rows; ++i)
    y[i] = static_cast<float>(dot[static_cast<std::size_t>(i)]) / s * w.gamma;
}

}  // namespace wm::model
