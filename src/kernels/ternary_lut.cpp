#include "wafermesh/kernels/ternary_lut.hpp"

#include <stdexcept>
#include <string>
#include <vector>

#include "entry_points.hpp"
#include "isa_kernels.hpp"

namespace wm::kernels {
namespace {

void check_args(const char* what, const TernaryMatrixLut& w, const LutTables& t, std::int64_t ldy) {
  detail::check_product_args(what, w.rows(), w.cols(), t.cols(), ldy);
}

void check_one_token(const char* what, const LutTables& t) { detail::check_one_token(what, t.tokens(), "tables of "); }

}  // namespace

void lut_gemm_i32(const TernaryMatrixLut& w, const LutTables& t, std::int32_t* y, std::int64_t ldy) {
  check_args("lut_gemm_i32", w, t, ldy);
  if (w.rows() == 0 || t.tokens() == 0) return;
  detail::isa_kernels().lut_gemm_i32(w, t, y, ldy);
}

void lut_gemv_i32(const TernaryMatrixLut& w, const LutTables& t, std::int32_t* y) {
  check_one_token("lut_gemv_i32", t);
  lut_gemm_i32(w, t, y, w.rows());
}

void lut_gemv_i32(const TernaryMatrixLut& w, const ActivationsQ8& a, LutTables& t, std::int32_t* y) {
  detail::check_one_token("lut_gemv_i32", a.tokens(), "", "use LutTables::build and lut_gemm_i32");
  detail::check_product_args("lut_gemv_i32", w.rows(), w.cols(), a.cols(), w.rows());
  const auto fused = detail::isa_kernels().lut_gemv_fused;
  if (fused == nullptr || w.rows() == 0) {
    t.assign(a);
    lut_gemm_i32(w, t, y, w.rows());
    return;
  }
  t.resize(1, a.cols());
  t.set_scale(0, a.scale(0));
  fused(w, a, t, y);
}

void lut_gemm_f32(const TernaryMatrixLut& w, const LutTables& t, float* y, std::int64_t ldy) {
  check_args("lut_gemm_f32", w, t, ldy);
  detail::gemm_f32_from_i32(w, t, y, ldy, [&](std::int32_t* dot, std::int64_t ld) { lut_gemm_i32(w, t, dot, ld); });
}

void lut_gemv_f32(const TernaryMatrixLut& w, const LutTables& t, float* y) {
  check_one_token("lut_gemv_f32", t);
  lut_gemm_f32(w, t, y, w.rows());
}

void lut_gemm_i32(const TernaryMatrixLut& w, const std::int8_t* q, std::int64_t N, std::int64_t ldq,
                  std::int32_t* y, std::int64_t ldy) {
  lut_gemm_i32(w, LutTables::from_int8(q, N, w.cols(), ldq), y, ldy);
}

void lut_gemm_i32_ref(const TernaryMatrixLut& w, const std::int8_t* q, std::int64_t N,
                      std::int64_t ldq, std::int32_t* y, std::int64_t ldy) {
  constexpr std::int64_t kRows = TernaryMatrixLut::kTileRows, kRec = TernaryMatrixLut::kRecordBytes;
  const std::int64_t M = w.rows(), K = w.cols(), G = w.groups();
  std::vector<std::uint8_t> table(static_cast<std::size_t>(w.pairs() * LutTables::kPairBytes));  // (pairs, 128)
  for (std::int64_t n = 0; n < N; ++n) {
    lut_table_build_ref(q + n * ldq, K, table.data());
    for (std::int64_t i = 0; i < M; ++i) {
      const int r = static_cast<int>(i % kRows);
      std::int32_t acc = 0;
      for (std::int64_t g = 0; g < G; ++g) {
        const std::uint8_t* rec = w.tile(i / kRows) + (g / 2) * kRec;
        const int h = static_cast<int>(g % 2);
        const int e = TernaryMatrixLut::record_magnitude(rec, h, r);
        const std::uint8_t* lo = LutTables::group_low(table.data(), g);
        const std::int32_t v = static_cast<std::int16_t>(lo[e] | (lo[LutTables::kHighOffset + e] << 8));
        acc += TernaryMatrixLut::record_negative(rec, h, r) ? -v : v;
      }
      y[n * ldy + i] = acc;
    }
  }
}

}  // namespace wm::kernels
