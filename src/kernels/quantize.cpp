#include "wafermesh/kernels/quantize.hpp"

#include <algorithm>
#include <cmath>

namespace wm::kernels {

float quantize_weights_absmean(const float* w, std::int64_t M, std::int64_t K, std::int64_t ldw,
                               std::int8_t* wq, std::int64_t ldq) {
  double sum_abs = 0.0;
  for (std::int64_t i = 0; i < M; ++i) {
    for (std::int64_t k = 0; k < K; ++k) sum_abs += std::fabs(static_cast<double>(w[i * ldw + k]));
  }
  const double count = static_cast<double>(M) * static_cast<double>(K);
  const float gamma =
      std::max(count > 0 ? static_cast<float>(sum_abs / count) : 0.0f, kQuantScaleFloor);
  for (std::int64_t i = 0; i < M; ++i) {
    for (std::int64_t k = 0; k < K; ++k) {
      const float r = std::nearbyint(w[i * ldw + k] / gamma);
      wq[i * ldq + k] = static_cast<std::int8_t>(std::clamp(r, -1.0f, 1.0f));
    }
  }
  return gamma;
}

void quantize_activations_absmax(const float* x, std::int64_t N, std::int64_t K, std::int64_t ldx,
                                 std::int8_t* q, std::int64_t ldq, float* scale) {
  for (std::int64_t n = 0; n < N; ++n) {
    const float* xr = x + n * ldx;
    float amax = 0.0f;
    for (std::int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(xr[k]));
    const float s = 127.0f / std::max(amax, kQuantScaleFloor);
    scale[n] = s;
    for (std::int64_t k = 0; k < K; ++k) {
      const float r = std::nearbyint(xr[k] * s);
      q[n * ldq + k] = static_cast<std::int8_t>(std::clamp(r, -127.0f, 127.0f));
    }
  }
}

}  // namespace wm::kernels
