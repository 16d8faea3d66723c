// The wafer's formats in the distributed algorithms (DESIGN.md section 3): ternary weights
// charged in wafer.ternary_format for each PE's own block plus the scale, whatever the host
// kernel packs; fp data at wafer.dtype; ternary work at pe.ternary_ops_per_cycle. Every expected
// figure is worked out by hand in the comments; the host results stay exact. Run at 1, 2 and 4 ranks.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "fabric_test_util.hpp"
#include "wafermesh/dist/gemm.hpp"
#include "wafermesh/dist/gemv.hpp"
#include "wafermesh/dist/kv_cache.hpp"

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

// y = W x in plain integers.
std::vector<int32_t> matvec(const std::vector<int8_t>& W, const std::vector<int8_t>& x, int64_t M, int64_t K) {
  std::vector<int32_t> y(size_t(M), 0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t k = 0; k < K; ++k) y[size_t(i)] += int32_t(W[size_t(i * K + k)]) * int32_t(x[size_t(k)]);
  return y;
}

struct Format {
  const char* dtype;
  const char* ternary;
};

}  // namespace

// W (65 x 7) on 2 x 2 PEs: blocks of mt = 33 by kt = 4, n = 132 weights per PE.
//   2bit: ceil(132 / 4) = 33 bytes, base3: ceil(132 / 5) = 27 (26.4), plus the scale: 4 bytes at
//   fp32, 2 at fp16. The host's LUT packing of a block is larger (tiles of 64 rows).
// Every PE holds exactly that once the GEMV is built, and y stays exact.
TEST(WaferFormats, TernaryGemvChargesEachPeItsBlockInTheWafersFormat) {
  const int64_t M = 65, K = 7;
  const std::vector<int8_t> W = ternary(M * K, 3), x = int8s(K, 4);
  const std::vector<int32_t> want = matvec(W, x, M, K);
  struct Case {
    Format f;
    uint64_t bytes;
  };
  for (const Case& c : {Case{{"fp32", "2bit"}, 33 + 4}, Case{{"fp32", "base3"}, 27 + 4}, Case{{"fp16", "2bit"}, 33 + 2},
                        Case{{"bf16", "base3"}, 27 + 2}}) {
    MachineParams mp = small_machine(3, 2);
    mp.wafer_dtype = c.f.dtype;
    mp.wafer_ternary_format = c.f.ternary;
    Fabric f(MPI_COMM_WORLD, mp);
    GemvSpec s;
    s.P = 2;
    s.M = M;
    s.K = K;
    const std::string what = std::string(c.f.dtype) + " " + c.f.ternary;
    MeshGemvTernary g(f, s, W.data());
    const std::vector<PeCounters> pes = f.gather_counters(f.mesh().full());
    std::vector<int32_t> y(static_cast<size_t>(M));
    g.run(x.data(), y.data());
    if (world_rank() != 0) continue;
    EXPECT_LT(c.bytes, gemv_host_block_bytes(s)) << what;
    for (int32_t py = 0; py < 2; ++py)
      for (int32_t px = 0; px < 3; ++px)
        EXPECT_EQ(pes[size_t(py * 3 + px)].sram_bytes, px < 2 ? c.bytes : 0u) << what << " PE " << px << "," << py;
    EXPECT_EQ(y, want) << what;
  }
}

// The block product is ternary work: with pe.ternary_ops_per_cycle = 8 the 132 weights of a block
// cost ceil(132 / 8) = 17 cycles instead of 132 (task overhead alike), so the busiest PE's compute
// drops by exactly 115 cycles; the allreduce's int32 adds stay at pe.macs_per_cycle.
TEST(WaferFormats, TernaryGemvComputesAtTheTernaryRate) {
  const int64_t M = 65, K = 7;
  const std::vector<int8_t> W = ternary(M * K, 5), x = int8s(K, 6);
  uint64_t compute[2] = {0, 0};
  for (int i = 0; i < 2; ++i) {
    MachineParams mp = small_machine(2, 2);
    mp.ternary_ops_per_cycle = i == 0 ? 0 : 8;
    Fabric f(MPI_COMM_WORLD, mp);
    GemvSpec s;
    s.P = 2;
    s.M = M;
    s.K = K;
    MeshGemvTernary g(f, s, W.data());
    compute[i] = g.run(x.data(), nullptr).compute_cycles;
  }
  EXPECT_EQ(compute[0] - compute[1], 115u);
}

// Ternary MeshGEMM (cannon, natural rings), M = K = N = 10 on 2 x 2 PEs: tiles of 5 x 5.
//   A: 25 int8 = 25 bytes; B: 25 ternary weights, 2bit ceil(25 / 4) = 7 bytes, base3 5; C: 25 int32
//   = 100 bytes. With double buffering a second A and B: peak SRAM 25 + 7 + 100 + 25 + 7 = 164
//   (2bit), 160 (base3).
//   Wire: the skew moves row 1's A tiles (2) and column 1's B tiles (2), the one main-loop shift
//   moves all four of each: 6 A and 6 B tiles, 6 (25 + 7) = 192 bytes (2bit), 6 (25 + 5) = 180 (base3).
// C is the exact product either way.
TEST(WaferFormats, TernaryGemmMovesAndHoldsBTilesInTheWafersFormat) {
  const int64_t n = 10;
  const std::vector<int8_t> A = int8s(n * n, 7), B = ternary(n * n, 8);
  std::vector<int32_t> want(size_t(n * n), 0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t k = 0; k < n; ++k) want[size_t(i * n + j)] += int32_t(A[size_t(i * n + k)]) * B[size_t(k * n + j)];
  for (auto [format, sram, wire] : {std::tuple{"2bit", uint64_t(164), uint64_t(192)},
                                    std::tuple{"base3", uint64_t(160), uint64_t(180)}}) {
    MachineParams mp = small_machine(2, 2);
    mp.wafer_ternary_format = format;
    mp.wafer_dtype = "fp16";  // no fp data here: changes nothing
    Fabric f(MPI_COMM_WORLD, mp);
    GemmSpec s;
    s.algo = GemmAlgo::cannon;
    s.P = 2;
    s.M = s.K = s.N = n;
    std::vector<int32_t> C(size_t(n * n));
    const GemmReport rep = gemm_ternary(f, s, A.data(), B.data(), C.data());
    if (world_rank() != 0) continue;
    EXPECT_EQ(rep.peak_sram_bytes, sram) << format;
    EXPECT_EQ(rep.noc_bytes, wire) << format;
    EXPECT_EQ(C, want) << format;
  }
}

// A token of the KV cache on a PE: its key and value blocks, 2 x ceil(kv_dim / P) elements at
// wafer.dtype. kv_dim 8 on P = 2: 2 x 4 elements, 32 bytes at fp32 and 16 at fp16; after three
// tokens (shift policy: rows hold 2 and 1) the first row's PEs hold 2 x 32 | 2 x 16 bytes of cache.
TEST(WaferFormats, KvCacheTokensAreHeldAtTheWafersWidth) {
  for (auto [dtype, token] : {std::pair{"fp32", uint64_t(32)}, std::pair{"fp16", uint64_t(16)}}) {
    MachineParams mp = small_machine(2, 2);
    mp.wafer_dtype = dtype;
    Fabric f(MPI_COMM_WORLD, mp);
    KvSpec ks;
    ks.P = 2;
    ks.heads = 2;
    ks.kv_heads = 2;
    ks.head_dim = 4;
    KvCache kv(f, ks);
    EXPECT_EQ(kv.bytes_per_token_per_pe(), token) << dtype;
    TileBuf<float> k(f, f.mesh().full(), 4, "k", TileBuf<float>::Uncharged{});
    TileBuf<float> v(f, f.mesh().full(), 4, "v", TileBuf<float>::Uncharged{});
    for (int t = 0; t < 3; ++t) kv.append(k, v);
    const std::vector<PeCounters> pes = f.gather_counters(f.mesh().full());
    if (world_rank() != 0) continue;
    EXPECT_EQ(pes[0].sram_bytes, 2 * token) << dtype;
    EXPECT_EQ(pes[3].sram_bytes, token) << dtype;
  }
}
