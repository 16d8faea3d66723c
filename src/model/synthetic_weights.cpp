#include "wafermesh/model/synthetic_weights.hpp"

#include <cmath>
#include <cstdint>

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
  // Approximately standard normal from one draw: the four 16-bit fields of a 64-bit output are
  // uniforms u_i = (f_i + 0.5) / 65536; their sum (Irwin-Hall, n = 4) has mean 2 and variance 1/3,
  // so (sum - 2) * sqrt(3) has mean 0, variance 1 and |value| <= 3.46. One stream step per value:
  // a BitNet 2B4T's 2.4G weights generate in seconds (Box-Muller took a minute).
  double normal() {
    const std::uint64_t r = next();
    const std::uint64_t f = (r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48);
    return ((static_cast<double>(f) + 2.0) * 0x1.0p-16 - 2.0) * 1.7320508075688772;
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
  // One independent stream per (seed, tensor, layer, row): any block can be generated alone.
  auto stream_of = [&](std::int64_t row) {
    std::uint64_t key = splitmix64(seed_);
    key = splitmix64(key ^ static_cast<std::uint64_t>(t));
    key = splitmix64(key ^ static_cast<std::uint64_t>(layer));
    key = splitmix64(key ^ static_cast<std::uint64_t>(row));
    return Stream{key | 1};
  };
  std::int64_t r = 0;
  // Four rows side by side: each stream step waits on the previous one, so four independent
  // streams keep the core busy. Every row's values are those of its own stream, as one at a time.
  for (; r + 4 <= rows; r += 4) {
    Stream st[4] = {stream_of(row0 + r), stream_of(row0 + r + 1), stream_of(row0 + r + 2), stream_of(row0 + r + 3)};
    float* o = out + r * s.cols;
    for (std::int64_t c = 0; c < s.cols; ++c)
      for (int u = 0; u < 4; ++u) o[u * s.cols + c] = static_cast<float>(mean + stddev * st[u].normal());
  }
  for (; r < rows; ++r) {
    Stream st = stream_of(row0 + r);
    float* o = out + r * s.cols;
    for (std::int64_t c = 0; c < s.cols; ++c) o[c] = static_cast<float>(mean + stddev * st.normal());
  }
}

Weights synthetic_weights(const ModelConfig& cfg, std::uint64_t seed) {
  return materialize(SyntheticWeightSource(cfg, seed));
}

}  // namespace wm::model
