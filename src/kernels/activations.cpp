#include "wafermesh/kernels/activations.hpp"

#include <stdexcept>
#include <string>

#include "entry_points.hpp"
#include "isa_kernels.hpp"
#include "wafermesh/kernels/quantize.hpp"

namespace wm::kernels {
namespace {

void check_shape(const char* what, std::int64_t N, std::int64_t K, std::int64_t ldq) {
  detail::check_matrix_shape(what, "N", N, K, "ldq", ldq);
}

}  // namespace

ActivationsQ8 ActivationsQ8::from_int8(const std::int8_t* q, std::int64_t N, std::int64_t K,
                                       std::int64_t ldq, const float* scale) {
  check_shape("ActivationsQ8::from_int8", N, K, ldq);
  ActivationsQ8 a;
  a.tokens_ = N;
  a.cols_ = K;
  a.padded_cols_ = (K + kPadCols - 1) / kPadCols * kPadCols;
  a.q_.assign(static_cast<std::size_t>(N * a.padded_cols_), 0);
  a.sum_.assign(static_cast<std::size_t>(N), 0);
  a.scale_.assign(static_cast<std::size_t>(N), 1.0f);
  for (std::int64_t n = 0; n < N; ++n) {
    std::int32_t sum = 0;
    for (std::int64_t k = 0; k < K; ++k) {
      a.q_[static_cast<std::size_t>(n * a.padded_cols_ + k)] = q[n * ldq + k];
      sum += q[n * ldq + k];
    }
    a.sum_[static_cast<std::size_t>(n)] = sum;
    if (scale != nullptr) a.scale_[static_cast<std::size_t>(n)] = scale[n];
  }
  return a;
}

ActivationsQ8 ActivationsQ8::from_float(const float* x, std::int64_t N, std::int64_t K,
                                        std::int64_t ldx) {
  check_shape("ActivationsQ8::from_float", N, K, ldx);
  std::vector<std::int8_t> q(static_cast<std::size_t>(N * K));  // (N, K)
  std::vector<float> s(static_cast<std::size_t>(N));             // (N)
  quantize_activations_absmax(x, N, K, ldx, q.data(), K, s.data());
  return from_int8(q.data(), N, K, K, s.data());
}

void lut_table_build_ref(const std::int8_t* q, std::int64_t K, std::uint8_t* table) {
  const std::int64_t pairs = ((K + 2) / 3 + 1) / 2;
  for (std::int64_t p = 0; p < pairs; ++p) detail::lut_table_build_pair_scalar(q, K, p, table);
}

LutTables LutTables::build(const ActivationsQ8& a) {
  LutTables t;
  t.assign(a);
  return t;
}

void LutTables::assign(const ActivationsQ8& a) { assign_int8(a.token(0), a.tokens(), a.cols(), a.padded_cols(), a.scales()); }

void LutTables::resize(std::int64_t tokens, std::int64_t K) {
  tokens_ = tokens;
  cols_ = K;
  table_.resize(static_cast<std::size_t>(tokens_ * pairs() * kPairBytes));
  scale_.assign(static_cast<std::size_t>(tokens_), 1.0f);
}

LutTables LutTables::from_int8(const std::int8_t* q, std::int64_t N, std::int64_t K,
                               std::int64_t ldq, const float* scale) {
  LutTables t;
  t.assign_int8(q, N, K, ldq, scale);
  return t;
}

void LutTables::assign_int8(const std::int8_t* q, std::int64_t N, std::int64_t K, std::int64_t ldq,
                            const float* scale) {
  check_shape("LutTables::from_int8", N, K, ldq);
  // Every byte is rewritten by the builder (entries 14, 15 included), so no clearing.
  resize(N, K);
  const auto build_one = detail::isa_kernels().lut_table_build;
  auto one = [&](std::int64_t n) {
    build_one(q + n * ldq, K, token(n));
    if (scale != nullptr) scale_[static_cast<std::size_t>(n)] = scale[n];
  };
  if (N == 1) {
    one(0);  // decode: one token is one thread's work (~2 us for K = 6912); no OpenMP construct
    return;
  }
#pragma omp parallel for schedule(static)  // tokens are independent; one token is one thread's
  for (std::int64_t n = 0; n < N; ++n) one(n);
}

}  // namespace wm::kernels
