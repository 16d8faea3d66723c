// MeshGEMV: ternary exact against the plain integer GEMV, fp32 bitwise against the reference in the
// algorithm's order (and close to a double-precision sum), every allreduce, both axes, awkward
// shapes, at 1, 2 and 4 ranks; consecutive GEMVs alternate axes on tiles left in place.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <tuple>

#include "fabric_test_util.hpp"
#include "wafermesh/dist/gemv.hpp"
#include "wafermesh/kernels/pack.hpp"
#include "wafermesh/util/error.hpp"

using namespace wm;
using namespace wm::dist;
using namespace wm::test;

namespace {
std::vector<int8_t> ternary(int64_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::vector<int8_t> v(static_cast<size_t>(n));
  for (auto& e : v) e = int8_t(int(g() % 3) - 1);
  return v;
}
std::vector<int8_t> int8s(int64_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::vector<int8_t> v(static_cast<size_t>(n));
  for (auto& e : v) e = int8_t(int(g() % 256) - 128);
  return v;
}
std::vector<float> floats(int64_t n, uint32_t seed) { return random_floats(n, seed, -1.0f, 1.0f); }
// A P x P GEMV at (1, 2), and its name in failure messages.
GemvSpec spec_of(int32_t P, int64_t M, int64_t K, Axis ax, AllreduceAlgo algo) {
  GemvSpec s;
  s.P = P;
  s.origin = {1, 2};
  s.M = M;
  s.K = K;
  s.reduce_axis = ax;
  s.allreduce.algo = algo;
  return s;
}
std::string name_of(const GemvSpec& s) {
  return std::string(allreduce_algo_name(s.allreduce.algo)) + " P=" + std::to_string(s.P) + " " + std::to_string(s.M) +
         "x" + std::to_string(s.K) + (s.reduce_axis == Axis::X ? " X" : " Y");
}
}  // namespace

TEST(MeshGemv, TernaryIsExactForEveryAllreduceAxisAndShape) {
  MachineParams mp = small_machine(8, 8);
  Fabric f(MPI_COMM_WORLD, mp);
  struct Shape { int64_t M, K; };
  for (int32_t P : {1, 2, 3, 5})
    for (Shape sh : {Shape{1, 1}, Shape{7, 11}, Shape{65, 130}, Shape{13, 200}})
      for (Axis ax : {Axis::X, Axis::Y})
        for (AllreduceAlgo algo : {AllreduceAlgo::pipeline, AllreduceAlgo::ring, AllreduceAlgo::ktree}) {
          const GemvSpec s = spec_of(P, sh.M, sh.K, ax, algo);
          const auto W = ternary(s.M * s.K, 5), x = int8s(s.K, 6);
          MeshGemvTernary g(f, s, W.data());
          std::vector<int32_t> y(size_t(s.M), -1);
          const GemvReport rep = g.run(x.data(), y.data());
          if (world_rank() != 0) continue;
          const std::string what = name_of(s);
          for (int64_t i = 0; i < s.M; ++i) {
            int32_t want = 0;
            for (int64_t k = 0; k < s.K; ++k) want += int32_t(W[size_t(i * s.K + k)]) * int32_t(x[size_t(k)]);
            ASSERT_EQ(y[size_t(i)], want) << what << " row " << i;
          }
          if (P > 1) {
            EXPECT_GT(rep.critical_stages, 0u) << what;
          }
        }
}

TEST(MeshGemv, WorstCaseInt8AndAllOnesStayExact) {
  Fabric f(MPI_COMM_WORLD, small_machine(4, 4));
  GemvSpec s;
  s.P = 4;
  s.M = 9;
  s.K = 4099;  // K not divisible by 3 or by P
  for (int8_t w : {int8_t(1), int8_t(-1)}) {
    const std::vector<int8_t> W(size_t(s.M * s.K), w), x(size_t(s.K), int8_t(-128));
    MeshGemvTernary g(f, s, W.data());
    std::vector<int32_t> y(size_t(s.M));
    g.run(x.data(), y.data());
    if (world_rank() == 0) {
      for (int32_t v : y) EXPECT_EQ(v, int32_t(w) * -128 * 4099);
    }
  }
}

TEST(MeshGemv, Fp32BitwiseAgainstReferenceInItsOrder) {
  Fabric f(MPI_COMM_WORLD, small_machine(8, 8));
  for (int32_t P : {1, 2, 3, 7})
    for (Axis ax : {Axis::X, Axis::Y})
      for (AllreduceAlgo algo : {AllreduceAlgo::pipeline, AllreduceAlgo::ring, AllreduceAlgo::ktree}) {
        GemvSpec s;
        s.P = P;
        s.M = 29;
        s.K = 31;
        s.reduce_axis = ax;
        s.allreduce.algo = algo;
        const auto W = floats(s.M * s.K, 7), x = floats(s.K, 8);
        MeshGemvF32 g(f, s, W.data());
        std::vector<float> y(size_t(s.M));
        g.run(x.data(), y.data());
        if (world_rank() != 0) continue;
        const std::vector<float> want = gemv_f32_reference(s, W.data(), x.data());
        EXPECT_EQ(std::memcmp(y.data(), want.data(), y.size() * sizeof(float)), 0)
            << allreduce_algo_name(algo) << " P=" << P;
        for (int64_t i = 0; i < s.M; ++i) {
          double sum = 0, mag = 0;
          for (int64_t k = 0; k < s.K; ++k) {
            sum += double(W[size_t(i * s.K + k)]) * x[size_t(k)];
            mag += std::fabs(double(W[size_t(i * s.K + k)]) * x[size_t(k)]);
          }
          EXPECT_NEAR(y[size_t(i)], sum, mag * double(s.K) * 1.2e-7);
        }
      }
}

// Weights exact in bf16 are kept in bf16 on the host: y is still bitwise the reference's, and the
// wafer is charged the same SRAM as for fp32 blocks (one inexact weight keeps the fp32 storage).
// Blocks of 64 rows and more take the grouped panel layout.
TEST(MeshGemv, Fp32WeightsExactInBf16KeepTheirResultsAndTheirSram) {
  for (int32_t P : {1, 2, 3})
    for (Axis ax : {Axis::X, Axis::Y}) {
      GemvSpec s;
      s.P = P;
      s.M = 203;
      s.K = 45;
      s.reduce_axis = ax;
      auto W = floats(s.M * s.K, 17);
      for (float& w : W) {  // drop the low 16 bits: exact in bf16
        uint32_t b;
        std::memcpy(&b, &w, 4);
        b &= 0xFFFF0000u;
        std::memcpy(&w, &b, 4);
      }
      const auto x = floats(s.K, 18);
      auto inexact = W;
      inexact[size_t(s.M * s.K / 2)] += 0x1p-20f;
      uint64_t sram[2] = {0, 0};
      for (int v = 0; v < 2; ++v) {
        Fabric f(MPI_COMM_WORLD, small_machine(8, 8));
        MeshGemvF32 g(f, s, v == 0 ? W.data() : inexact.data());
        EXPECT_EQ(g.host_bf16(), v == 0) << "P=" << P;
        sram[v] = f.summarize({0, 0, P, P}).max_sram_peak_bytes;
        if (v == 1) continue;
        std::vector<float> y(size_t(s.M));
        g.run(x.data(), y.data());
        if (world_rank() != 0) continue;
        const std::vector<float> want = gemv_f32_reference(s, W.data(), x.data());
        EXPECT_EQ(std::memcmp(y.data(), want.data(), y.size() * sizeof(float)), 0) << "P=" << P;
      }
      EXPECT_EQ(sram[0], sram[1]) << "P=" << P;
      EXPECT_GE(sram[0], uint64_t((s.M + P - 1) / P * ((s.K + P - 1) / P)) * 4) << "P=" << P;
    }
}

TEST(MeshGemv, ConsecutiveGemvsAlternateAxesWithoutRelayout) {
  Fabric f(MPI_COMM_WORLD, small_machine(6, 6));
  const int32_t P = 5;
  GemvSpec s1, s2;
  s1.P = s2.P = P;
  s1.M = 20;  // y1 blocks of 4 are exactly the x blocks of the second GEMV
  s1.K = 13;
  s1.reduce_axis = Axis::X;
  s2.M = 17;
  s2.K = 20;
  s2.reduce_axis = Axis::Y;
  const auto W1 = floats(s1.M * s1.K, 1), W2 = floats(s2.M * s2.K, 2), x = floats(s1.K, 3);
  MeshGemvF32 g1(f, s1, W1.data()), g2(f, s2, W2.data());
  const Region R{0, 0, P, P};
  TileBuf<float> xt(f, R, 3, "x");  // kt = ceil(13/5) = 3, x block c at column c
  xt.for_each_local([&](int32_t px, int32_t, float* t) {
    for (int k = 0; k < 3; ++k) t[k] = px * 3 + k < 13 ? x[size_t(px * 3 + k)] : 0.0f;
  });
  GemvReport r1, r2;
  TileBuf<float> y1 = g1.run_tiles(xt, &r1);  // y1 block r on every PE of row r
  TileBuf<float> y2 = g2.run_tiles(y1, &r2);  // consumed in place as x blocks along Y
  // Every PE of column c holds y2 block c (mt = ceil(17/5) = 4).
  const std::vector<float> all = y2.gather();
  if (world_rank() != 0) return;
  const std::vector<float> y1w = gemv_f32_reference(s1, W1.data(), x.data());
  const std::vector<float> y2w = gemv_f32_reference(s2, W2.data(), y1w.data());
  for (int32_t py = 0; py < P; ++py)
    for (int32_t px = 0; px < P; ++px)
      for (int i = 0; i < 4; ++i) {
        const int64_t gi = px * 4 + i;
        if (gi >= 17) continue;
        EXPECT_EQ(all[(size_t(py) * P + size_t(px)) * 4 + size_t(i)], y2w[size_t(gi)]) << px << "," << py;
      }
}

// run_line_sums gives every line's y block exactly as run_tiles leaves it on each PE of the line,
// and leaves every PE's clocks, counters and SRAM (peak included, while the caller holds the
// tiles' charge) as run_tiles does; twice in a row (the sums start from zero every run).
TEST(MeshGemv, LineSumsAreTheRunTilesBlocksWithItsFigures) {
  const MachineParams mp = small_machine(8, 8);
  struct Shape { int64_t M, K; };
  for (int32_t P : {1, 3, 5})
    for (Shape sh : {Shape{7, 11}, Shape{65, 130}})
      for (Axis ax : {Axis::X, Axis::Y})
        for (AllreduceAlgo algo : {AllreduceAlgo::pipeline, AllreduceAlgo::ring, AllreduceAlgo::ktree}) {
          GemvSpec s = spec_of(P, sh.M, sh.K, ax, algo);
          s.report = false;
          const int64_t kt = (s.K + P - 1) / P, mt = (s.M + P - 1) / P;
          const Region R{1, 2, P, P};
          const auto W = ternary(s.M * s.K, 7);
          Fabric fa(MPI_COMM_WORLD, mp), fb(MPI_COMM_WORLD, mp);
          MeshGemvTernary ga(fa, s, W.data()), gb(fb, s, W.data());
          ASSERT_TRUE(gb.has_line_sums());
          const std::string what = name_of(s);
          for (uint32_t seed : {8u, 9u}) {
            const auto x = int8s(s.K, seed);
            auto x_tiles = [&](Fabric& f) {
              TileBuf<int8_t> t(f, R, size_t(kt), "x");
              t.for_each_local([&](int32_t px, int32_t py, int8_t* o) {
                const int64_t b = ax == Axis::X ? px - R.x0 : py - R.y0;
                for (int64_t k = 0; k < kt; ++k) o[k] = b * kt + k < s.K ? x[size_t(b * kt + k)] : int8_t(0);
              });
              return t;
            };
            TileBuf<int8_t> xa = x_tiles(fa), xb = x_tiles(fb);
            TileBuf<int32_t> ya = ga.run_tiles(xa, nullptr);
            const MeshGemvTernary::LineSums yb = gb.run_line_sums(xb);
            ya.for_each_local([&](int32_t px, int32_t py, int32_t* t) {
              const int32_t* l = yb.sums + gb.line_of(px, py) * mt;
              for (int64_t i = 0; i < mt; ++i) ASSERT_EQ(t[i], l[i]) << what << " PE " << px << "," << py << " " << i;
            });
            const std::vector<PeCounters> a = fa.gather_counters(fa.mesh().full()),
                                          b = fb.gather_counters(fb.mesh().full());
            if (world_rank() == 0) {
              ASSERT_EQ(a.size(), b.size());
              for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i] == b[i]) << what << ": PE " << i << " differs";
            }
          }
        }
}

// The host's packed block size is computed from the shape: equal to what packing a block gives,
// and for a block beyond 2^63 bytes an error quoting the block's shape (no allocation, no wrapped
// byte count in a message), from the host's size and from the wafer's.
TEST(MeshGemv, HostBlockBytesEqualThePackedBlockAndNeverWrap) {
  for (const auto& [M, K, P] : std::vector<std::tuple<int64_t, int64_t, int32_t>>{
           {1, 1, 1}, {64, 64, 1}, {65, 7, 2}, {2560, 6912, 32}, {100, 301, 3}}) {
    GemvSpec s;
    s.M = M;
    s.K = K;
    s.P = P;
    const int64_t mt = (M + P - 1) / P, kt = (K + P - 1) / P;
    const std::vector<int8_t> zero(size_t(mt * kt), 0);
    const kernels::TernaryMatrixLut packed = kernels::TernaryMatrixLut::from_int8(zero.data(), mt, kt, kt);
    EXPECT_EQ(gemv_host_block_bytes(s), uint64_t(packed.bytes()) + uint64_t(packed.tiles()) * 64 * 4)
        << M << " x " << K << " on " << P;
  }
  GemvSpec huge;
  huge.M = int64_t(1) << 40;
  huge.K = int64_t(1) << 40;
  huge.P = 1;
  const std::string want = "a GEMV block of 1099511627776 x 1099511627776 weights needs more than 2^63 bytes of a PE's SRAM";
  for (int which = 0; which < 3; ++which) {
    try {
      if (which == 0) (void)gemv_host_block_bytes(huge);
      else (void)gemv_block_bytes(huge, which == 1, MachineParams{});
      ADD_FAILURE() << "no error for a 2^40 x 2^40 block";
    } catch (const LimitError& e) {
      EXPECT_EQ(std::string(e.what()), want);
    }
  }
}

// A PE's SRAM holds its own mt x kt block in the wafer's format, unpadded, whatever the host packs:
// ternary, 2 bits a weight (ceil(n / 4) bytes) or 5 weights a byte (ceil(n / 5)), plus the scale
// at wafer.dtype (4 bytes fp32, 2 fp16); fp, n elements at wafer.dtype. Worked out by hand.
TEST(MeshGemv, WaferBlockBytesAreTheWafersFormatOfTheBlock) {
  struct Case {
    int64_t M, K;
    int32_t P;
    uint64_t two_bit, base3, fp32, fp16;  // at wafer.dtype fp32 (ternary scale 4 bytes)
  };
  const Case cases[] = {
      {1, 1, 1, 1 + 4, 1 + 4, 4, 2},                      // n = 1
      {64, 64, 1, 1024 + 4, 820 + 4, 16384, 8192},        // n = 4096; 4096 / 5 = 819.2
      {65, 7, 2, 33 + 4, 27 + 4, 528, 264},               // 33 x 4: n = 132; 132 / 5 = 26.4
      {2560, 6912, 32, 4320 + 4, 3456 + 4, 69120, 34560},  // 80 x 216: n = 17280
      {100, 301, 3, 859 + 4, 687 + 4, 13736, 6868},        // 34 x 101: n = 3434; 858.5, 686.8
  };
  for (const Case& c : cases) {
    GemvSpec s;
    s.M = c.M;
    s.K = c.K;
    s.P = c.P;
    MachineParams mp;
    EXPECT_EQ(gemv_block_bytes(s, true, mp), c.two_bit) << c.M << " x " << c.K << " on " << c.P;
    EXPECT_EQ(gemv_block_bytes(s, false, mp), c.fp32) << c.M << " x " << c.K << " on " << c.P;
    mp.wafer_ternary_format = "base3";
    EXPECT_EQ(gemv_block_bytes(s, true, mp), c.base3) << c.M << " x " << c.K << " on " << c.P;
    for (const char* dt : {"fp16", "bf16"}) {
      mp.wafer_dtype = dt;
      EXPECT_EQ(gemv_block_bytes(s, false, mp), c.fp16) << dt << " " << c.M << " x " << c.K << " on " << c.P;
      EXPECT_EQ(gemv_block_bytes(s, true, mp), c.base3 - 2) << dt << ": a 2-byte scale";
    }
  }
}
