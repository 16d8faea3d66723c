#pragma once
// The transformer of mesh_transformer.hpp computed in one process, plainly, in the summation order
// of the mesh: the reference the mesh transformer must match bit for bit (fp32 and ternary).
//
// Every fp32 sum the mesh splits over PEs is written here as: partial sums of each PE's block in
// index order, combined in the order of the allreduce tree (dist::allreduce_line_reference):
//   rmsnorm          blocks of ceil(n / P) (the attention sub-norm: the (c, j, e) query layout)
//   fp32 projections dist::gemv_f32_reference on the same (row- or column-permuted) matrices
//   attention        dist::kv_attention_reference (tokens spread over rows by the KV policy)
//   classifier       dist::gemv_f32_reference per classifier region
// BitLinear projections are bitlinear_ref (exact integer sums: order does not matter), and RoPE,
// residuals and activations are the same elementwise expressions as ReferenceTransformer. No
// fabric, no clocks, no threads.
#include <cstdint>
#include <vector>

#include "wafermesh/dist/allreduce.hpp"
#include "wafermesh/model/bitlinear.hpp"
#include "wafermesh/model/mesh_transformer.hpp"
#include "wafermesh/model/weights.hpp"

namespace wm::model {

// Causal softmax of the prefill's scores as the mesh computes it: S (n, n) row t over columns
// u <= t, each score divided by sqrt(head_dim); the row max (exact), then the sum of exp(s - max)
// as partial sums over the P column blocks of ceil(n / P) (the GEMM's C tiles along X, each in
// index order) combined by the allreduce tree; a = exp(s - max) / sum, 0 above the diagonal.
void causal_softmax_mesh_order(std::vector<float>& S, int64_t n, int64_t head_dim, int32_t P,
                               const dist::AllreduceSpec& ar);

class MeshOrderReference {
 public:
  // placement: MeshTransformer::plan(...) for the same spec (the classifier's cut).
  MeshOrderReference(const ModelConfig& cfg, Weights w, const MeshPlacementSpec& spec, const MeshPlacement& placement);
  // Logits (vocab); pos = 0, 1, 2, ... in order.
  const float* forward(int token, int pos);
  // Logits of the last of `tokens` at positions 0 .. n-1 as MeshTransformer::prefill computes
  // them (projections and attention as MeshGEMMs: dist::gemm_f32_reference; ternary projections
  // are exact). The caches must be empty.
  const float* prefill(const std::vector<int>& tokens);

 private:
  const float* run(const std::vector<int>& tokens, int pos0, bool as_gemm);
  ModelConfig cfg_;
  Weights w_;
  MeshPlacementSpec spec_;
  MeshPlacement pl_;
  std::vector<TernaryWeight> tern_;          // (7 * layers) when ternary
  std::vector<std::vector<float>> keys_, values_, queries_;  // per layer: (tokens, kv_dim) / (tokens, dim)
  std::vector<float> logits_;
};

}  // namespace wm::model
