// Quantisers, packed formats (round trip, sizes) and the per-token lookup tables.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <random>
#include <vector>

#include "isa_levels.hpp"
#include "wafermesh/kernels/activations.hpp"
#include "wafermesh/kernels/pack.hpp"
#include "wafermesh/kernels/quantize.hpp"

namespace wm::kernels {
namespace {

using testing::for_each_isa;

std::vector<std::int8_t> random_ternary(std::int64_t M, std::int64_t K, std::int64_t ld,
                                        std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(-1, 1);
  std::vector<std::int8_t> w(static_cast<std::size_t>(M * ld), 99);  // 99 in the padding: must be ignored
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t k = 0; k < K; ++k) w[static_cast<std::size_t>(i * ld + k)] = static_cast<std::int8_t>(d(rng));
  return w;
}

TEST(Quantize, AbsmeanHandWorkedExample) {
  // mean|W| = (0.2 + 0.6 + 1.5 + 0 + 2.9 + 0.4) / 6; W / gamma = .21 -.64 1.61 0 -3.11 .43
  const float w[6] = {0.2f, -0.6f, 1.5f, 0.0f, -2.9f, 0.4f};
  std::int8_t q[6];
  const float gamma = quantize_weights_absmean(w, 2, 3, 3, q, 3);
  const double expected_gamma = (0.2 + 0.6 + 1.5 + 0.0 + 2.9 + 0.4) / 6.0;
  EXPECT_NEAR(gamma, expected_gamma, 1e-6);
  const std::int8_t expected[6] = {0, -1, 1, 0, -1, 0};
  for (int j = 0; j < 6; ++j) EXPECT_EQ(q[j], expected[j]) << j;
}

TEST(Quantize, AbsmeanRoundsHalfToEvenAndClamps) {
  // gamma = 1: 0.5 and -0.5 round to 0 (half to even, as torch.round), 2 clamps to 1.
  const float w[4] = {0.5f, -0.5f, 1.0f, 2.0f};
  std::int8_t q[4];
  EXPECT_FLOAT_EQ(quantize_weights_absmean(w, 1, 4, 4, q, 4), 1.0f);
  EXPECT_EQ(q[0], 0);
  EXPECT_EQ(q[1], 0);
  EXPECT_EQ(q[2], 1);
  EXPECT_EQ(q[3], 1);
}

TEST(Quantize, AbsmeanAllZeroHasFiniteScale) {
  const std::vector<float> w(12, 0.0f);
  std::vector<std::int8_t> q(12, 7);
  const float gamma = quantize_weights_absmean(w.data(), 3, 4, 4, q.data(), 4);
  EXPECT_EQ(gamma, kQuantScaleFloor);
  for (auto v : q) EXPECT_EQ(v, 0);
}

TEST(Quantize, AbsmaxWorkedExampleAndZeroRow) {
  // Row 0: max|x| = 2, s = 63.5: 1 * 63.5 = 63.5 -> 64 (half to even), -2 -> -127, 0.5 -> 31.75 -> 32.
  // Row 1: all zero -> finite scale, all-zero codes.
  const float x[8] = {1.0f, -2.0f, 0.5f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  std::int8_t q[8];
  float s[2];
  quantize_activations_absmax(x, 2, 4, 4, q, 4, s);
  EXPECT_FLOAT_EQ(s[0], 63.5f);
  EXPECT_EQ(q[0], 64);
  EXPECT_EQ(q[1], -127);
  EXPECT_EQ(q[2], 32);
  EXPECT_EQ(q[3], 0);
  EXPECT_TRUE(std::isfinite(s[1]));
  EXPECT_GT(s[1], 0.0f);
  for (int k = 4; k < 8; ++k) EXPECT_EQ(q[k], 0);
}

TEST(Quantize, AbsmaxRandomRowsHitFullRangeWithinHalfStep) {
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.0f, 3.0f);
  const std::int64_t N = 9, K = 301, ld = 305;
  std::vector<float> x(static_cast<std::size_t>(N * ld));
  for (auto& v : x) v = d(rng);
  std::vector<std::int8_t> q(static_cast<std::size_t>(N * K));
  std::vector<float> s(N);
  quantize_activations_absmax(x.data(), N, K, ld, q.data(), K, s.data());
  for (std::int64_t n = 0; n < N; ++n) {
    int qmax = 0;
    for (std::int64_t k = 0; k < K; ++k) {
      const int v = q[static_cast<std::size_t>(n * K + k)];
      ASSERT_GE(v, -127);
      ASSERT_LE(v, 127);
      qmax = std::max(qmax, std::abs(v));
      EXPECT_LE(std::fabs(x[static_cast<std::size_t>(n * ld + k)] - v / s[n]), 0.5f / s[n] * 1.0001f);
    }
    EXPECT_EQ(qmax, 127) << "token " << n;
  }
}

// The split form (a scale found elsewhere, then the codes) gives the codes of
// clamp(std::nearbyint(x * s), -127, 127) for every float: halves, the values next to them, the
// clamp's edges, magnitudes up to and beyond 2^22 (where its rounding trick is inexact but the
// clamp decides), zeros of both signs.
TEST(Quantize, ScaledCodesEqualNearbyintForEveryKindOfValue) {
  std::vector<float> x;
  for (int i = -300; i <= 300; ++i) {
    const float h = static_cast<float>(i) * 0.5f;
    x.insert(x.end(), {h, std::nextafter(h, 1e9f), std::nextafter(h, -1e9f)});
  }
  for (float big : {0x1p21f, 0x1p22f, 0x1.8p22f, 0x1p23f, 0x1.8p23f, 0x1p24f, 0x1p30f, 3e38f})
    x.insert(x.end(), {big, -big, std::nextafter(big, 0.0f), -std::nextafter(big, 0.0f)});
  x.insert(x.end(), {0.0f, -0.0f, 1e-30f, -1e-30f});
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> d(-200.0f, 200.0f);
  for (int i = 0; i < 10000; ++i) x.push_back(d(rng));
  for (float s : {1.0f, 0.37f, absmax_scale(0.0f), absmax_scale(2.5f)}) {
    std::vector<std::int8_t> q(x.size());
    quantize_activations_scaled(x.data(), static_cast<std::int64_t>(x.size()), s, q.data());
    for (std::size_t k = 0; k < x.size(); ++k) {
      const float want = std::clamp(std::nearbyint(x[k] * s), -127.0f, 127.0f);
      ASSERT_EQ(q[k], static_cast<std::int8_t>(want)) << "x = " << x[k] << ", s = " << s;
    }
  }
  EXPECT_EQ(absmax_scale(2.0f), 63.5f);
  EXPECT_EQ(absmax_scale(0.0f), 127.0f / kQuantScaleFloor);
}

struct Shape {
  std::int64_t M, K;
};
const Shape kPackShapes[] = {{1, 1}, {7, 5}, {33, 97}, {64, 3}, {65, 4}, {1, 256}, {3, 257},
                             {130, 1000}, {2560, 6912}};

template <class Matrix>
void check_round_trip(std::int64_t M, std::int64_t K, const std::vector<std::int8_t>& w, std::int64_t ld) {
  const Matrix m = Matrix::from_int8(w.data(), M, K, ld);
  EXPECT_EQ(m.rows(), M);
  EXPECT_EQ(m.cols(), K);
  std::vector<std::int8_t> out(static_cast<std::size_t>(M * K), 42);
  m.unpack(out.data(), K);
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t k = 0; k < K; ++k)
      ASSERT_EQ(out[static_cast<std::size_t>(i * K + k)], w[static_cast<std::size_t>(i * ld + k)])
          << "M=" << M << " K=" << K << " at (" << i << ", " << k << ")";
}

TEST(Pack, RoundTripIsExactForEveryShape) {
  std::uint32_t seed = 1;
  for (const Shape& s : kPackShapes) {
    const std::int64_t ld = s.K + 3;
    const auto w = random_ternary(s.M, s.K, ld, seed++);
    check_round_trip<TernaryMatrix2b>(s.M, s.K, w, ld);
    check_round_trip<TernaryMatrixLut>(s.M, s.K, w, ld);
    for (int v : {-1, 1}) {  // constant matrices: every group is the same extreme pattern
      std::vector<std::int8_t> c(static_cast<std::size_t>(s.M * s.K), static_cast<std::int8_t>(v));
      if (s.M * s.K > 1'000'000) continue;
      check_round_trip<TernaryMatrix2b>(s.M, s.K, c, s.K);
      check_round_trip<TernaryMatrixLut>(s.M, s.K, c, s.K);
    }
  }
}

TEST(Pack, SizesMatchTheFormats) {
  for (const Shape& s : kPackShapes) {
    const auto w = random_ternary(s.M, s.K, s.K, 3);
    const auto m2 = TernaryMatrix2b::from_int8(w.data(), s.M, s.K, s.K);
    const auto ml = TernaryMatrixLut::from_int8(w.data(), s.M, s.K, s.K);
    const std::int64_t kp = (s.K + 255) / 256 * 256;
    EXPECT_EQ(m2.bytes(), s.M * kp / 4);
    const std::int64_t tiles = (s.M + 63) / 64, pairs = ((s.K + 2) / 3 + 1) / 2;
    EXPECT_EQ(ml.bytes(), tiles * pairs * 80);
  }
  // Unpadded shape: exactly 5/3 bits per weight.
  const auto w = random_ternary(2560, 6912, 6912, 4);
  const auto ml = TernaryMatrixLut::from_int8(w.data(), 2560, 6912, 6912);
  EXPECT_EQ(ml.bytes() * 8 * 3, std::int64_t{2560} * 6912 * 5);
}

TEST(Pack, RejectsNonTernaryValues) {
  const std::int8_t w[4] = {0, 1, 2, -1};
  EXPECT_THROW(TernaryMatrix2b::from_int8(w, 1, 4, 4), std::invalid_argument);
  EXPECT_THROW(TernaryMatrixLut::from_int8(w, 1, 4, 4), std::invalid_argument);
}

TEST(Pack, FromFloatEqualsQuantiseThenPack) {
  std::mt19937 rng(9);
  std::normal_distribution<float> d(0.0f, 0.02f);
  const std::int64_t M = 37, K = 100;
  std::vector<float> w(static_cast<std::size_t>(M * K));
  for (auto& v : w) v = d(rng);
  std::vector<std::int8_t> q(static_cast<std::size_t>(M * K));
  const float gamma = quantize_weights_absmean(w.data(), M, K, K, q.data(), K);
  const auto ml = TernaryMatrixLut::from_float(w.data(), M, K, K);
  const auto m2 = TernaryMatrix2b::from_float(w.data(), M, K, K);
  EXPECT_EQ(ml.gamma(), gamma);
  EXPECT_EQ(m2.gamma(), gamma);
  std::vector<std::int8_t> ul(q.size()), u2(q.size());
  ml.unpack(ul.data(), K);
  m2.unpack(u2.data(), K);
  EXPECT_EQ(ul, q);
  EXPECT_EQ(u2, q);
}

// The table entry e must be the sum for the balanced-ternary pattern of e, derived here
// independently of the library's digit tables.
int entry_sum(int e, int a0, int a1, int a2) {
  int d[3], v = e;
  for (int j = 2; j >= 0; --j) {
    int r = ((v % 3) + 3) % 3;
    if (r == 2) r = -1;
    d[j] = r;
    v = (v - r) / 3;
  }
  return d[0] * a0 + d[1] * a1 + d[2] * a2;
}

// Entry e of group g: low byte at pair offset + 32 (g % 2) + e, high byte 64 further; each 16-byte
// run is stored twice (one copy per 128-bit lane), checked too.
int table_entry(const std::uint8_t* token_tables, std::int64_t g, int e) {
  const std::uint8_t* lo = token_tables + (g / 2) * 128 + (g % 2) * 32;
  EXPECT_EQ(lo[e], lo[16 + e]);
  EXPECT_EQ(lo[64 + e], lo[80 + e]);
  return static_cast<std::int16_t>(lo[e] | (lo[64 + e] << 8));
}

TEST(LutTables, WorkedExampleFromTheHeader) {
  const std::int8_t q[3] = {10, -3, 1};
  for_each_isa([&](Isa) {
    const auto t = LutTables::from_int8(q, 1, 3, 3);
    EXPECT_EQ(table_entry(t.token(0), 0, 5), 12);  // pattern (1, -1, -1)
    EXPECT_EQ(t.token(0)[5], 0x0C);
    EXPECT_EQ(t.token(0)[64 + 5], 0x00);
  });
}

TEST(LutTables, EveryLevelBuildsTheExactSums) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> d(-128, 127);
  for (std::int64_t K : {1, 2, 3, 4, 5, 97, 301, 16384}) {
    const std::int64_t N = 3;
    std::vector<std::int8_t> q(static_cast<std::size_t>(N * K));
    for (auto& v : q) v = static_cast<std::int8_t>(d(rng));
    if (K == 16384) std::fill(q.begin(), q.begin() + K, std::int8_t{-128});  // extremes: |entry| = 384
    for_each_isa([&](Isa) {
      const auto t = LutTables::from_int8(q.data(), N, K, K);
      const auto t2 = LutTables::build(ActivationsQ8::from_int8(q.data(), N, K, K));
      ASSERT_EQ(t.groups(), (K + 2) / 3);
      for (std::int64_t n = 0; n < N; ++n) {
        const std::int8_t* qn = q.data() + n * K;
        for (std::int64_t g = 0; g < t.groups(); ++g) {
          const std::int64_t k = 3 * g, left = K - k;
          // full group (a0 a1 a2); two-weight tail (a0, a1) is the pattern (0, a0, a1)
          const int a0 = left >= 3 ? qn[k] : 0;
          const int a1 = left >= 3 ? qn[k + 1] : qn[k];
          const int a2 = left >= 3 ? qn[k + 2] : (left == 2 ? qn[k + 1] : 0);
          for (int e = 0; e < 14; ++e) {
            ASSERT_EQ(table_entry(t.token(n), g, e), entry_sum(e, a0, a1, a2)) << "K=" << K << " g=" << g << " e=" << e;
          }
          ASSERT_EQ(table_entry(t.token(n), g, 14), 0);
          ASSERT_EQ(table_entry(t.token(n), g, 15), 0);
        }
        if (t.groups() % 2 == 1) {  // the padding group of an odd count is all zero
          for (int e = 0; e < 16; ++e) ASSERT_EQ(table_entry(t.token(n), t.groups(), e), 0);
        }
        ASSERT_EQ(0, std::memcmp(t.token(n), t2.token(n), static_cast<std::size_t>(t.pairs() * 128)));
      }
    });
  }
}

}  // namespace
}  // namespace wm::kernels

TEST(TernaryMatrixLutSerialize, RoundTripIsExact) {
  for (auto [M, K] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {7, 5}, {65, 130}, {64, 3}}) {
    std::vector<std::int8_t> w(static_cast<std::size_t>(M * K));
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<std::int8_t>(int(i * 7 % 3) - 1);
    const auto m = wm::kernels::TernaryMatrixLut::from_int8(w.data(), M, K, K);
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(wm::kernels::TernaryMatrixLut::serialized_bytes(M, K)));
    m.serialize(bytes.data());
    const auto back = wm::kernels::TernaryMatrixLut::deserialize(bytes.data(), M, K);
    std::vector<std::int8_t> out(w.size(), 9);
    back.unpack(out.data(), K);
    EXPECT_EQ(out, w) << M << "x" << K;
    EXPECT_EQ(std::memcmp(back.neg_count(), m.neg_count(), sizeof(std::int32_t) * std::size_t(m.tiles() * 64)), 0);
  }
}
