// fp32 GEMM / GEMV: fast kernels equal the _ref bit for bit (same documented summation order) at
// every ISA level and thread count; the _ref follows the documented order and is accurate.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "isa_levels.hpp"
#include "wafermesh/kernels/fp32_gemm.hpp"

namespace wm::kernels {
namespace {

using testing::for_each_isa;
using testing::for_each_threads;

std::vector<float> random_floats(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

struct Shape {
  std::int64_t M, N, K;
};
const Shape kShapes[] = {{1, 1, 1}, {7, 5, 3},    {33, 97, 17}, {64, 64, 64},
                         {5, 33, 0}, {130, 70, 257}, {3, 1, 1000}, {1, 200, 31}};

TEST(Fp32Gemm, FastEqualsRefBitwise) {
  std::uint32_t seed = 1;
  for (const Shape& s : kShapes) {
    const std::int64_t lda = s.K + 3, ldb_nn = s.N + 2, ldb_nt = s.K + 1, ldc = s.N + 4;
    const auto A = random_floats(static_cast<std::size_t>(s.M * lda), seed++);
    const auto Bnn = random_floats(static_cast<std::size_t>(std::max<std::int64_t>(s.K, 1) * ldb_nn), seed++);
    const auto Bnt = random_floats(static_cast<std::size_t>(s.N * ldb_nt), seed++);
    const auto C0 = random_floats(static_cast<std::size_t>(s.M * ldc), seed++);
    for (bool accumulate : {false, true}) {
      SCOPED_TRACE("M=" + std::to_string(s.M) + " N=" + std::to_string(s.N) + " K=" + std::to_string(s.K) +
                   " accumulate=" + std::to_string(accumulate));
      auto ref_nn = C0, ref_nt = C0;
      gemm_f32_ref(s.M, s.N, s.K, A.data(), lda, Bnn.data(), ldb_nn, ref_nn.data(), ldc, accumulate);
      gemm_f32_abt_ref(s.M, s.N, s.K, A.data(), lda, Bnt.data(), ldb_nt, ref_nt.data(), ldc, accumulate);
      for_each_isa([&](Isa) {
        for_each_threads([&](int) {
          auto c = C0;
          gemm_f32(s.M, s.N, s.K, A.data(), lda, Bnn.data(), ldb_nn, c.data(), ldc, accumulate);
          EXPECT_TRUE(same_bits(c, ref_nn)) << "gemm_f32";
          c = C0;
          gemm_f32_abt(s.M, s.N, s.K, A.data(), lda, Bnt.data(), ldb_nt, c.data(), ldc, accumulate);
          EXPECT_TRUE(same_bits(c, ref_nt)) << "gemm_f32_abt";
        });
      });
    }
  }
}

TEST(Fp32Gemv, FastEqualsRefBitwise) {
  for (const Shape& s : kShapes) {
    const std::int64_t lda = s.K + 2;
    const auto A = random_floats(static_cast<std::size_t>(s.M * lda), 50);
    const auto x = random_floats(static_cast<std::size_t>(std::max<std::int64_t>(s.K, 1)), 51);
    const auto y0 = random_floats(static_cast<std::size_t>(s.M), 52);
    for (bool accumulate : {false, true}) {
      auto ref = y0;
      gemv_f32_ref(s.M, s.K, A.data(), lda, x.data(), ref.data(), accumulate);
      for_each_threads([&](int) {
        auto y = y0;
        gemv_f32(s.M, s.K, A.data(), lda, x.data(), y.data(), accumulate);
        EXPECT_TRUE(same_bits(y, ref)) << "M=" << s.M << " K=" << s.K;
      });
    }
  }
}

// k ascending with fp32 rounding at every step: (1e8 + 1) rounds back to 1e8, so the sum is 0;
// any other order (e.g. 1 added last, or pairwise) gives 1.
TEST(Fp32Gemm, SummationOrderIsKAscending) {
  const float A[3] = {1e8f, 1.0f, -1e8f};
  const float B[3] = {1.0f, 1.0f, 1.0f};
  float c = -7.0f, y = -7.0f;
  gemm_f32_ref(1, 1, 3, A, 3, B, 1, &c, 1, false);
  gemv_f32_ref(1, 3, A, 3, B, &y, false);
  EXPECT_EQ(c, 0.0f);
  EXPECT_EQ(y, 0.0f);
  for_each_isa([&](Isa) {
    float cf = -7.0f, yf = -7.0f;
    gemm_f32(1, 1, 3, A, 3, B, 1, &cf, 1, false);
    gemv_f32(1, 3, A, 3, B, &yf, false);
    EXPECT_EQ(cf, 0.0f);
    EXPECT_EQ(yf, 0.0f);
  });
}

TEST(Fp32Gemm, RefIsAccurate) {
  const std::int64_t M = 9, N = 11, K = 301;
  const auto A = random_floats(static_cast<std::size_t>(M * K), 60);
  const auto B = random_floats(static_cast<std::size_t>(K * N), 61);
  std::vector<float> C(static_cast<std::size_t>(M * N), 0.5f);
  gemm_f32_ref(M, N, K, A.data(), K, B.data(), N, C.data(), N, true);
  for (std::int64_t i = 0; i < M; ++i) {
    for (std::int64_t j = 0; j < N; ++j) {
      double exact = 0.5, mag = 0.5;
      for (std::int64_t k = 0; k < K; ++k) {
        exact += double{A[static_cast<std::size_t>(i * K + k)]} * B[static_cast<std::size_t>(k * N + j)];
        mag += std::fabs(double{A[static_cast<std::size_t>(i * K + k)]} * B[static_cast<std::size_t>(k * N + j)]);
      }
      // recursive summation bound: (K + 1) u sum|terms|
      EXPECT_LE(std::fabs(C[static_cast<std::size_t>(i * N + j)] - exact), (K + 1) * 6e-8 * mag);
    }
  }
}

}  // namespace
}  // namespace wm::kernels
