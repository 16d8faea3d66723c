#include "wafermesh/model/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "wafermesh/util/error.hpp"

namespace wm::model {

int argmax(const float* x, std::int64_t n) {
  std::int64_t best = 0;
  for (std::int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;  // strict: the first maximum wins
  return static_cast<int>(best);
}

void softmax(float* x, std::int64_t n) {
  float max_val = x[0];
  for (std::int64_t i = 1; i < n; ++i) max_val = std::max(max_val, x[i]);
  float sum = 0.0f;
  for (std::int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max_val);
    sum += x[i];
  }
  for (std::int64_t i = 0; i < n; ++i) x[i] /= sum;
}

std::uint32_t rng_u32(std::uint64_t& state) {
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return static_cast<std::uint32_t>((state * 0x2545F4914F6CDD1Dull) >> 32);
}

float rng_f32(std::uint64_t& state) { return static_cast<float>(rng_u32(state) >> 8) / 16777216.0f; }

void sort_by_prob_desc(std::vector<std::pair<float, int>>& v, std::vector<std::pair<float, int>>& scratch) {
  // For p >= 0 the IEEE-754 bits order like the values, so ~bits ascending is p descending; each
  // pass is a stable counting sort on one byte, least significant first. The four bytes' counts
  // come from one read of v, and a byte that every key shares (the exponent of probabilities of
  // one magnitude) needs no pass: the order it would leave is the order it finds.
  auto key = [](float p) {
    std::uint32_t b;
    std::memcpy(&b, &p, sizeof(b));
    return ~b;
  };
  std::size_t count[4][256] = {};
  for (const auto& e : v) {
    const std::uint32_t k = key(e.first);
    for (int d = 0; d < 4; ++d) ++count[d][(k >> (8 * d)) & 0xFF];
  }
  scratch.resize(v.size());
  for (int d = 0; d < 4; ++d) {
    const int shift = 8 * d;
    if (!v.empty() && count[d][(key(v.front().first) >> shift) & 0xFF] == v.size()) continue;
    std::size_t start[256];
    std::size_t at = 0;
    for (int b = 0; b < 256; ++b) {
      start[b] = at;
      at += count[d][b];
    }
    for (const auto& e : v) scratch[start[(key(e.first) >> shift) & 0xFF]++] = e;
    v.swap(scratch);
  }
}

Sampler::Sampler(std::int64_t vocab, float temperature, float top_p, std::uint64_t seed)
    : vocab_(vocab), temperature_(temperature), top_p_(top_p), state_(seed) {
  if (vocab < 1) throw UsageError("sampler: vocabulary size " + std::to_string(vocab) + " must be >= 1");
  if (!std::isfinite(temperature) || temperature < 0.0f)
    throw UsageError("sampler: temperature = " + std::to_string(temperature) +
                     " must be >= 0 (0 is greedy arg-max)");
  if (!(top_p >= 0.0f && top_p <= 1.0f))
    throw UsageError("sampler: top-p = " + std::to_string(top_p) + " must be in [0, 1]");
  if (temperature > 0.0f && seed == 0)
    throw UsageError("sampler: seed 0 would make the xorshift generator return 0 forever; use a non-zero seed");
  probs_.resize(static_cast<std::size_t>(vocab));
  nucleus_.reserve(static_cast<std::size_t>(vocab));
}

int Sampler::sample(const float* logits) {
  if (temperature_ == 0.0f) return argmax(logits, vocab_);
  for (std::int64_t i = 0; i < vocab_; ++i) probs_[static_cast<std::size_t>(i)] = logits[i] / temperature_;
  softmax(probs_.data(), vocab_);
  const float coin = rng_f32(state_);

  if (top_p_ <= 0.0f || top_p_ >= 1.0f || vocab_ == 1) {
    float cdf = 0.0f;
    for (std::int64_t i = 0; i < vocab_; ++i) {
      cdf += probs_[static_cast<std::size_t>(i)];
      if (coin < cdf) return static_cast<int>(i);
    }
    return static_cast<int>(vocab_ - 1);  // rounding: cdf ended just below coin
  }

  // Tokens below the cutoff cannot be in the nucleus (if all vocab - 1 others were at the cutoff
  // they would still not reach top_p), so dropping them before the sort changes nothing but time.
  const float cutoff = (1.0f - top_p_) / static_cast<float>(vocab_ - 1);
  nucleus_.clear();
  for (std::int64_t i = 0; i < vocab_; ++i)
    if (probs_[static_cast<std::size_t>(i)] >= cutoff)
      nucleus_.emplace_back(probs_[static_cast<std::size_t>(i)], static_cast<int>(i));
  // Only a near-uniform distribution with a tiny top_p leaves nobody above the cutoff (llama2.c
  // then reads out of bounds): take the most probable token.
  if (nucleus_.empty()) return argmax(probs_.data(), vocab_);
  sort_by_prob_desc(nucleus_, scratch_);  // std::stable_sort's order, in linear time
  float cumulative = 0.0f;
  std::size_t last = nucleus_.size() - 1;
  for (std::size_t i = 0; i < nucleus_.size(); ++i) {
    cumulative += nucleus_[i].first;
    if (cumulative > top_p_) {
      last = i;
      break;
    }
  }
  const float r = coin * cumulative;
  float cdf = 0.0f;
  for (std::size_t i = 0; i <= last; ++i) {
    cdf += nucleus_[i].first;
    if (r < cdf) return nucleus_[i].second;
  }
  return nucleus_[last].second;
}

}  // namespace wm::model
