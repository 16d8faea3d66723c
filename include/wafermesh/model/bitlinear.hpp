#pragma once
// BitLinear, the reference version (DESIGN.md §5): the ground truth every ternary projection of the
// mesh transformer must reproduce bit for bit.
//
//   weights     one tensor = one layer's matrix (e.g. layer 3's W_q):
//               gamma = max(mean|W|, 1e-5), W_q = clamp(round_half_even(W / gamma), -1, 1)
//   activations one token = one input vector x:
//               s = 127 / max(max|x|, 1e-5), q = clamp(round_half_even(x * s), -127, 127)
//   output      y_i = float(dot_i) / s * gamma,   dot_i = sum_k W_q[i, k] * q[k]  (exact int32)
//
// The quantisers are kernels::quantize_*; the dot product is kernels::ternary_gemm_i32_naive (any
// kernel gives the same integers; the naive one is the frozen reference). The float epilogue is
// evaluated in exactly this order — a division, then a multiplication — as lut_gemv_f32 does.
#include <cstdint>
#include <vector>

namespace wm::model {

struct TernaryWeight {
  std::int64_t rows = 0, cols = 0;
  std::vector<std::int8_t> codes;  // (rows, cols) in {-1, 0, +1}
  float gamma = 0.0f;              // per-tensor absmean scale
};

// w: (rows, cols) floats.
TernaryWeight ternarize(const float* w, std::int64_t rows, std::int64_t cols);

// y (w.rows) = BitLinear(x (w.cols)). Allocates its scratch (reference code: clarity over speed).
void bitlinear_ref(const TernaryWeight& w, const float* x, float* y);

}  // namespace wm::model
