#pragma once
// The plain single-process transformer (llama2.c style): the reference the mesh transformer is
// compared against. One token at a time; no fabric, no threads, no clever kernels.
//
// Block (pre-norm), for each layer l:
//   xb  = rmsnorm(x) * rms_att[l]                       rmsnorm(v) = v / sqrt(mean(v^2) + eps)
//   q, k, v = Wq xb, Wk xb, Wv xb;  RoPE on q and k      pairs (2i, 2i+1) of every head, angle
//                                                        pos * theta^(-2i / head_dim)
//   k, v -> KV cache at pos;  per query head h (kv head h / (heads / kv_heads)):
//   att = softmax(q . k_t / sqrt(head_dim), t = 0..pos);  xb = sum_t att_t v_t
//   relu2 only: xb = rmsnorm(xb) * attn_sub_norm[l]
//   x += Wo xb
//   xb  = rmsnorm(x) * rms_ffn[l]
//   swiglu: h = silu(W1 xb) * (W3 xb)
//   relu2:  h = rmsnorm(relu(W1 xb)^2 * (W3 xb)) * ffn_sub_norm[l]
//   x += W2 h
// logits = token_embedding . (rmsnorm(x) * rms_final)          (tied classifier)
//
// fp32 everywhere; matrix-vector products are kernels::gemv_f32_ref (sum over k in index order)
// and the other loops follow llama2.c's operation order, so stories260K reproduces llama2.c's
// greedy output. With cfg.ternary every projection Wq Wk Wv Wo W1 W2 W3 is a BitLinear
// (bitlinear.hpp: weights ternarised once per layer's tensor at construction, activations int8 per
// token, exact int32 dot products). Norms, RoPE, attention, the KV cache, the residual stream and
// the classifier stay fp32 — the classifier too, as in BitNet b1.58, whose embedding/LM head are not
// BitLinear.
#include <cstdint>
#include <vector>

#include "wafermesh/model/bitlinear.hpp"
#include "wafermesh/model/model_config.hpp"
#include "wafermesh/model/weights.hpp"

namespace wm::model {

// RoPE of one position, plainly (llama2.c's loop): each pair (i, i + 1), i even, of q (dim
// elements) and of k (its first kv_dim elements) is rotated by the angle
// pos * theta^(-(i mod head_dim) / head_dim). The references' RoPE (ReferenceTransformer,
// MeshOrderReference); the mesh has its own (src/model/rope.hpp), which they check.
void rope_ref(float* q, float* k, std::int64_t dim, std::int64_t kv_dim, std::int64_t head_dim, float theta, int pos);

class ReferenceTransformer {
 public:
  // Memory: the weights plus a KV cache of 2 * layers * seq_len * kv_dim floats. Small models only.
  ReferenceTransformer(const ModelConfig& cfg, Weights weights);

  // Logits (vocab) for `token` at position `pos`; positions must be fed in order 0, 1, 2, ...
  // (the KV cache holds 0..pos-1). The pointer stays valid until the next call.
  // Throws std::out_of_range for a token outside the vocabulary or pos outside [0, seq_len).
  const float* forward(int token, int pos);

  const ModelConfig& config() const { return cfg_; }
  const Weights& weights() const { return w_; }

 private:
  // y (rows) = W x for projection t of layer l (fp32 or BitLinear per cfg_.ternary).
  void project(Tensor t, std::int64_t l, const float* x, float* y) const;

  ModelConfig cfg_;
  Weights w_;
  std::vector<TernaryWeight> ternary_;  // (kTensorCount * layers) when cfg_.ternary, else empty

  // Run state (llama2.c RunState).
  std::vector<float> x_;       // (dim)          residual stream
  std::vector<float> xb_;      // (dim)          normed input / attention output
  std::vector<float> xb2_;     // (dim)          projection output
  std::vector<float> hb_;      // (hidden)       FFN gate, then the FFN hidden vector
  std::vector<float> hb2_;     // (hidden)       FFN up
  std::vector<float> q_;       // (dim)
  std::vector<float> att_;     // (heads, seq_len) attention scores/weights
  std::vector<float> logits_;  // (vocab)
  std::vector<float> key_cache_;    // (layers, seq_len, kv_dim)
  std::vector<float> value_cache_;  // (layers, seq_len, kv_dim)
};

}  // namespace wm::model
