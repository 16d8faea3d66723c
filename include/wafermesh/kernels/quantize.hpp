#pragma once
// BitNet b1.58 quantisers (DESIGN.md §5).
//
// Weights: one absmean scale per tensor, gamma = max(mean|W|, 1e-5),
//          W_q = clamp(round(W / gamma), -1, 1).
// Activations: one absmax scale per token (row), s = 127 / max(max|x|, 1e-5),
//          q = clamp(round(x * s), -127, 127).
// round() is round-half-to-even (std::nearbyint in the default rounding mode), which is what
// torch.round does in the reference BitNet code. For weights it is evaluated on the exact
// quotient: W_q = sign(W) where |W| > gamma / 2, else 0. The 1e-5 floors are the reference's clamp_(min=1e-5):
// an all-zero tensor or token gives a finite scale and all-zero codes, never a division by zero,
// and the BitLinear output dot / s * gamma is then exactly 0.
#include <cstdint>

namespace wm::kernels {

inline constexpr float kQuantScaleFloor = 1e-5f;

// w:  (M, K) floats, row stride ldw >= K.
// wq: (M, K) int8 in {-1, 0, +1}, row stride ldq >= K.
// Returns gamma. mean|W| is accumulated in double in row-major order, so gamma does not depend on
// how the caller tiles anything.
float quantize_weights_absmean(const float* w, std::int64_t M, std::int64_t K, std::int64_t ldw,
                               std::int8_t* wq, std::int64_t ldq);

// x:     (N, K) floats (N tokens), row stride ldx >= K.
// q:     (N, K) int8 in [-127, 127], row stride ldq >= K.
// scale: (N) the per-token s; x ~= q / s.
void quantize_activations_absmax(const float* x, std::int64_t N, std::int64_t K, std::int64_t ldx,
                                 std::int8_t* q, std::int64_t ldq, float* scale);

// The two halves of quantize_activations_absmax for a token whose elements are spread over
// several holders (the PEs of a mesh, each with a block of the vector): the scale from the
// token's absmax, found by whoever combines the blocks' maxima, then each block's codes.
// s = 127 / max(amax, 1e-5).
float absmax_scale(float amax);
// q (K) = clamp(round_half_even(x * s), -127, 127): quantize_activations_absmax's codes for the
// same s.
void quantize_activations_scaled(const float* x, std::int64_t K, float s, std::int8_t* q);

}  // namespace wm::kernels
