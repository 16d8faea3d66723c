#pragma once
// Argument checks of the kernels' entry points: one std::invalid_argument line naming the call, the
// values and what they must be.
#include <cstdint>
#include <stdexcept>
#include <string>

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

// A decode call takes exactly one token; `holder` names what holds it ("" or "tables of ").
inline void check_one_token(const char* what, std::int64_t tokens, const char* holder) {
  if (tokens != 1) {
    throw std::invalid_argument(std::string(what) + ": needs " + holder + "exactly 1 token, got " +
                                std::to_string(tokens) + "; use the gemm variant");
  }
}

}  // namespace wm::kernels::detail
