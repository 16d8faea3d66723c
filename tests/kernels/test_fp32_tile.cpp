// gemm_f32_tile equals gemm_f32_ref bit for bit at every ISA level, on awkward shapes, both B
// layouts, with and without accumulation and with leading dimensions wider than the matrices.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "isa_levels.hpp"
#include "wafermesh/kernels/fp32_gemm.hpp"
#include "wafermesh/kernels/fp32_tile.hpp"

using namespace wm::kernels;

TEST(Fp32Tile, BitwiseEqualToReferenceAtEveryIsaLevel) {
  struct Shape { std::int64_t M, N, K; };
  const Shape shapes[] = {{1, 1, 1}, {7, 5, 3}, {8, 32, 64}, {33, 97, 65}, {64, 64, 64}, {70, 31, 129}, {3, 200, 2}};
  std::mt19937 g(7);
  std::uniform_real_distribution<float> u(-1, 1);
  wm::kernels::testing::for_each_isa([&](Isa) {
    for (const Shape& s : shapes)
      for (bool bt : {false, true})
        for (bool accumulate : {false, true}) {
          const std::int64_t lda = s.K + 3, ldb = (bt ? s.K : s.N) + 5, ldc = s.N + 2;
          std::vector<float> A(size_t(s.M * lda)), B(size_t((bt ? s.N : s.K) * ldb)), C0(size_t(s.M * ldc));
          for (auto& v : A) v = u(g);
          for (auto& v : B) v = u(g);
          for (auto& v : C0) v = u(g);
          std::vector<float> want = C0, got = C0;
          if (bt) gemm_f32_abt_ref(s.M, s.N, s.K, A.data(), lda, B.data(), ldb, want.data(), ldc, accumulate);
          else gemm_f32_ref(s.M, s.N, s.K, A.data(), lda, B.data(), ldb, want.data(), ldc, accumulate);
          gemm_f32_tile(s.M, s.N, s.K, A.data(), lda, B.data(), ldb, bt, got.data(), ldc, accumulate);
          EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
              << s.M << "x" << s.N << "x" << s.K << (bt ? " B^T" : "") << (accumulate ? " +=" : " =");
        }
  });
}
