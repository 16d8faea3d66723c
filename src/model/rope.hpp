#pragma once
// RoPE as the mesh applies it, to the kv elements one PE holds (internal to src/model): the one
// implementation the decode and the prefill paths share.
//
// Pairs (kd, kd + 1), kd even, of kv elements (kd < kv_dim) are rotated by the angle
// pos * theta^(-(kd mod head_dim) / head_dim), in ReferenceTransformer's operation order. A query
// holds `group` such vectors side by side (the query layout), a key one; both rotate alike.
#include <cmath>
#include <cstdint>

namespace wm::model {

struct RopeShape {
  int64_t kv_dim, head_dim;
  float theta;
};

// Rotates `vectors` blocks, `stride` floats apart, each holding kv elements first .. first +
// block - 1 (first even; elements at or beyond kv_dim are padding and stay as they are), for
// position pos.
inline void rope_rotate(float* v, int64_t vectors, int64_t stride, int64_t first, int64_t block, const RopeShape& s,
                        int64_t pos) {
  for (int64_t e = 0; e + 1 < block; e += 2) {
    const int64_t kd = first + e;
    if (kd >= s.kv_dim) break;
    const float freq = 1.0f / std::pow(s.theta, static_cast<float>(kd % s.head_dim) / static_cast<float>(s.head_dim));
    const float val = static_cast<float>(pos) * freq;
    const float fcr = std::cos(val), fci = std::sin(val);
    for (int64_t j = 0; j < vectors; ++j) {
      float* vec = v + j * stride;
      const float v0 = vec[e], v1 = vec[e + 1];
      vec[e] = v0 * fcr - v1 * fci;
      vec[e + 1] = v0 * fci + v1 * fcr;
    }
  }
}

}  // namespace wm::model
