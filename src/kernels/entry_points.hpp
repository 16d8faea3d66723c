#pragma once
// What the kernels' entry points share: argument checks (one std::invalid_argument line naming
// the call, the values and what they must be) and BitLinear's fp32 epilogue.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace wm::kernels::detail {

// A matrix of `rows` rows and K columns with row stride ld (named as the caller spells them:
// "M" and "ldw" for weights, "N" and "ldq" for activations): rows >= 0, K >= 0, ld >= K.
inline void check_matrix_shape(const char* what, const char* rows_name, std::int64_t rows, std::int64_t K,
                               const char* ld_name, std::int64_t ld) {
  if (rows < 0 || K < 0 || ld < K) {
    const std::string r = rows_name, l = ld_name;
    throw std::invalid_argument(std::string(what) + ": bad shape " + r + "=" + std::to_string(rows) +
                                " K=" + std::to_string(K) + " " + l + "=" + std::to_string(ld) + " (need " + r +
                                " >= 0, K >= 0, " + l + " >= K)");
  }
}

// Weights of M rows and weight_cols columns times activations of act_cols columns, into y with
// row stride ldy.
inline void check_product_args(const char* what, std::int64_t M, std::int64_t weight_cols, std::int64_t act_cols,
                               std::int64_t ldy) {
  if (act_cols != weight_cols) {
    throw std::invalid_argument(std::string(what) + ": activations have K=" + std::to_string(act_cols) +
                                " but the weights have K=" + std::to_string(weight_cols));
  }
  if (ldy < M) {
    throw std::invalid_argument(std::string(what) + ": ldy=" + std::to_string(ldy) +
                                " is smaller than M=" + std::to_string(M));
  }
}

// A decode call takes exactly one token; `holder` names what holds it ("" or "tables of "), `fix`
// what to call instead.
inline void check_one_token(const char* what, std::int64_t tokens, const char* holder,
                            const char* fix = "use the gemm variant") {
  if (tokens != 1) {
    throw std::invalid_argument(std::string(what) + ": needs " + holder + "exactly 1 token, got " +
                                std::to_string(tokens) + "; " + fix);
  }
}

// y (N, M), row stride ldy, = BitLinear's dot / s * gamma (bitlinear.hpp) for the exact products
// of weights w (M rows, scale w.gamma()) with the N tokens of `acts` (scales acts.scale(n)), which
// gemm_i32(dot, M) writes as int32 (N, M).
template <class Weights, class Activations, class GemmI32>
void gemm_f32_from_i32(const Weights& w, const Activations& acts, float* y, std::int64_t ldy, GemmI32&& gemm_i32) {
  const std::int64_t M = w.rows(), N = acts.tokens();
  std::vector<std::int32_t> dot(static_cast<std::size_t>(N * M));  // (N, M)
  gemm_i32(dot.data(), M);
  for (std::int64_t n = 0; n < N; ++n) {
    for (std::int64_t i = 0; i < M; ++i) {
      y[n * ldy + i] = static_cast<float>(dot[static_cast<std::size_t>(n * M + i)]) / acts.scale(n) * w.gamma();
    }
  }
}

}  // namespace wm::kernels::detail
