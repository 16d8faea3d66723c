// KV cache: shift keeps rows balanced after every append, both policies give bit-identical
// attention equal to the serial reference, and shift holds more tokens than concat before a PE's
// SRAM overflows. At 1, 2 and 4 ranks.
#include <gtest/gtest.h>

#include <cstring>
#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "fabric_test_util.hpp"
#include "wafermesh/dist/kv_cache.hpp"
#include "wafermesh/util/error.hpp"

using namespace wm;
using namespace wm::dist;
using namespace wm::test;

namespace {
std::vector<float> floats(int64_t n, uint32_t seed) { return random_floats(n, seed, -2.0f, 2.0f); }
}  // namespace

TEST(KvCache, ShiftStaysBalancedAndAttentionIsIdenticalForBothPolicies) {
  Fabric f(MPI_COMM_WORLD, small_machine(7, 7));
  const int64_t D = 11, prompt = 9, decode = 17;
  const auto keys = floats((prompt + decode) * D, 1), values = floats((prompt + decode) * D, 2), q = floats(D, 3);
  std::vector<std::vector<float>> results;
  for (KvPolicy pol : {KvPolicy::concat, KvPolicy::shift}) {
    KvSpec s;
    s.policy = pol;
    s.P = 5;
    s.origin = {1, 1};
    s.kv_dim = D;
    KvCache kv(f, s);
    kv.prefill(keys.data(), values.data(), prompt);
    for (int64_t t = prompt; t < prompt + decode; ++t) {
      const uint64_t cyc = kv.append(keys.data() + t * D, values.data() + t * D);
      const auto rows = kv.row_tokens();
      if (pol == KvPolicy::shift) {
        const auto [lo, hi] = std::minmax_element(rows.begin(), rows.end());
        EXPECT_LE(*hi - *lo, 1) << "after token " << t;
        // Older rows never hold fewer tokens than newer ones.
        EXPECT_TRUE(std::is_sorted(rows.rbegin(), rows.rend())) << "after token " << t;
        if ((t % 5) != 4) EXPECT_GT(cyc, 0u) << "rows below the growing one shifted";
      } else {
        EXPECT_EQ(cyc, 0u);
      }
    }
    EXPECT_EQ(kv.tokens(), prompt + decode);
    if (pol == KvPolicy::concat) EXPECT_EQ(kv.row_tokens().back(), 1 + decode);  // the tail row took them all
    results.push_back(kv.attention(q.data()));
  }
  if (world_rank() != 0) return;
  const auto want = kv_attention_reference(q.data(), keys.data(), values.data(), prompt + decode, D, 5);
  ASSERT_EQ(results[0].size(), size_t(D));
  EXPECT_EQ(std::memcmp(results[0].data(), results[1].data(), D * sizeof(float)), 0) << "concat vs shift";
  EXPECT_EQ(std::memcmp(results[1].data(), want.data(), D * sizeof(float)), 0) << "shift vs reference";
  // And it is attention: a convex combination of the values, near a double-precision softmax.
  std::vector<double> w(prompt + decode);
  double mx = -1e300, sum = 0;
  for (int64_t t = 0; t < prompt + decode; ++t) {
    double d = 0;
    for (int64_t e = 0; e < D; ++e) d += double(q[size_t(e)]) * keys[size_t(t * D + e)];
    w[size_t(t)] = d / std::sqrt(double(D));
    mx = std::max(mx, w[size_t(t)]);
  }
  for (auto& x : w) sum += (x = std::exp(x - mx));
  for (int64_t e = 0; e < D; ++e) {
    double o = 0;
    for (int64_t t = 0; t < prompt + decode; ++t) o += w[size_t(t)] / sum * values[size_t(t * D + e)];
    EXPECT_NEAR(results[1][size_t(e)], o, 1e-4);
  }
}

TEST(KvCache, ShiftHoldsMoreTokensThanConcatBeforeSramOverflows) {
  MachineParams mp = small_machine(8, 8);
  mp.sram_bytes = 2048;
  Fabric f(MPI_COMM_WORLD, mp);
  const int64_t D = 16;
  const auto kv0 = floats(D, 4);
  std::map<KvPolicy, int64_t> decoded;
  std::map<KvPolicy, std::string> why;
  for (KvPolicy pol : {KvPolicy::concat, KvPolicy::shift}) {
    KvSpec s;
    s.policy = pol;
    s.P = 8;
    s.kv_dim = D;  // 2 floats per PE: 16 bytes per token per PE
    KvCache kv(f, s);
    const auto prompt = floats(16 * D, 5);
    kv.prefill(prompt.data(), prompt.data(), 16);
    int64_t n = 0;
    try {
      for (;; ++n) kv.append(kv0.data(), kv0.data());
    } catch (const LimitError& e) {
      why[pol] = e.what();
    }
    decoded[pol] = n;
    EXPECT_EQ(kv.tokens(), 16 + n) << "the failed append changed nothing";
  }
  // A token costs 16 bytes per PE. concat: 2048 / 16 = 128 tokens per PE; the bottom row holds 2
  // prompt tokens and takes 126 more. shift keeps two 16-byte scratch tiles per PE, so every row
  // fills to (2048 - 32) / 16 = 126 tokens: 8 x 126 - 16 prompt = 992 decoded.
  EXPECT_EQ(decoded[KvPolicy::concat], 126);
  EXPECT_EQ(decoded[KvPolicy::shift], 992);
  EXPECT_NE(why[KvPolicy::concat].find("PE (0, 7)"), std::string::npos) << why[KvPolicy::concat];
  EXPECT_NE(why[KvPolicy::shift].find("pe.sram_bytes = 2048"), std::string::npos) << why[KvPolicy::shift];
}
