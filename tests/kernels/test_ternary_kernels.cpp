// Every ternary kernel variant (LUT and 2-bit, each ISA level, several thread counts) must equal
// its _ref and the naive int8 dot product bit for bit in int32, on random and worst-case inputs.
// Every output buffer is refilled with a canary (int32) or NaN (float) before every kernel call, so
// a kernel that leaves rows unwritten fails instead of passing on an earlier call's values.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "isa_levels.hpp"
#include "wafermesh/kernels/activations.hpp"
#include "wafermesh/kernels/pack.hpp"
#include "wafermesh/kernels/ternary_2b.hpp"
#include "wafermesh/kernels/ternary_lut.hpp"
#include "wafermesh/kernels/ternary_naive.hpp"

namespace wm::kernels {
namespace {

using testing::for_each_isa;
using testing::for_each_threads;

// One problem: W (M, K) ternary, row stride ldw; q (N, K) int8, row stride ldq.
struct Problem {
  std::int64_t M, K, N, ldw, ldq;
  std::vector<std::int8_t> w, q;
};

Problem random_problem(std::int64_t M, std::int64_t K, std::int64_t N, std::uint32_t seed) {
  Problem p{M, K, N, K + 5, K + 7, {}, {}};
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dw(-1, 1), dq(-128, 127);
  p.w.assign(static_cast<std::size_t>(M * p.ldw), 0);
  p.q.assign(static_cast<std::size_t>(N * p.ldq), 0);
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t k = 0; k < K; ++k) p.w[static_cast<std::size_t>(i * p.ldw + k)] = static_cast<std::int8_t>(dw(rng));
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t k = 0; k < K; ++k) p.q[static_cast<std::size_t>(n * p.ldq + k)] = static_cast<std::int8_t>(dq(rng));
  return p;
}

Problem constant_problem(std::int64_t M, std::int64_t K, std::int64_t N, int wv, int qv) {
  Problem p{M, K, N, K, K, {}, {}};
  p.w.assign(static_cast<std::size_t>(M * K), static_cast<std::int8_t>(wv));
  p.q.assign(static_cast<std::size_t>(N * K), static_cast<std::int8_t>(qv));
  return p;
}

std::vector<std::int32_t> naive(const Problem& p) {
  std::vector<std::int32_t> y(static_cast<std::size_t>(p.N * p.M));  // (N, M)
  ternary_gemm_i32_naive(p.w.data(), p.M, p.K, p.ldw, p.q.data(), p.N, p.ldq, y.data(), p.M);
  return y;
}

// Output (N, M) with row stride M + 2; the two extra columns must stay untouched.
constexpr std::int32_t kCanary = 0x5A5A5A5A;
void refill(std::vector<std::int32_t>& y) { std::fill(y.begin(), y.end(), kCanary); }
void refill(std::vector<float>& y) { std::fill(y.begin(), y.end(), std::nanf("")); }
std::vector<std::int32_t> strip(const std::vector<std::int32_t>& y, std::int64_t N, std::int64_t M) {
  std::vector<std::int32_t> out(static_cast<std::size_t>(N * M));
  for (std::int64_t n = 0; n < N; ++n) {
    for (std::int64_t i = 0; i < M; ++i) out[static_cast<std::size_t>(n * M + i)] = y[static_cast<std::size_t>(n * (M + 2) + i)];
    EXPECT_EQ(y[static_cast<std::size_t>(n * (M + 2) + M)], kCanary);
    EXPECT_EQ(y[static_cast<std::size_t>(n * (M + 2) + M + 1)], kCanary);
  }
  return out;
}

// Checks the refs once, then every fast variant at every ISA level and thread count.
void check_all_variants(const Problem& p, bool all_threads = true) {
  const auto expected = naive(p);
  const auto lut = TernaryMatrixLut::from_int8(p.w.data(), p.M, p.K, p.ldw);
  const auto w2b = TernaryMatrix2b::from_int8(p.w.data(), p.M, p.K, p.ldw);
  const std::int64_t M = p.M, N = p.N, ldy = M + 2;
  {
    std::vector<std::int32_t> y(static_cast<std::size_t>(N * ldy));
    refill(y);
    lut_gemm_i32_ref(lut, p.q.data(), N, p.ldq, y.data(), ldy);
    ASSERT_EQ(strip(y, N, M), expected) << "lut_gemm_i32_ref M=" << M << " K=" << p.K << " N=" << N;
    refill(y);
    mad2b_gemm_i32_ref(w2b, p.q.data(), N, p.ldq, y.data(), ldy);
    ASSERT_EQ(strip(y, N, M), expected) << "mad2b_gemm_i32_ref M=" << M << " K=" << p.K << " N=" << N;
  }
  for_each_isa([&](Isa) {
    const auto act = ActivationsQ8::from_int8(p.q.data(), N, p.K, p.ldq);
    const auto tables = LutTables::build(act);
    auto run = [&](int) {
      std::vector<std::int32_t> y(static_cast<std::size_t>(N * ldy));
      refill(y);
      lut_gemm_i32(lut, tables, y.data(), ldy);
      ASSERT_EQ(strip(y, N, M), expected) << "lut_gemm_i32 M=" << M << " K=" << p.K << " N=" << N;
      refill(y);
      lut_gemm_i32(lut, p.q.data(), N, p.ldq, y.data(), ldy);
      ASSERT_EQ(strip(y, N, M), expected) << "lut_gemm_i32(raw q) M=" << M << " K=" << p.K;
      refill(y);
      mad2b_gemm_i32(w2b, act, y.data(), ldy);
      ASSERT_EQ(strip(y, N, M), expected) << "mad2b_gemm_i32 M=" << M << " K=" << p.K << " N=" << N;
    };
    if (all_threads) {
      for_each_threads(run);
    } else {
      run(0);
    }
    // Decode entry points on the first token.
    const auto act1 = ActivationsQ8::from_int8(p.q.data(), 1, p.K, p.ldq);
    const auto tab1 = LutTables::build(act1);
    const std::vector<std::int32_t> first(expected.begin(), expected.begin() + M);
    std::vector<std::int32_t> y(static_cast<std::size_t>(M));
    refill(y);
    lut_gemv_i32(lut, tab1, y.data());
    ASSERT_EQ(y, first) << "lut_gemv_i32 M=" << M << " K=" << p.K;
    refill(y);
    mad2b_gemv_i32(w2b, act1, y.data());
    ASSERT_EQ(y, first) << "mad2b_gemv_i32 M=" << M << " K=" << p.K;
    // Fused decode (tables built inside, split across threads at the AVX-512 level): same result
    // and the same complete tables at every thread count.
    const auto run_fused = [&](int) {
      LutTables scratch;
      refill(y);
      lut_gemv_i32(lut, act1, scratch, y.data());
      ASSERT_EQ(y, first) << "lut_gemv_i32(fused) M=" << M << " K=" << p.K;
      ASSERT_EQ(scratch.pairs(), tab1.pairs());
      ASSERT_EQ(0, std::memcmp(scratch.token(0), tab1.token(0),
                               static_cast<std::size_t>(tab1.pairs() * LutTables::kPairBytes)));
    };
    if (all_threads) {
      for_each_threads(run_fused);
    } else {
      run_fused(0);
    }
  });
}

struct Shape {
  std::int64_t M, K;
};

// 1x1 and 7x5 (K % 3 = 2, one row tile), 33x97 (K % 3 = 1), tile and block edges, 64 groups
// = one int16 block (192), and one past it (195, 196).
const Shape kSmallShapes[] = {{1, 1},  {7, 5},   {33, 97},  {64, 192}, {65, 195},
                              {63, 196}, {130, 256}, {129, 257}, {5, 1000}, {200, 301}};

TEST(TernaryKernels, RandomSmallShapesAllVariants) {
  std::uint32_t seed = 100;
  for (const Shape& s : kSmallShapes) {
    for (std::int64_t N : {1, 3, 5, 9}) {
      SCOPED_TRACE("M=" + std::to_string(s.M) + " K=" + std::to_string(s.K) + " N=" + std::to_string(N));
      check_all_variants(random_problem(s.M, s.K, N, seed++));
    }
  }
}

// Decode work splits of the AVX-512 level, each against the naive result at 1, 2 and 3 threads.
// Both shapes hold just over 2^20 record rows, the smallest matrix that gets a team:
// 453 x 13891 (8 tiles) splits rows, two tile streams per thread, with an odd tile left on some
// threads at 3 threads (2, 3, 3 tiles); 130 x 48397 (3 tiles, fewer than two per thread) splits K.
TEST(TernaryKernels, DecodeSplitsOfMediumShapes) {
  std::uint32_t seed = 300;
  for (const Shape& s : {Shape{453, 13891}, Shape{130, 48397}}) {
    SCOPED_TRACE("M=" + std::to_string(s.M) + " K=" + std::to_string(s.K));
    check_all_variants(random_problem(s.M, s.K, 1, seed++));
  }
}

// The int16-overflow case: every weight +-1 and every activation 127 or -128, so every table
// entry used is +-381 or +-384 and every 2-bit pair is at its extreme; K = 16384 (not a multiple
// of 3, so the tail group is exercised too). The naive result is checked against the closed form.
TEST(TernaryKernels, WorstCaseExtremesK16384) {
  const std::int64_t M = 70, K = 16384, N = 2;
  for (int wv : {1, -1}) {
    for (int qv : {127, -128}) {
      SCOPED_TRACE("w=" + std::to_string(wv) + " q=" + std::to_string(qv));
      const Problem p = constant_problem(M, K, N, wv, qv);
      const auto y = naive(p);
      for (auto v : y) ASSERT_EQ(v, static_cast<std::int32_t>(wv * qv * K));
      check_all_variants(p);
    }
  }
}

// Alternating signs inside each group and between rows: negative groups on half the rows.
TEST(TernaryKernels, WorstCaseMixedSignsK16383) {
  const std::int64_t M = 65, K = 16383, N = 1;
  Problem p{M, K, N, K, K, {}, {}};
  p.w.resize(static_cast<std::size_t>(M * K));
  p.q.resize(static_cast<std::size_t>(K));
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t k = 0; k < K; ++k) p.w[static_cast<std::size_t>(i * K + k)] = (i % 2 == 0) ? -1 : ((k % 3 == 1) ? -1 : 1);
  for (std::int64_t k = 0; k < K; ++k) p.q[static_cast<std::size_t>(k)] = (k % 3 == 1) ? 127 : -128;
  check_all_variants(p);
}

// The model's projection shapes: fast kernels against the naive result at 1 and 2 threads (the
// small-shape test covers 3 threads and the refs).
TEST(TernaryKernels, LargeProjectionShapes) {
  for (const Shape& s : {Shape{2560, 6912}, Shape{6912, 2560}}) {
    SCOPED_TRACE("M=" + std::to_string(s.M) + " K=" + std::to_string(s.K));
    const Problem p = random_problem(s.M, s.K, 2, 7);
    const auto expected = naive(p);
    const auto lut = TernaryMatrixLut::from_int8(p.w.data(), p.M, p.K, p.ldw);
    const auto w2b = TernaryMatrix2b::from_int8(p.w.data(), p.M, p.K, p.ldw);
    const auto act = ActivationsQ8::from_int8(p.q.data(), p.N, p.K, p.ldq);
    std::vector<std::int32_t> y(expected.size());
    for_each_isa([&](Isa isa) {
      const auto tables = LutTables::build(act);
      for (int threads : {1, 2}) {
        if (isa == Isa::isa_scalar && threads == 1) continue;  // slowest combination adds nothing
        omp_set_num_threads(threads);
        SCOPED_TRACE("threads=" + std::to_string(threads));
        refill(y);
        lut_gemm_i32(lut, tables, y.data(), p.M);
        ASSERT_EQ(y, expected) << "lut_gemm_i32";
        refill(y);
        mad2b_gemm_i32(w2b, act, y.data(), p.M);
        ASSERT_EQ(y, expected) << "mad2b_gemm_i32";
        LutTables scratch;
        std::vector<std::int32_t> y1(static_cast<std::size_t>(p.M));
        refill(y1);
        lut_gemv_i32(lut, ActivationsQ8::from_int8(p.q.data(), 1, p.K, p.ldq), scratch, y1.data());
        ASSERT_TRUE(std::equal(y1.begin(), y1.end(), expected.begin())) << "lut_gemv_i32(fused)";
      }
    });
    omp_set_num_threads(2);
  }
}

TEST(TernaryKernels, RefsOnLargeShapeOneToken) {
  const Problem p = random_problem(2560, 6912, 1, 8);
  const auto expected = naive(p);
  std::vector<std::int32_t> y(expected.size());
  refill(y);
  lut_gemm_i32_ref(TernaryMatrixLut::from_int8(p.w.data(), p.M, p.K, p.ldw), p.q.data(), 1, p.ldq, y.data(), p.M);
  EXPECT_EQ(y, expected);
  refill(y);
  mad2b_gemm_i32_ref(TernaryMatrix2b::from_int8(p.w.data(), p.M, p.K, p.ldw), p.q.data(), 1, p.ldq, y.data(), p.M);
  EXPECT_EQ(y, expected);
}

// BitLinear float output: float(dot) / s * gamma, per row and token, from the exact dot.
TEST(TernaryKernels, FloatOutputAppliesScaleOncePerRow) {
  std::mt19937 rng(21);
  std::normal_distribution<float> d(0.0f, 1.0f);
  const std::int64_t M = 67, K = 131, N = 3;
  std::vector<float> wf(static_cast<std::size_t>(M * K)), xf(static_cast<std::size_t>(N * K));
  for (auto& v : wf) v = d(rng);
  for (auto& v : xf) v = d(rng);
  const auto lut = TernaryMatrixLut::from_float(wf.data(), M, K, K);
  const auto w2b = TernaryMatrix2b::from_float(wf.data(), M, K, K);
  const auto act = ActivationsQ8::from_float(xf.data(), N, K, K);
  std::vector<std::int8_t> wq(static_cast<std::size_t>(M * K)), xq(static_cast<std::size_t>(N * K));
  lut.unpack(wq.data(), K);
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t k = 0; k < K; ++k) xq[static_cast<std::size_t>(n * K + k)] = act.token(n)[k];
  std::vector<std::int32_t> dot(static_cast<std::size_t>(N * M));
  ternary_gemm_i32_naive(wq.data(), M, K, K, xq.data(), N, K, dot.data(), M);
  for_each_isa([&](Isa) {
    std::vector<float> y_lut(static_cast<std::size_t>(N * M)), y_2b(y_lut.size());
    refill(y_lut);
    refill(y_2b);
    lut_gemm_f32(lut, LutTables::build(act), y_lut.data(), M);
    mad2b_gemm_f32(w2b, act, y_2b.data(), M);
    for (std::int64_t n = 0; n < N; ++n) {
      for (std::int64_t i = 0; i < M; ++i) {
        const float expected = static_cast<float>(dot[static_cast<std::size_t>(n * M + i)]) / act.scale(n) * lut.gamma();
        ASSERT_EQ(y_lut[static_cast<std::size_t>(n * M + i)], expected);
        ASSERT_EQ(y_2b[static_cast<std::size_t>(n * M + i)], expected);
      }
    }
    // And it approximates the float product (quantisation error only): a sanity check of scales.
    double err = 0.0, ref = 0.0;
    for (std::int64_t i = 0; i < M; ++i) {
      double exact = 0.0;
      for (std::int64_t k = 0; k < K; ++k)
        exact += static_cast<double>(wq[static_cast<std::size_t>(i * K + k)]) * lut.gamma() * xf[static_cast<std::size_t>(k)];
      err = std::max(err, std::abs(exact - y_lut[static_cast<std::size_t>(i)]));
      ref = std::max(ref, std::abs(exact));
    }
    EXPECT_LT(err, 0.05 * ref);
  });
}

TEST(TernaryKernels, MismatchedShapesAreRejected) {
  const std::int8_t w[6] = {1, 0, -1, 1, 0, -1};
  const std::int8_t q[4] = {1, 2, 3, 4};
  const auto lut = TernaryMatrixLut::from_int8(w, 2, 3, 3);
  const auto w2b = TernaryMatrix2b::from_int8(w, 2, 3, 3);
  std::int32_t y[4];
  EXPECT_THROW(lut_gemm_i32(lut, LutTables::from_int8(q, 1, 4, 4), y, 2), std::invalid_argument);
  EXPECT_THROW(mad2b_gemm_i32(w2b, ActivationsQ8::from_int8(q, 1, 4, 4), y, 2), std::invalid_argument);
  EXPECT_THROW(lut_gemv_i32(lut, LutTables::from_int8(q, 2, 2, 2), y), std::invalid_argument);
  EXPECT_THROW(lut_gemm_i32(lut, LutTables::from_int8(q, 1, 3, 3), y, 1), std::invalid_argument);
}

}  // namespace
}  // namespace wm::kernels
