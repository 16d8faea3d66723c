#include "wafermesh/model/synthetic_weights.hpp"

#include <cmath>

namespace wm::model {

namespace {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// xorshift64* stream; the state is never 0 (seeded from splitmix64 output, forced odd).
struct Stream {
  std::uint64_t s;
  std::uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  // Uniform in (0, 1]: never 0, so log() below is finite.
  double uniform() { return (static_cast<double>(next() >> 11) + 1.0) * 0x1.0p-53; }
  double normal() {
    const double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

}  // namespace

void SyntheticWeightSource::read_rows(Tensor t, std::int64_t layer, std::int64_t row0,
                                      std::int64_t rows, float* out) const {
  check_block(t, layer, row0, rows);
  const TensorShape s = tensor_shape(cfg_, t);
  const bool is_norm = s.rows == 1;
  double mean = 0.0, stddev = 0.0;
  if (is_norm) {
    mean = 1.0;
    stddev = 0.1;
  } else if (t == Tensor::token_embedding) {
    stddev = 1.0 / std::sqrt(static_cast<double>(cfg_.dim));
  } else {
    stddev = 1.0 / std::sqrt(static_cast<double>(s.cols));  // fan-in
  }
  for (std::int64_t r = 0; r < rows; ++r) {
    // One independent stream per (seed, tensor, layer, row): any block can be generated alone.
    std::uint64_t key = splitmix64(seed_);
    key = splitmix64(key ^ static_cast<std::uint64_t>(t));
    key = splitmix64(key ^ static_cast<std::uint64_t>(layer));
    key = splitmix64(key ^ static_cast<std::uint64_t>(row0 + r));
    Stream st{key | 1};
    float* o = out + r * s.cols;
    for (std::int64_t c = 0; c < s.cols; ++c) o[c] = static_cast<float>(mean + stddev * st.normal());
  }
}

Weights synthetic_weights(const ModelConfig& cfg, std::uint64_t seed) {
  return materialize(SyntheticWeightSource(cfg, seed));
}

}  // namespace wm::model
