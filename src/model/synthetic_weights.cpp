#include "wafermesh/model/synthetic_weights.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

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
  // so (sum - 2) * sqrt(3) has mean 0, variance 1 and |value| <= 3.46. One stream step per value
  // and no libm call: a BitNet 2B4T's 2.4G weights generate in seconds.
  // The sum of the four fields (< 2^18); normal_of turns it into the value.
  std::int32_t fields() {
    const std::uint64_t r = next();
    return static_cast<std::int32_t>((r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48));
  }
  static double normal_of(std::int32_t f) {
    return ((static_cast<double>(f) + 2.0) * 0x1.0p-16 - 2.0) * 1.7320508075688772;
  }
};

// v rounded to the nearest bf16 (ties to even), as a float. |v| is far below the largest bf16, and
// never NaN, so the plain rounding of the upper half holds.
float bf16_value(double v) {
  const float f = static_cast<float>(v);
  std::uint32_t b;
  std::memcpy(&b, &f, sizeof(b));
  b = (b + 0x7FFFu + ((b >> 16) & 1u)) & 0xFFFF0000u;
  float r;
  std::memcpy(&r, &b, sizeof(r));
  return r;
}

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
  // Two passes per row: the stream's integer draws, then their values. The draws of a stream wait
  // on each other, so four rows' streams run side by side; the values then convert in plain
  // loops over a row the compiler vectorises (mixed in with the draws, the double conversions
  // stalled on each other). Every row's values are those of its own stream, as one at a time.
  thread_local std::vector<std::int32_t> draws;
  draws.resize(static_cast<std::size_t>(4 * s.cols));
  auto values = [&](const std::int32_t* f, float* o) {
    for (std::int64_t c = 0; c < s.cols; ++c) o[c] = bf16_value(mean + stddev * Stream::normal_of(f[c]));
  };
  std::int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    Stream st[4] = {stream_of(row0 + r), stream_of(row0 + r + 1), stream_of(row0 + r + 2), stream_of(row0 + r + 3)};
    for (std::int64_t c = 0; c < s.cols; ++c)
      for (int u = 0; u < 4; ++u) draws[static_cast<std::size_t>(u * s.cols + c)] = st[u].fields();
    for (int u = 0; u < 4; ++u) values(draws.data() + u * s.cols, out + (r + u) * s.cols);
  }
  for (; r < rows; ++r) {
    Stream st = stream_of(row0 + r);
    for (std::int64_t c = 0; c < s.cols; ++c) draws[static_cast<std::size_t>(c)] = st.fields();
    values(draws.data(), out + r * s.cols);
  }
}

Weights synthetic_weights(const ModelConfig& cfg, std::uint64_t seed) {
  return materialize(SyntheticWeightSource(cfg, seed));
}

}  // namespace wm::model
