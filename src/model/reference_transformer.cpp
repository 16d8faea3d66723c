#include "wafermesh/model/reference_transformer.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "wafermesh/kernels/fp32_gemm.hpp"
#include "wafermesh/model/sampler.hpp"

namespace wm::model {

namespace {

constexpr Tensor kProjections[] = {Tensor::wq, Tensor::wk, Tensor::wv, Tensor::wo,
                                   Tensor::w1, Tensor::w2, Tensor::w3};

// o (n) = x (n) / sqrt(mean(x^2) + eps) * weight (n). o may alias x.
void rmsnorm(float* o, const float* x, const float* weight, std::int64_t n, float eps) {
  float ss = 0.0f;
  for (std::int64_t j = 0; j < n; ++j) ss += x[j] * x[j];
  ss /= static_cast<float>(n);
  ss += eps;
  ss = 1.0f / std::sqrt(ss);
  for (std::int64_t j = 0; j < n; ++j) o[j] = weight[j] * (ss * x[j]);
}

std::size_t sz(std::int64_t n) { return static_cast<std::size_t>(n); }

}  // namespace

void rope_ref(float* q, float* k, std::int64_t dim, std::int64_t kv_dim, std::int64_t head_dim, float theta, int pos) {
  for (std::int64_t i = 0; i < dim; i += 2) {
    const float freq = 1.0f / std::pow(theta, static_cast<float>(i % head_dim) / static_cast<float>(head_dim));
    const float val = static_cast<float>(pos) * freq;
    const float fcr = std::cos(val), fci = std::sin(val);
    const int rotn = i < kv_dim ? 2 : 1;  // q spans dim, k only kv_dim
    for (int r = 0; r < rotn; ++r) {
      float* vec = r == 0 ? q : k;
      const float v0 = vec[i], v1 = vec[i + 1];
      vec[i] = v0 * fcr - v1 * fci;
      vec[i + 1] = v0 * fci + v1 * fcr;
    }
  }
}

ReferenceTransformer::ReferenceTransformer(const ModelConfig& cfg, Weights weights)
    : cfg_(cfg), w_(std::move(weights)) {
  for (int i = 0; i < kTensorCount; ++i) {
    const auto t = static_cast<Tensor>(i);
    const std::int64_t expected =
        (tensor_is_per_layer(t) ? cfg_.layers : 1) * tensor_shape(cfg_, t).size();
    if (tensor_is_used(cfg_, t) && static_cast<std::int64_t>(w_.tensor(t).size()) != expected)
      throw std::invalid_argument(std::string("ReferenceTransformer: weights.") + tensor_name(t) +
                                  " has " + std::to_string(w_.tensor(t).size()) + " floats, expected " +
                                  std::to_string(expected));
  }
  if (cfg_.ternary) {
    // Ternarise once: one absmean scale per layer's tensor.
    ternary_.resize(sz(kTensorCount * cfg_.layers));
    for (Tensor t : kProjections) {
      const TensorShape s = tensor_shape(cfg_, t);
      for (std::int64_t l = 0; l < cfg_.layers; ++l)
        ternary_[sz(static_cast<int>(t) * cfg_.layers + l)] =
            ternarize(w_.tensor(t).data() + l * s.size(), s.rows, s.cols);
    }
  }
  const std::int64_t kv_dim = cfg_.kv_dim();
  x_.resize(sz(cfg_.dim));
  xb_.resize(sz(cfg_.dim));
  xb2_.resize(sz(cfg_.dim));
  hb_.resize(sz(cfg_.hidden_dim));
  hb2_.resize(sz(cfg_.hidden_dim));
  q_.resize(sz(cfg_.dim));
  att_.resize(sz(cfg_.heads * cfg_.seq_len));
  logits_.resize(sz(cfg_.vocab));
  key_cache_.resize(sz(cfg_.layers * cfg_.seq_len * kv_dim));
  value_cache_.resize(sz(cfg_.layers * cfg_.seq_len * kv_dim));
}

void ReferenceTransformer::project(Tensor t, std::int64_t l, const float* x, float* y) const {
  const TensorShape s = tensor_shape(cfg_, t);
  if (cfg_.ternary) {
    bitlinear_ref(ternary_[sz(static_cast<int>(t) * cfg_.layers + l)], x, y);
  } else {
    kernels::gemv_f32_ref(s.rows, s.cols, w_.tensor(t).data() + l * s.size(), s.cols, x, y, false);
  }
}

const float* ReferenceTransformer::forward(int token, int pos) {
  if (token < 0 || token >= cfg_.vocab)
    throw std::out_of_range("ReferenceTransformer::forward: token " + std::to_string(token) +
                            " outside the vocabulary [0, " + std::to_string(cfg_.vocab) + ")");
  if (pos < 0 || pos >= cfg_.seq_len)
    throw std::out_of_range("ReferenceTransformer::forward: position " + std::to_string(pos) +
                            " outside the context [0, " + std::to_string(cfg_.seq_len) + ")");
  const std::int64_t dim = cfg_.dim, hidden = cfg_.hidden_dim, kv_dim = cfg_.kv_dim();
  const std::int64_t head_size = cfg_.head_dim(), seq_len = cfg_.seq_len;
  const std::int64_t kv_mul = cfg_.heads / cfg_.kv_heads;  // query heads per kv head
  const float eps = static_cast<float>(cfg_.norm_eps);
  const float theta = static_cast<float>(cfg_.rope_theta);
  const bool relu2 = cfg_.ffn == "relu2";
  float* x = x_.data();
  float* xb = xb_.data();

  const float* emb = w_.token_embedding.data() + std::int64_t{token} * dim;
  for (std::int64_t i = 0; i < dim; ++i) x[i] = emb[i];

  for (std::int64_t l = 0; l < cfg_.layers; ++l) {
    // ---- attention ----
    rmsnorm(xb, x, w_.rms_att.data() + l * dim, dim, eps);
    const std::int64_t loff = l * seq_len * kv_dim;
    float* k = key_cache_.data() + loff + pos * kv_dim;    // (kv_dim) this position's key
    float* v = value_cache_.data() + loff + pos * kv_dim;  // (kv_dim) this position's value
    project(Tensor::wq, l, xb, q_.data());
    project(Tensor::wk, l, xb, k);
    project(Tensor::wv, l, xb, v);

    rope_ref(q_.data(), k, dim, kv_dim, head_size, theta, pos);

    // Grouped-query attention over positions 0..pos.
    for (std::int64_t h = 0; h < cfg_.heads; ++h) {
      const float* qh = q_.data() + h * head_size;  // (head_size)
      float* att = att_.data() + h * seq_len;       // (pos + 1) used
      const std::int64_t kv_off = (h / kv_mul) * head_size;
      for (std::int64_t t = 0; t <= pos; ++t) {
        const float* kt = key_cache_.data() + loff + t * kv_dim + kv_off;
        float score = 0.0f;
        for (std::int64_t i = 0; i < head_size; ++i) score += qh[i] * kt[i];
        score /= std::sqrt(static_cast<float>(head_size));
        att[t] = score;
      }
      softmax(att, pos + 1);
      float* xh = xb + h * head_size;  // (head_size) this head's output
      for (std::int64_t i = 0; i < head_size; ++i) xh[i] = 0.0f;
      for (std::int64_t t = 0; t <= pos; ++t) {
        const float* vt = value_cache_.data() + loff + t * kv_dim + kv_off;
        const float a = att[t];
        for (std::int64_t i = 0; i < head_size; ++i) xh[i] += a * vt[i];
      }
    }
    if (relu2) rmsnorm(xb, xb, w_.attn_sub_norm.data() + l * dim, dim, eps);
    project(Tensor::wo, l, xb, xb2_.data());
    for (std::int64_t i = 0; i < dim; ++i) x[i] += xb2_[sz(i)];

    // ---- feed-forward ----
    rmsnorm(xb, x, w_.rms_ffn.data() + l * dim, dim, eps);
    project(Tensor::w1, l, xb, hb_.data());   // gate
    project(Tensor::w3, l, xb, hb2_.data());  // up
    for (std::int64_t i = 0; i < hidden; ++i) {
      float val = hb_[sz(i)];
      if (relu2) {
        val = val > 0.0f ? val * val : 0.0f;  // relu(val)^2
      } else {
        val *= 1.0f / (1.0f + std::exp(-val));  // silu
      }
      hb_[sz(i)] = val * hb2_[sz(i)];
    }
    if (relu2) rmsnorm(hb_.data(), hb_.data(), w_.ffn_sub_norm.data() + l * hidden, hidden, eps);
    project(Tensor::w2, l, hb_.data(), xb);  // down
    for (std::int64_t i = 0; i < dim; ++i) x[i] += xb[i];
  }

  rmsnorm(x, x, w_.rms_final.data(), dim, eps);
  kernels::gemv_f32_ref(cfg_.vocab, dim, w_.token_embedding.data(), dim, x, logits_.data(), false);
  return logits_.data();
}

}  // namespace wm::model
