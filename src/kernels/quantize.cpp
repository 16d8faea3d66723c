#include "wafermesh/kernels/quantize.hpp"

#include <algorithm>
#include <cmath>

namespace wm::kernels {

float quantize_weights_absmean(const float* w, std::int64_t M, std::int64_t K, std::int64_t ldw,
                               std::int8_t* wq, std::int64_t ldq) {
  // Four interleaved double partial sums (element j of a row goes to sum j mod 4), added at the
  // end: a fixed order that does not depend on the caller's tiling, and four times shorter a
  // dependency chain (a 2.4G-weight model is ternarised on every rank).
  double part[4] = {0.0, 0.0, 0.0, 0.0};
  for (std::int64_t i = 0; i < M; ++i) {
    const float* row = w + i * ldw;
    std::int64_t k = 0;
    for (; k + 4 <= K; k += 4)
      for (int j = 0; j < 4; ++j) part[j] += std::fabs(static_cast<double>(row[k + j]));
    for (; k < K; ++k) part[k % 4] += std::fabs(static_cast<double>(row[k]));
  }
  const double sum_abs = (part[0] + part[1]) + (part[2] + part[3]);
  const double count = static_cast<double>(M) * static_cast<double>(K);
  const float gamma =
      std::max(count > 0 ? static_cast<float>(sum_abs / count) : 0.0f, kQuantScaleFloor);
  // clamp(round_half_even(w / gamma), -1, 1) is 0 for |w / gamma| <= 0.5 (0.5 rounds to the even
  // 0) and sign(w) above. The comparison is made exactly, as |w| > gamma / 2 (gamma / 2 is exact),
  // not on a rounded quotient: no division and no libm call per weight.
  const float half = gamma * 0.5f;
  for (std::int64_t i = 0; i < M; ++i) {
    const float* row = w + i * ldw;
    std::int8_t* out = wq + i * ldq;
    for (std::int64_t k = 0; k < K; ++k)
      out[k] = static_cast<std::int8_t>((row[k] > half) - (row[k] < -half));
  }
  return gamma;
}

float absmax_scale(float amax) { return 127.0f / std::max(amax, kQuantScaleFloor); }

void quantize_activations_scaled(const float* x, std::int64_t K, float s, std::int8_t* q) {
  // Round half to even by adding and subtracting 1.5 * 2^23: for |v| < 2^22 the sum lies in
  // [2^23, 2^24), where floats are the integers, so the addition rounds v to an integer in the
  // default rounding mode, exactly as std::nearbyint (no libm call: the baseline x86-64 ISA has no
  // rounding instruction). For |v| >= 2^22 the result is off by at most one but keeps its sign and
  // a magnitude far above 127, so the clamp gives +-127 as it would for std::nearbyint(v).
  constexpr float kMagic = 0x1.8p23f;
  for (std::int64_t k = 0; k < K; ++k) {
    const float r = (x[k] * s + kMagic) - kMagic;
    q[k] = static_cast<std::int8_t>(std::clamp(r, -127.0f, 127.0f));
  }
}

void quantize_activations_absmax(const float* x, std::int64_t N, std::int64_t K, std::int64_t ldx,
                                 std::int8_t* q, std::int64_t ldq, float* scale) {
  for (std::int64_t n = 0; n < N; ++n) {
    const float* xr = x + n * ldx;
    float amax = 0.0f;
    for (std::int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(xr[k]));
    const float s = absmax_scale(amax);
    scale[n] = s;
    quantize_activations_scaled(xr, K, s, q + n * ldq);
  }
}

}  // namespace wm::kernels
