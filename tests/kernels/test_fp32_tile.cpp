// gemm_f32_tile equals gemm_f32_ref bit for bit at every ISA level, on awkward shapes, both B
// layouts, with and without accumulation and with leading dimensions wider than the matrices.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <stdexcept>
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

// gemv_f32_panels on packed panels equals gemv_f32_ref on the row-major matrix bit for bit at every
// ISA level: panel counts that are and are not multiples of the group of four, narrow last panels
// (whose 16-wide loads must stop before the end of the buffer), full groups of 64 rows with and
// without tail panels, K = 1 and K below 16.
TEST(Fp32Panels, BitwiseEqualToReferenceAtEveryIsaLevel) {
  struct Shape { std::int64_t M, K; };
  const Shape shapes[] = {{1, 1}, {1, 40}, {7, 5}, {15, 1}, {16, 3}, {17, 97}, {33, 2}, {64, 80},
                          {65, 17}, {127, 4}, {128, 21}, {143, 80}, {250, 13}, {1000, 9}};
  std::mt19937 g(11);
  std::uniform_real_distribution<float> u(-1, 1);
  wm::kernels::testing::for_each_isa([&](Isa) {
    for (const Shape& s : shapes)
      for (bool accumulate : {false, true}) {
        const std::int64_t lda = s.K + 2;
        std::vector<float> A(size_t(s.M * lda)), x(size_t(s.K)), y0(size_t(s.M));
        for (auto& v : A) v = u(g);
        for (auto& v : x) v = u(g);
        for (auto& v : y0) v = u(g);
        // Exactly M K floats: a read past the end would show under the sanitizer or as a crash.
        std::vector<float> Ap(size_t(s.M * s.K));
        pack_f32_panels(s.M, s.K, A.data(), lda, Ap.data());
        std::vector<float> want = y0, got = y0;
        gemv_f32_ref(s.M, s.K, A.data(), lda, x.data(), want.data(), accumulate);
        gemv_f32_panels(s.M, s.K, Ap.data(), x.data(), got.data(), accumulate);
        EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
            << s.M << "x" << s.K << (accumulate ? " +=" : " =");
      }
  });
}

// bf16 panels: on weights exact in bf16, gemv_bf16_panels (and its threaded form) equals
// gemv_f32_ref bit for bit at every ISA level, on the same awkward shapes; the packed halves sit
// where pack_f32_panels puts the floats, except that each run of 32 in a group's column
// interleaves rows j and j + 16; one value with a low bit set makes the matrix inexact and
// the pack refuse it.
TEST(Bf16Panels, BitwiseEqualToTheFp32ReferenceAtEveryIsaLevel) {
  struct Shape { std::int64_t M, K; };
  const Shape shapes[] = {{1, 1}, {1, 40}, {7, 5}, {15, 1}, {16, 3}, {17, 97}, {33, 2}, {64, 80},
                          {65, 17}, {127, 4}, {128, 21}, {143, 80}, {250, 13}, {1000, 9}};
  std::mt19937 g(12);
  std::uniform_real_distribution<float> u(-1, 1);
  auto bf16_round_down = [](float v) {  // drop the low 16 bits: exact in bf16
    std::uint32_t b;
    std::memcpy(&b, &v, 4);
    b &= 0xFFFF0000u;
    std::memcpy(&v, &b, 4);
    return v;
  };
  wm::kernels::testing::for_each_isa([&](Isa) {
    for (const Shape& s : shapes)
      for (bool accumulate : {false, true}) {
        const std::int64_t lda = s.K + 3;
        std::vector<float> A(size_t(s.M * lda)), x(size_t(s.K)), y0(size_t(s.M));
        for (auto& v : A) v = bf16_round_down(u(g));
        for (auto& v : x) v = u(g);
        for (auto& v : y0) v = u(g);
        ASSERT_TRUE(bf16_exact(s.M, s.K, A.data(), lda));
        std::vector<std::uint16_t> Ap(size_t(s.M * s.K));  // exactly M K halves
        pack_bf16_panels(s.M, s.K, A.data(), lda, Ap.data());
        std::vector<float> Af(size_t(s.M * s.K));
        pack_f32_panels(s.M, s.K, A.data(), lda, Af.data());
        const std::int64_t grouped = s.M / 64 * 64 * s.K;  // group columns: runs of 32, rows j, j + 16 interleaved
        for (std::int64_t i = 0; i < s.M * s.K; ++i) {
          std::int64_t from = i;
          if (i < grouped) {
            const std::int64_t col = i / 32 * 32, slot = i % 32;
            from = col + (slot % 2 == 0 ? slot / 2 : 16 + slot / 2);
          }
          std::uint32_t b;
          std::memcpy(&b, &Af[size_t(from)], 4);
          ASSERT_EQ(Ap[size_t(i)], std::uint16_t(b >> 16)) << s.M << "x" << s.K << " element " << i;
        }
        std::vector<float> want = y0, got = y0, got_mt = y0;
        gemv_f32_ref(s.M, s.K, A.data(), lda, x.data(), want.data(), accumulate);
        gemv_bf16_panels(s.M, s.K, Ap.data(), x.data(), got.data(), accumulate);
        gemv_bf16_panels_mt(s.M, s.K, Ap.data(), x.data(), got_mt.data(), accumulate);
        EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
            << s.M << "x" << s.K << (accumulate ? " +=" : " =");
        EXPECT_EQ(std::memcmp(want.data(), got_mt.data(), want.size() * sizeof(float)), 0)
            << "threaded " << s.M << "x" << s.K << (accumulate ? " +=" : " =");
        A[size_t((s.M - 1) * lda + s.K - 1)] = bf16_round_down(0.3f) + 0x1p-20f;  // low bits set
        EXPECT_FALSE(bf16_exact(s.M, s.K, A.data(), lda));
        EXPECT_THROW(pack_bf16_panels(s.M, s.K, A.data(), lda, Ap.data()), std::invalid_argument);
      }
  });
}

// The layout itself: full groups of 64 rows column by column (element (64g + c, k) at
// 64g K + 64k + c), then the remaining rows as panels of 16 and a narrower last one (element
// (r0 + 16p + j, k) of a panel of width w at (r0 + 16p) K + k w + j).
TEST(Fp32Panels, PackLayout) {
  const std::int64_t M = 64 + 19, K = 3;
  std::vector<float> A(size_t(M * K));
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t k = 0; k < K; ++k) A[size_t(i * K + k)] = float(1000 * i + k);
  std::vector<float> Ap(size_t(M * K));
  pack_f32_panels(M, K, A.data(), K, Ap.data());
  EXPECT_EQ(Ap[0], 0.0f);        // row 0, col 0
  EXPECT_EQ(Ap[1], 1000.0f);     // row 1, col 0
  EXPECT_EQ(Ap[63], 63000.0f);   // row 63, col 0
  EXPECT_EQ(Ap[64], 1.0f);       // row 0, col 1
  EXPECT_EQ(Ap[2 * 64 + 17], 17002.0f);  // row 17, col 2
  const std::int64_t r0 = 64 * K;  // the tail panels start after the group
  EXPECT_EQ(Ap[r0 + 0], 64000.0f);   // row 64, col 0
  EXPECT_EQ(Ap[r0 + 1], 65000.0f);   // row 65, col 0
  EXPECT_EQ(Ap[r0 + 16], 64001.0f);  // row 64, col 1
  EXPECT_EQ(Ap[r0 + 48], 80000.0f);  // second tail panel (w = 3): row 80, col 0
  EXPECT_EQ(Ap[r0 + 48 + 3 + 2], 82001.0f);  // row 82, col 1
}

// The threaded variant gives the same bits at 1, 2 and 3 threads (and equals the reference).
TEST(Fp32Panels, ThreadedEqualsReferenceAtEveryThreadCount) {
  const std::int64_t M = 16 * 70 + 5, K = 37;
  std::mt19937 g(3);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> A(static_cast<size_t>(M * K)), x(static_cast<size_t>(K)), Ap(A.size()), want(static_cast<size_t>(M));
  for (auto& v : A) v = u(g);
  for (auto& v : x) v = u(g);
  pack_f32_panels(M, K, A.data(), K, Ap.data());
  gemv_f32_ref(M, K, A.data(), K, x.data(), want.data(), false);
  wm::kernels::testing::for_each_isa([&](Isa) {
    wm::kernels::testing::for_each_threads([&](int) {
      std::vector<float> got(size_t(M), 7.0f);
      gemv_f32_panels_mt(M, K, Ap.data(), x.data(), got.data(), false);
      EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0);
    });
  });
}
