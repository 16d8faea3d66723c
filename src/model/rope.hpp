#pragma once
// RoPE as the mesh applies it, to the kv elements one PE holds (internal to src/model): the one
// implementation the decode and the prefill paths share, and its exchange of the pairs that
// straddle two PEs.
//
// Pairs (kd, kd + 1), kd even, of kv elements (kd < kv_dim) are rotated by the angle
// pos * theta^(-(kd mod head_dim) / head_dim), in ReferenceTransformer's operation order. A query
// holds `group` such vectors side by side (the query layout), a key one; both rotate alike.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "wafermesh/noc/primitives.hpp"

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

// RoPE on tiles split along X: the PE of logical column c = col_of(x) holds kv elements c * block
// .. c * block + block - 1 of each of its `vectors` vectors (vec(tile, j) points at vector j;
// pos(y, j) is its position, or -1 to leave it). With an even block every pair sits on one PE.
// With an odd block the pairs at the block's edges straddle two logical neighbours: every PE sends
// its vectors' first elements one logical place back and their last elements one place on along
// its row (two fabric shifts of one element per vector, on `perm`, charged like any transfer), and
// then each PE rotates every pair it holds a part of, the straddling ones with the partner it
// received (both PEs compute such a pair, with the same operations, and each keeps its half).
template <class ColFn, class VecFn, class PosFn>
void rope_on_tiles(Fabric& f, TileBuf<float>& t, int64_t vectors, int64_t block, const LinePerm& perm,
                   const RopeShape& s, ColFn col_of, VecFn vec, PosFn pos) {
  if (block % 2 == 0) {
    t.for_each_local([&](int32_t px, int32_t py, float* tile) {
      for (int64_t j = 0; j < vectors; ++j)
        if (const int64_t p = pos(py, j); p >= 0) rope_rotate(vec(tile, j), 1, 0, col_of(px) * block, block, s, p);
    });
    return;
  }
  const Region& R = t.region();
  TileBuf<float> heads(f, R, size_t(vectors), "RoPE: first elements to the previous column");
  TileBuf<float> tails(f, R, size_t(vectors), "RoPE: last elements to the next column");
  t.for_each_local([&](int32_t px, int32_t py, float* tile) {
    for (int64_t j = 0; j < vectors; ++j) {
      heads.tile(px, py)[j] = vec(tile, j)[0];
      tails.tile(px, py)[j] = vec(tile, j)[block - 1];
    }
  });
  shift(f, heads, Axis::X, -1, false, perm);  // column c now holds column c + 1's first elements
  shift(f, tails, Axis::X, +1, false, perm);  // and column c - 1's last elements
  std::vector<float> ext(size_t(block + 2));
  t.for_each_local([&](int32_t px, int32_t py, float* tile) {
    const int64_t first = col_of(px) * block;
    const int64_t lo = first % 2, hi = (first + block) % 2;  // a partner before / after the block
    for (int64_t j = 0; j < vectors; ++j) {
      const int64_t p = pos(py, j);
      if (p < 0) continue;
      float* v = vec(tile, j);
      if (lo) ext[0] = tails.tile(px, py)[j];
      std::copy(v, v + block, ext.begin() + lo);
      if (hi) ext[size_t(lo + block)] = heads.tile(px, py)[j];
      rope_rotate(ext.data(), 1, 0, first - lo, lo + block + hi, s, p);
      std::copy(ext.begin() + lo, ext.begin() + lo + block, v);
    }
  });
}

}  // namespace wm::model
