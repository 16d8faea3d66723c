#include "mesh_layout.hpp"

#include <algorithm>

namespace wm::model {

MeshDims::MeshDims(const ModelConfig& c, int32_t P)
    : side(P), dim(c.dim), hidden(c.hidden_dim), kv_dim(c.kv_dim()), head_dim(c.head_dim()), heads(c.heads),
      group(c.heads / c.kv_heads), dim_block(ceil_div(c.dim, P)), hidden_block(ceil_div(c.hidden_dim, P)),
      kv_block(ceil_div(c.kv_dim(), P)), query_block(ceil_div(c.kv_dim(), P) * (c.heads / c.kv_heads)) {}

int64_t MeshDims::query_index(int64_t slot) const {
  const int64_t c = slot / query_block, j = (slot % query_block) / kv_block, e = slot % kv_block;
  const int64_t kd = c * kv_block + e;
  return kd < kv_dim ? ((kd / head_dim) * group + j) * head_dim + kd % head_dim : -1;
}

dist::GemvSpec gemv_spec(const Region& R, int64_t M, int64_t K, Axis reduce_axis, const dist::AllreduceSpec& ar) {
  dist::GemvSpec s;
  s.P = R.w;
  s.origin = {R.x0, R.y0};
  s.M = M;
  s.K = K;
  s.reduce_axis = reduce_axis;
  s.allreduce = ar;
  s.report = false;  // the transformer reads the clocks itself
  return s;
}

ProjectionSpecs::ProjectionSpecs(const MeshDims& d, const Region& R, const dist::AllreduceSpec& ar)
    : wq(gemv_spec(R, d.query_width(), d.dim, Axis::Y, ar)), wk(gemv_spec(R, d.kv_dim, d.dim, Axis::Y, ar)),
      wv(gemv_spec(R, d.kv_dim, d.dim, Axis::Y, ar)), wo(gemv_spec(R, d.dim, d.query_width(), Axis::X, ar)),
      w1(gemv_spec(R, d.hidden, d.dim, Axis::Y, ar)), w2(gemv_spec(R, d.dim, d.hidden, Axis::X, ar)),
      w3(gemv_spec(R, d.hidden, d.dim, Axis::Y, ar)) {}

template <class T>
const std::vector<T>& lay_out_weight(const MeshDims& d, WeightLayout layout, const std::vector<T>& in, int64_t cols,
                                     int64_t M, int64_t K, std::vector<T>& out) {
  if (layout == WeightLayout::plain) return in;
  out.assign(static_cast<size_t>(M * K), T{});
  if (layout == WeightLayout::query_rows) {
    for (int64_t i = 0; i < M; ++i) {
      const int64_t qi = d.query_index(i);
      if (qi >= 0) std::copy(in.begin() + qi * cols, in.begin() + (qi + 1) * cols, out.begin() + i * K);
    }
  } else {
    for (int64_t i = 0; i < K; ++i) {
      const int64_t qi = d.query_index(i);
      if (qi < 0) continue;
      for (int64_t r = 0; r < M; ++r) out[size_t(r * K + i)] = in[size_t(r * cols + qi)];
    }
  }
  return out;
}
template const std::vector<float>& lay_out_weight(const MeshDims&, WeightLayout, const std::vector<float>&, int64_t,
                                                  int64_t, int64_t, std::vector<float>&);
template const std::vector<int8_t>& lay_out_weight(const MeshDims&, WeightLayout, const std::vector<int8_t>&, int64_t,
                                                   int64_t, int64_t, std::vector<int8_t>&);

int64_t vector_index(const MeshDims& d, VectorLayout layout, int64_t b, int64_t block, int64_t e, int64_t n) {
  const int64_t i = layout == VectorLayout::query ? d.query_index(b * block + e) : b * block + e;
  return i >= 0 && i < n ? i : -1;
}

std::unique_ptr<TileBuf<float>> vector_tiles(Fabric& f, const MeshDims& d, const Region& R, const std::vector<float>& v,
                                             int64_t block, VectorLayout layout, const std::string& name) {
  // Every PE of a line holds the same block (a row's under split_y, a column's otherwise): written
  // through the line heads, so that the readers' const tiles read one compact array (a norm reads
  // one tile per line, each a row of tiles apart in per-PE storage: a cache miss apiece) and the
  // per-PE storage is never touched unless something moves or gathers the tiles.
  auto t = std::make_unique<TileBuf<float>>(f, R, size_t(block), name, TileBuf<float>::NoInit{});
  t->for_each_line_head(layout == VectorLayout::split_y ? Axis::X : Axis::Y, [&](int32_t x, int32_t y, float* o) {
    const int64_t b = layout == VectorLayout::split_y ? y - R.y0 : x - R.x0;
    for (int64_t e = 0; e < block; ++e) {
      const int64_t i = vector_index(d, layout, b, block, e, int64_t(v.size()));
      o[e] = i >= 0 ? v[size_t(i)] : 0.0f;
    }
  });
  return t;
}

}  // namespace wm::model
