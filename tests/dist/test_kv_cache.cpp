// The KV cache and its grouped-query attention on a region: bit-identical to the serial reference
// in the mesh's summation order after every appended token, for both policies, on regions whose kv
// blocks cut heads in awkward places (and leave whole blocks of padding), at 1, 2 and 4 ranks;
// close to a plain double-precision attention; shift balanced, appends that move tokens take
// cycles; a prefilled prompt is the appended one; shift holds more tokens than concat before SRAM
// overflows; an overflow names the PE and leaves the cache unchanged.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>

#include <memory>

#include "fabric_test_util.hpp"
#include "wafermesh/dist/kv_cache.hpp"
#include "wafermesh/util/error.hpp"

using namespace wm;
using namespace wm::dist;
using namespace wm::test;

namespace {

// Tiles of a vector in the decode layout (column c holds block c of `block` elements).
void place(TileBuf<float>& t, const Region& R, int64_t block, const std::vector<float>& v) {
  t.for_each_local([&](int32_t x, int32_t, float* o) {
    const int64_t c = x - R.x0;
    for (int64_t e = 0; e < block; ++e) {
      const int64_t i = c * block + e;
      o[e] = i < int64_t(v.size()) ? v[size_t(i)] : 0.0f;
    }
  });
}

// Plain attention in double over tokens 0..n-1 for query vector q (heads * hd).
std::vector<double> plain(const KvSpec& s, const float* q, const float* K, const float* V, int64_t n) {
  const int64_t hd = s.head_dim, kvd = s.kv_dim(), G = s.group();
  std::vector<double> out(size_t(s.heads * hd), 0.0);
  for (int64_t h = 0; h < s.heads; ++h) {
    std::vector<double> a(static_cast<size_t>(n));
    double mx = -1e300, sum = 0;
    for (int64_t t = 0; t < n; ++t) {
      double d = 0;
      for (int64_t i = 0; i < hd; ++i) d += double(q[h * hd + i]) * K[t * kvd + (h / G) * hd + i];
      a[size_t(t)] = d / std::sqrt(double(hd));
      mx = std::max(mx, a[size_t(t)]);
    }
    for (auto& x : a) sum += (x = std::exp(x - mx));
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < hd; ++i) out[size_t(h * hd + i)] += a[size_t(t)] / sum * V[t * kvd + (h / G) * hd + i];
  }
  return out;
}

}  // namespace

TEST(KvCache, MatchesTheReferenceAfterEveryTokenForBothPolicies) {
  Fabric f(MPI_COMM_WORLD, small_machine(7, 6));
  for (int32_t P : {1, 3, 4, 5}) {
    for (KvPolicy pol : {KvPolicy::shift, KvPolicy::concat}) {
      KvSpec s;
      s.policy = pol;
      s.P = P;
      s.origin = {1, 1};
      s.heads = 6;
      s.kv_heads = 2;
      s.head_dim = 5;  // kv_dim 10: P = 4 -> blocks of 3 cut heads mid-block; P = 5 -> 2
      const int64_t n = 13, hd = s.head_dim, kvd = s.kv_dim(), G = s.group(), S = s.mtk();
      const Region R{s.origin.x, s.origin.y, P, P};
      const auto K = random_floats(n * kvd, 11 + uint32_t(P), -2.0f, 2.0f);
      const auto V = random_floats(n * kvd, 21 + uint32_t(P), -2.0f, 2.0f);
      const auto Q = random_floats(n * s.heads * hd, 31 + uint32_t(P), -2.0f, 2.0f);
      KvCache kv(f, s);
      for (int64_t t = 0; t < n; ++t) {
        TileBuf<float> kt(f, R, size_t(S), "k"), vt(f, R, size_t(S), "v"), qt(f, R, size_t(G * S), "q");
        place(kt, R, S, std::vector<float>(K.begin() + t * kvd, K.begin() + (t + 1) * kvd));
        place(vt, R, S, std::vector<float>(V.begin() + t * kvd, V.begin() + (t + 1) * kvd));
        // q in the (g, mtk) form: q_j[kd] = q[(kd / hd * g + j) * hd + kd % hd].
        qt.for_each_local([&](int32_t x, int32_t, float* o) {
          const int64_t c = x - R.x0;
          for (int64_t j = 0; j < G; ++j)
            for (int64_t e = 0; e < S; ++e) {
              const int64_t kd = c * S + e;
              o[j * S + e] = kd < kvd ? Q[size_t(t * s.heads * hd + ((kd / hd) * G + j) * hd + kd % hd)] : 0.0f;
            }
        });
        kv.append(kt, vt);
        if (pol == KvPolicy::shift) {
          const auto rows = kv.row_tokens();
          EXPECT_LE(*std::max_element(rows.begin(), rows.end()) - *std::min_element(rows.begin(), rows.end()), 1);
        }
        TileBuf<float> o = kv.attention(qt);
        const std::vector<float> all = o.gather();
        if (world_rank() != 0) continue;
        const auto want = kv_attention_reference(s, Q.data(), K.data(), V.data(), t + 1);
        const auto approx = plain(s, Q.data() + t * s.heads * hd, K.data(), V.data(), t + 1);
        // Every PE of the region holds the output; check rows 0 and P-1.
        for (int32_t r : {0, P - 1})
          for (int64_t h = 0; h < s.heads; ++h)
            for (int64_t d = 0; d < hd; ++d) {
              const int64_t kd = (h / G) * hd + d, j = h % G, c = kd / S, e = kd % S;
              const float got = all[size_t((int64_t(r) * P + c) * G * S + j * S + e)];
              const float ref = want[size_t(h * hd + d)];
              ASSERT_EQ(std::memcmp(&got, &ref, sizeof(float)), 0)
                  << "P " << P << " " << kv_policy_name(pol) << " token " << t << " head " << h << " d " << d
                  << ": " << got << " vs " << ref;
              EXPECT_NEAR(got, approx[size_t(h * hd + d)], 1e-5) << "P " << P << " token " << t;
            }
      }
      EXPECT_EQ(kv.tokens(), n);
      if (pol == KvPolicy::concat) {
        EXPECT_EQ(kv.row_tokens().back(), n);
      }
    }
  }
}

TEST(KvCache, OverflowNamesThePeAndLeavesTheCacheUnchanged) {
  MachineParams mp = small_machine(4, 4);
  mp.sram_bytes = 2000;
  Fabric f(MPI_COMM_WORLD, mp);
  KvSpec s;
  s.P = 4;
  s.heads = 2;
  s.kv_heads = 1;
  s.head_dim = 16;  // mtk 4: 32 bytes per token per PE
  s.policy = KvPolicy::concat;
  const Region R{0, 0, 4, 4};
  KvCache kv(f, s);
  TileBuf<float> kt(f, R, 4, "k"), vt(f, R, 4, "v");
  int64_t appended = 0;
  try {
    for (;; ++appended) kv.append(kt, vt);
  } catch (const LimitError& e) {
    EXPECT_NE(std::string(e.what()).find("PE (0, 3)"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("KV cache"), std::string::npos) << e.what();
  }
  EXPECT_GT(appended, 10);
  EXPECT_EQ(kv.tokens(), appended);
}

// Decode-layout tiles of every token of (n, kv_dim), one TileBuf pair per token.
struct TokenTiles {
  std::vector<std::unique_ptr<TileBuf<float>>> k, v;
};
TokenTiles token_tiles(Fabric& f, const KvSpec& s, const std::vector<float>& K, const std::vector<float>& V,
                       int64_t n) {
  const Region R{s.origin.x, s.origin.y, s.P, s.P};
  const int64_t kvd = s.kv_dim(), S = s.mtk();
  TokenTiles t;
  for (int64_t i = 0; i < n; ++i) {
    t.k.push_back(std::make_unique<TileBuf<float>>(f, R, size_t(S), "k"));
    t.v.push_back(std::make_unique<TileBuf<float>>(f, R, size_t(S), "v"));
    place(*t.k.back(), R, S, std::vector<float>(K.begin() + i * kvd, K.begin() + (i + 1) * kvd));
    place(*t.v.back(), R, S, std::vector<float>(V.begin() + i * kvd, V.begin() + (i + 1) * kvd));
  }
  return t;
}

TEST(KvCache, ShiftStaysBalancedAfterAPrefillAndOnlyMovingAppendsTakeCycles) {
  Fabric f(MPI_COMM_WORLD, small_machine(7, 7));
  const int64_t prompt = 9, decode = 17, n = prompt + decode;
  for (KvPolicy pol : {KvPolicy::concat, KvPolicy::shift}) {
    KvSpec s;
    s.policy = pol;
    s.P = 5;
    s.origin = {1, 1};
    s.heads = 2;
    s.kv_heads = 1;
    s.head_dim = 11;
    const int64_t kvd = s.kv_dim();
    const auto K = random_floats(n * kvd, 1, -2.0f, 2.0f), V = random_floats(n * kvd, 2, -2.0f, 2.0f);
    TokenTiles tiles = token_tiles(f, s, K, V, n);
    KvCache kv(f, s);
    kv.prefill(K.data(), V.data(), prompt);
    for (int64_t t = prompt; t < n; ++t) {
      uint64_t cyc = 0;
      kv.append(*tiles.k[size_t(t)], *tiles.v[size_t(t)], &cyc);
      const auto rows = kv.row_tokens();
      if (pol == KvPolicy::shift) {
        const auto [lo, hi] = std::minmax_element(rows.begin(), rows.end());
        EXPECT_LE(*hi - *lo, 1) << "after token " << t;
        EXPECT_TRUE(std::is_sorted(rows.rbegin(), rows.rend())) << "older rows never hold fewer, after token " << t;
        if ((t % 5) != 4) EXPECT_GT(cyc, 0u) << "rows below the growing one shifted, token " << t;
        else EXPECT_EQ(cyc, 0u) << "the bottom row grew: nothing moved, token " << t;
      } else {
        EXPECT_EQ(cyc, 0u) << "concat moves nothing";
      }
    }
    EXPECT_EQ(kv.tokens(), n);
    if (pol == KvPolicy::concat) {
      EXPECT_EQ(kv.row_tokens().back(), 1 + decode);  // the tail row took them all
    }
    if (pol != KvPolicy::shift) continue;
    // The prompt placed evenly is the prompt appended token by token: attention matches the reference.
    const auto Q = random_floats(n * s.heads * s.head_dim, 3, -2.0f, 2.0f);
    const Region R{s.origin.x, s.origin.y, s.P, s.P};
    TileBuf<float> qt(f, R, size_t(s.group() * s.mtk()), "q");
    qt.for_each_local([&](int32_t x, int32_t, float* o) {
      const int64_t c = x - R.x0, S = s.mtk(), G = s.group(), hd = s.head_dim;
      for (int64_t j = 0; j < G; ++j)
        for (int64_t e = 0; e < S; ++e) {
          const int64_t kd = c * S + e;
          o[j * S + e] = kd < kvd ? Q[size_t((n - 1) * s.heads * hd + ((kd / hd) * G + j) * hd + kd % hd)] : 0.0f;
        }
    });
    const std::vector<float> all = kv.attention(qt).gather();
    if (world_rank() != 0) continue;
    const auto want = kv_attention_reference(s, Q.data(), K.data(), V.data(), n);
    for (int64_t h = 0; h < s.heads; ++h)
      for (int64_t d = 0; d < s.head_dim; ++d) {
        const int64_t kd = (h / s.group()) * s.head_dim + d, j = h % s.group(), c = kd / s.mtk(), e = kd % s.mtk();
        const float got = all[size_t(c * s.group() * s.mtk() + j * s.mtk() + e)];  // row 0
        const float ref = want[size_t(h * s.head_dim + d)];
        EXPECT_EQ(std::memcmp(&got, &ref, sizeof(float)), 0) << "head " << h << " d " << d;
      }
  }
}

TEST(KvCache, ShiftHoldsMoreTokensThanConcatBeforeSramOverflows) {
  MachineParams mp = small_machine(8, 8);
  mp.sram_bytes = 2048;
  Fabric f(MPI_COMM_WORLD, mp);
  std::map<KvPolicy, int64_t> decoded;
  std::map<KvPolicy, std::string> why;
  for (KvPolicy pol : {KvPolicy::concat, KvPolicy::shift}) {
    KvSpec s;
    s.policy = pol;
    s.P = 8;
    s.heads = s.kv_heads = 1;
    s.head_dim = 16;  // 2 floats per PE: 16 bytes per token per PE
    const Region R{0, 0, 8, 8};
    TileBuf<float> kt(f, R, 2, "k"), vt(f, R, 2, "v");
    KvCache kv(f, s);
    const auto prompt = random_floats(16 * 16, 5);
    kv.prefill(prompt.data(), prompt.data(), 16);
    int64_t n = 0;
    try {
      for (;; ++n) kv.append(kt, vt);
    } catch (const LimitError& e) {
      why[pol] = e.what();
    }
    decoded[pol] = n;
    EXPECT_EQ(kv.tokens(), 16 + n) << "the failed append changed nothing";
  }
  // A token costs 16 bytes per PE and the k, v tiles 16 bytes: 2032 bytes of SRAM for tokens.
  // concat: the bottom row holds 2 prompt tokens and takes 127 - 2 = 125 more (2032 / 16 = 127).
  // shift: a moving append also needs two 16-byte scratch tiles on every PE while it shifts, so a
  // row may reach (2032 - 32) / 16 = 125 tokens: 8 x 125 - 16 prompt = 984 decoded.
  EXPECT_EQ(decoded[KvPolicy::concat], 125);
  EXPECT_EQ(decoded[KvPolicy::shift], 984);
  EXPECT_NE(why[KvPolicy::concat].find("PE (0, 7)"), std::string::npos) << why[KvPolicy::concat];
  EXPECT_NE(why[KvPolicy::shift].find("pe.sram_bytes = 2048"), std::string::npos) << why[KvPolicy::shift];
}

// A prompt shorter than the region has rows leaves the bottom rows empty: appends fill the rows in
// order before anything shifts (shifting the empty rows would move tiles that hold no token).
TEST(KvCache, APromptShorterThanTheRowsLeavesNothingToShiftUntilTheBottomRowHoldsAToken) {
  Fabric f(MPI_COMM_WORLD, small_machine(7, 7));
  KvSpec s;
  s.policy = KvPolicy::shift;
  s.P = 6;
  s.heads = s.kv_heads = 1;
  s.head_dim = 12;
  const Region R{0, 0, 6, 6};
  TileBuf<float> kt(f, R, size_t(s.mtk()), "k"), vt(f, R, size_t(s.mtk()), "v");
  KvCache kv(f, s);
  const auto prompt = random_floats(2 * 12, 7);
  kv.prefill(prompt.data(), prompt.data(), 2);  // rows 0 and 1 hold a token, rows 2..5 none
  for (int64_t t = 2; t < 6; ++t) {
    uint64_t cyc = 1;
    kv.append(kt, vt, &cyc);
    EXPECT_EQ(cyc, 0u) << "token " << t << " went straight to its row";
    EXPECT_EQ(kv.row_tokens()[size_t(t)], 1) << "token " << t;
  }
  uint64_t cyc = 0;
  kv.append(kt, vt, &cyc);  // every row holds a token now: rows 1..5 shift up
  EXPECT_GT(cyc, 0u);
  EXPECT_EQ(kv.row_tokens(), (std::vector<int64_t>{2, 1, 1, 1, 1, 1}));
}
