#pragma once
// The transformer of mesh_transformer.hpp computed in one process, plainly, in the summation order
// of the mesh: the reference the mesh transformer must match bit for bit (fp32 and ternary). The
// mesh path calls none of its code and it none of the mesh path's: it is written with the dist
// layer's serial references (allreduce_line_reference, gemv_f32_reference, gemm_f32_reference,
// kv_attention_reference) and BitLinear's (bitlinear_ref, whose activation quantiser is the
// kernels' own, tested against std::nearbyint on its own).
//
// Every fp32 sum the mesh splits over PEs is written here as: partial sums of each PE's block in
// index order, combined in the order of the allreduce tree over the line of PEs:
//   rmsnorm          blocks of ceil(n / P) (the attention sub-norm: the query layout), block b at
//                    position b of the line in decode; in prefill the MeshGEMM's placement, block
//                    l at the interleaved ring's position of l
//   fp32 projections gemv_f32_reference (decode), gemm_f32_reference (prefill) on the same
//                    (row- or column-permuted) matrices
//   attention        kv_attention_reference (decode: tokens spread over rows by the KV policy);
//                    prefill: per query head two MeshGEMMs and a causal softmax whose sums run
//                    over the column blocks of the scores, placed as in the rmsnorm
//   classifier       gemv_f32_reference per classifier region
// BitLinear projections are bitlinear_ref (exact integer sums: order does not matter), RoPE is
// ReferenceTransformer's rope_ref, and residuals and activations are the same elementwise
// expressions as ReferenceTransformer. No fabric, no clocks, no threads.
#include <cstdint>
#include <vector>

#include "wafermesh/dist/allreduce.hpp"
#include "wafermesh/model/bitlinear.hpp"
#include "wafermesh/model/mesh_transformer.hpp"
#include "wafermesh/model/weights.hpp"

namespace wm::model {

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
