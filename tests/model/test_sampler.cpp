// Sampler: arg-max ties, the llama2.c RNG, nucleus sampling (reproducible, stays in the nucleus),
// the nucleus sort against std::stable_sort, and the argument checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "wafermesh/model/sampler.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::model {
namespace {

TEST(Sampler, ArgmaxTakesTheFirstOfEqualMaxima) {
  const float a[] = {1.0f, 3.0f, 3.0f, 2.0f};
  EXPECT_EQ(argmax(a, 4), 1);
  const float same[] = {-2.0f, -2.0f, -2.0f};
  EXPECT_EQ(argmax(same, 3), 0);
  const float last[] = {-5.0f, -4.0f, -1.0f};
  EXPECT_EQ(argmax(last, 3), 2);
  Sampler greedy(4, 0.0f, 0.9f, 0);  // temperature 0: no RNG, so seed 0 is fine
  EXPECT_EQ(greedy.sample(a), 1);
  EXPECT_EQ(greedy.rng_state(), 0u);
}

// First outputs for seed 42, computed independently (Python) from llama2.c's random_u32.
TEST(Sampler, RngIsLlama2cXorshift) {
  std::uint64_t s = 42;
  EXPECT_EQ(rng_u32(s), 1456360119u);
  EXPECT_EQ(rng_u32(s), 3359763283u);
  EXPECT_EQ(rng_f32(s), static_cast<float>(3393612768u >> 8) / 16777216.0f);
}

std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

TEST(Sampler, TopPWithAFixedSeedIsReproducible) {
  const std::vector<float> logits = logits_of({0.1, 0.2, 0.3, 0.25, 0.15});
  Sampler a(5, 0.8f, 0.9f, 1234), b(5, 0.8f, 0.9f, 1234), c(5, 0.8f, 0.9f, 1235);
  std::vector<int> sa, sb, sc;
  for (int i = 0; i < 200; ++i) {
    sa.push_back(a.sample(logits.data()));
    sb.push_back(b.sample(logits.data()));
    sc.push_back(c.sample(logits.data()));
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
  EXPECT_EQ(a.rng_state(), b.rng_state());
}

// p = (0.5, 0.3, 0.15, 0.05), top-p 0.7: the nucleus is {0, 1} (0.5 alone is not > 0.7, 0.8 is),
// renormalised to 0.625 / 0.375. Without top-p every token occurs.
TEST(Sampler, TopPSamplesOnlyTheNucleus) {
  const std::vector<float> logits = logits_of({0.5, 0.3, 0.15, 0.05});
  Sampler nucleus(4, 1.0f, 0.7f, 99);
  int count[4] = {};
  const int n = 4000;
  for (int i = 0; i < n; ++i) ++count[nucleus.sample(logits.data())];
  EXPECT_EQ(count[2] + count[3], 0);
  EXPECT_NEAR(static_cast<double>(count[0]) / n, 0.625, 0.03);

  Sampler plain(4, 1.0f, 1.0f, 99);
  int all[4] = {};
  for (int i = 0; i < n; ++i) ++all[plain.sample(logits.data())];
  EXPECT_NEAR(static_cast<double>(all[3]) / n, 0.05, 0.015);
  EXPECT_NEAR(static_cast<double>(all[0]) / n, 0.5, 0.03);
}

// The radix sort gives std::stable_sort's order exactly: many ties (p quantised to a few
// values), zeros, a large vocabulary-sized input, an empty and a one-element input, and
// probabilities of one magnitude (level -1: keys that share their high bytes, whose passes the
// sort skips).
TEST(Sampler, SortByProbEqualsStableSort) {
  std::mt19937 g(5);
  std::vector<std::pair<float, int>> scratch;
  for (int n : {0, 1, 2, 17, 1000, 128256}) {
    for (int levels : {1, 3, 1000, 0, -1}) {
      std::vector<std::pair<float, int>> v;
      std::uniform_real_distribution<float> u(0.0f, 1.0f);
      for (int i = 0; i < n; ++i) {
        float p = u(g);
        if (levels > 0) p = std::floor(p * levels) / levels;  // ties; level 0 of each is p = 0
        p *= 1e-3f;
        if (levels < 0) p = 7.8e-6f * (1.0f + 0.001f * p);  // 1 / 128256 and a little more
        v.emplace_back(p, i * 7 % (n + 1));
      }
      std::vector<std::pair<float, int>> want = v;
      std::stable_sort(want.begin(), want.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
      sort_by_prob_desc(v, scratch);
      ASSERT_EQ(v, want) << "n = " << n << ", levels = " << levels;
    }
  }
}

TEST(Sampler, RejectsImpossibleArguments) {
  EXPECT_THROW(Sampler(4, -0.1f, 0.9f, 1), UsageError);
  EXPECT_THROW(Sampler(4, NAN, 0.9f, 1), UsageError);
  EXPECT_THROW(Sampler(4, 1.0f, 1.5f, 1), UsageError);
  EXPECT_THROW(Sampler(4, 1.0f, 0.9f, 0), UsageError);  // xorshift would stay at 0
  EXPECT_THROW(Sampler(0, 0.0f, 0.9f, 1), UsageError);
}

}  // namespace
}  // namespace wm::model
