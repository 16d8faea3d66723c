#pragma once
// How one model's tensors are cut into the blocks of a P x P region (internal to src/model).
//
// Every vector of the decode path is cut into P blocks, one per line of PEs:
//   dim       blocks of dim_block = ceil(dim / P)        (the residual stream, split along Y)
//   hidden    blocks of hidden_block = ceil(hidden / P)  (the FFN's hidden vector, split along X)
//   kv_dim    blocks of kv_block = ceil(kv_dim / P)      (a key or value, split along X)
// and the query (and the attention output) in the query layout: column c holds, for each of the
// group = heads / kv_heads query heads j that share a key head, the kv elements of block c:
// slot c * query_block + j * kv_block + e holds query element ((kd / head_dim) * group + j) *
// head_dim + kd % head_dim with kd = c * kv_block + e (nothing, i.e. zero, when kd >= kv_dim).
// So query head (kvh, j) meets key head kvh on the same PEs.
//   Example: heads 8, kv_heads 4, head_dim 8 (kv_dim 32, group 2) on P = 4: kv_block 8,
//   query_block 16; column 1 holds query heads 2 and 3 (key head 1): slots 16..23 are head 2,
//   slots 24..31 head 3.
// W_q's rows and W_o's columns are stored in that order (WeightLayout), so no data moves to line
// the heads up.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "wafermesh/dist/allreduce.hpp"
#include "wafermesh/dist/gemv.hpp"
#include "wafermesh/model/model_config.hpp"
#include "wafermesh/noc/tile_buf.hpp"

namespace wm::model {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Block sizes of one model on P x P regions.
struct MeshDims {
  int32_t side;                                       // P
  int64_t dim, hidden, kv_dim, head_dim, heads, group;  // group: query heads per key head
  int64_t dim_block, hidden_block, kv_block;          // ceil(dim / P), ceil(hidden / P), ceil(kv_dim / P)
  int64_t query_block;                                // group * kv_block: a PE's query tile
  MeshDims(const ModelConfig& c, int32_t P);
  int64_t query_width() const { return int64_t(side) * query_block; }  // the query layout's length
  // Slot i of the query layout -> index in the model's query vector, or -1 for padding.
  int64_t query_index(int64_t slot) const;
};

// How a projection's weight matrix is stored on the mesh.
enum class WeightLayout {
  plain,          // as in the model
  query_rows,     // W_q: rows in the query layout (M = query_width)
  query_columns,  // W_o: columns in the query layout (K = query_width)
};

// How a vector sits on a region's PEs.
enum class VectorLayout {
  split_y,  // block r on every PE of row r
  split_x,  // block c on every PE of column c
  query,    // the query layout along X (block c = slots of column c)
};

dist::GemvSpec gemv_spec(const Region& R, int64_t M, int64_t K, Axis reduce_axis, const dist::AllreduceSpec& ar);

// The seven projections of a layer on region R as MeshGEMVs whose reduction axis alternates:
// W_q, W_k, W_v, W_1, W_3 reduce along Y (input split along Y), W_o and W_2 along X.
struct ProjectionSpecs {
  dist::GemvSpec wq, wk, wv, wo, w1, w2, w3;
  ProjectionSpecs(const MeshDims& d, const Region& R, const dist::AllreduceSpec& ar);
  std::vector<const dist::GemvSpec*> all() const { return {&wq, &wk, &wv, &wo, &w1, &w2, &w3}; }
};

// The weight matrix `in` (rows x cols of the model) as the mesh stores it, (M x K) in `layout`
// (zero where the query layout pads). Returns `in` itself for the plain layout, else `out`.
template <class T>
const std::vector<T>& lay_out_weight(const MeshDims& d, WeightLayout layout, const std::vector<T>& in, int64_t cols,
                                     int64_t M, int64_t K, std::vector<T>& out);

// Element e of block b of a vector of length n in `layout` (block elements each): its index in
// the model's vector, or -1 for padding.
int64_t vector_index(const MeshDims& d, VectorLayout layout, int64_t b, int64_t block, int64_t e, int64_t n);

// A vector (a norm's weights) as tiles of `block` elements on region R in `layout`.
std::unique_ptr<TileBuf<float>> vector_tiles(Fabric& f, const MeshDims& d, const Region& R, const std::vector<float>& v,
                                             int64_t block, VectorLayout layout, const std::string& name);

}  // namespace wm::model
