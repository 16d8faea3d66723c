#pragma once
// Picks the next token from logits, exactly as llama2.c does, so a seeded run is reproducible and
// comparable with the reference program.
//
// temperature == 0: arg-max (the first index on ties); the RNG is not touched.
// temperature  > 0: logits / temperature, softmax (max-subtracted, float), one coin = rng_f32();
//   top_p in (0, 1): nucleus sampling — keep the tokens with p >= (1 - top_p) / (vocab - 1), sort
//     them by p descending (stable: equal p keep index order; llama2.c's qsort leaves that order
//     unspecified), cut after the first prefix whose cumulative p exceeds top_p, and return the
//     first token whose cumulative p exceeds coin * (kept mass);
//   otherwise (top_p <= 0 or >= 1): the first token whose cumulative p exceeds coin.
//
// RNG: explicit state, xorshift64* as in llama2.c:
//   s ^= s >> 12; s ^= s << 25; s ^= s >> 27; u32 = (s * 0x2545F4914F6CDD1D) >> 32;
//   f32 = (u32 >> 8) / 16777216.0f   (in [0, 1))
// The state starts at the seed, which must not be 0 (xorshift would then return 0 forever).
#include <cstdint>
#include <utility>
#include <vector>

namespace wm::model {

// Index of the largest of x[0..n), the first one on ties.
int argmax(const float* x, std::int64_t n);
// In-place softmax of x[0..n) (float math, as llama2.c).
void softmax(float* x, std::int64_t n);

std::uint32_t rng_u32(std::uint64_t& state);
float rng_f32(std::uint64_t& state);

// Sorts (p, token) pairs by p descending, equal p in their given order: the order of
// std::stable_sort with `a.p > b.p`, which it replaces in the sampler (a stable LSD radix sort on
// the bits of p, four byte passes; p must be >= 0, as probabilities are). scratch is reused.
void sort_by_prob_desc(std::vector<std::pair<float, int>>& v, std::vector<std::pair<float, int>>& scratch);

class Sampler {
 public:
  // Throws UsageError for temperature < 0 or not finite, top_p outside [0, 1], seed 0 when
  // temperature > 0.
  Sampler(std::int64_t vocab, float temperature, float top_p, std::uint64_t seed);

  // logits: (vocab), not modified (copied into the sampler's buffer).
  int sample(const float* logits);
  std::uint64_t rng_state() const { return state_; }

 private:
  std::int64_t vocab_;
  float temperature_, top_p_;
  std::uint64_t state_;
  std::vector<float> probs_;                      // (vocab)
  std::vector<std::pair<float, int>> nucleus_;   // (<= vocab) (p, token)
  std::vector<std::pair<float, int>> scratch_;   // sort_by_prob_desc's
};

}  // namespace wm::model
