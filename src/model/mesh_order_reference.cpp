#include "wafermesh/model/mesh_order_reference.hpp"

#include <cmath>
#include <stdexcept>

#include "wafermesh/dist/allreduce.hpp"
#include "wafermesh/dist/gemv.hpp"
#include "wafermesh/dist/gqa_attention.hpp"

namespace wm::model {

namespace {

constexpr Tensor kProj[] = {Tensor::wq, Tensor::wk, Tensor::wv, Tensor::wo, Tensor::w1, Tensor::w2, Tensor::w3};

size_t sz(int64_t n) { return static_cast<size_t>(n); }

// Sum of v[i]^2 cut into P blocks of `block` (block b holds elements order[b*block .. +block)),
// each block in index order, blocks combined by the allreduce tree. order[i] < 0: padding.
float sum_squares(const std::vector<float>& v, const std::vector<int64_t>& order, int32_t P, int64_t block,
                  const dist::AllreduceSpec& ar) {
  std::vector<std::vector<float>> parts(sz(P), std::vector<float>(1, 0.0f));
  for (int32_t b = 0; b < P; ++b) {
    float acc = 0.0f;
    for (int64_t e = 0; e < block; ++e) {
      const int64_t i = order[sz(b * block + e)];
      const float x = i >= 0 ? v[sz(i)] : 0.0f;
      acc += x * x;
    }
    parts[sz(b)][0] = acc;
  }
  return dist::allreduce_line_reference(ar, parts)[0];
}

// out = weight * (x / sqrt(ss / n + eps)), the mesh's expression.
void scale_by_norm(std::vector<float>& out, const std::vector<float>& x, const float* weight, float ss, int64_t n,
                   float eps) {
  float s = ss;
  s /= static_cast<float>(n);
  s += eps;
  s = 1.0f / std::sqrt(s);
  for (size_t j = 0; j < x.size(); ++j) out[j] = weight[j] * (s * x[j]);
}

std::vector<int64_t> identity(int64_t n, int64_t padded) {
  std::vector<int64_t> o(sz(padded), -1);
  for (int64_t i = 0; i < n; ++i) o[sz(i)] = i;
  return o;
}

}  // namespace

MeshOrderReference::MeshOrderReference(const ModelConfig& cfg, Weights w, const MeshPlacementSpec& spec,
                                       const MeshPlacement& placement)
    : cfg_(cfg), w_(std::move(w)), spec_(spec), pl_(placement) {
  if (cfg_.ternary)
    for (Tensor t : kProj) {
      const TensorShape s = tensor_shape(cfg_, t);
      for (int64_t l = 0; l < cfg_.layers; ++l)
        tern_.push_back(ternarize(w_.tensor(t).data() + l * s.size(), s.rows, s.cols));
    }
  keys_.resize(sz(cfg_.layers));
  values_.resize(sz(cfg_.layers));
  queries_.resize(sz(cfg_.layers));
  logits_.resize(sz(cfg_.vocab));
}

const float* MeshOrderReference::forward(int token, int pos) {
  const int32_t P = spec_.P;
  const int64_t dim = cfg_.dim, hidden = cfg_.hidden_dim, kvd = cfg_.kv_dim(), hd = cfg_.head_dim();
  const int64_t H = cfg_.heads, G = cfg_.heads / cfg_.kv_heads;
  const int64_t mtD = (dim + P - 1) / P, mtH = (hidden + P - 1) / P, mtk = (kvd + P - 1) / P, mq = G * mtk;
  const float eps = static_cast<float>(cfg_.norm_eps), theta = static_cast<float>(cfg_.rope_theta);
  const bool relu2 = cfg_.ffn == "relu2";
  const dist::AllreduceSpec& ar = spec_.allreduce;
  if (pos != static_cast<int>(keys_[0].size() / sz(kvd))) throw std::logic_error("positions must come in order");
  // The (c, j, e) query layout: slot i -> index in q (or -1 for padding).
  std::vector<int64_t> qlay(sz(P * mq), -1);
  for (int64_t i = 0; i < P * mq; ++i) {
    const int64_t c = i / mq, j = (i % mq) / mtk, e = i % mtk, kd = c * mtk + e;
    if (kd < kvd) qlay[sz(i)] = ((kd / hd) * G + j) * hd + kd % hd;
  }
  const std::vector<int64_t> dlay = identity(dim, P * mtD), hlay = identity(hidden, P * mtH);
  auto spec_of = [&](int64_t M, int64_t K, Axis a) {
    dist::GemvSpec s;
    s.P = P;
    s.M = M;
    s.K = K;
    s.reduce_axis = a;
    s.allreduce = ar;
    return s;
  };
  // y = W x for projection index pi of layer l; kind 1: W_q rows permuted, 2: W_o columns permuted.
  auto project = [&](int pi, int64_t l, const std::vector<float>& x, int kind) {
    const Tensor t = kProj[pi];
    const TensorShape s = tensor_shape(cfg_, t);
    std::vector<float> y(sz(s.rows));
    if (cfg_.ternary) {
      bitlinear_ref(tern_[sz(pi * cfg_.layers + l)], x.data(), y.data());
      return y;
    }
    const float* W = w_.tensor(t).data() + l * s.size();
    const Axis a = (t == Tensor::wo || t == Tensor::w2) ? Axis::X : Axis::Y;
    if (kind == 0) return dist::gemv_f32_reference(spec_of(s.rows, s.cols, a), W, x.data());
    if (kind == 1) {
      std::vector<float> Wp(sz(P * mq * s.cols), 0.0f);
      for (int64_t i = 0; i < P * mq; ++i)
        if (qlay[sz(i)] >= 0)
          for (int64_t k = 0; k < s.cols; ++k) Wp[sz(i * s.cols + k)] = W[qlay[sz(i)] * s.cols + k];
      const std::vector<float> yp = dist::gemv_f32_reference(spec_of(P * mq, s.cols, a), Wp.data(), x.data());
      for (int64_t i = 0; i < P * mq; ++i)
        if (qlay[sz(i)] >= 0) y[sz(qlay[sz(i)])] = yp[sz(i)];
      return y;
    }
    std::vector<float> Wp(sz(s.rows * P * mq), 0.0f), xp(sz(P * mq), 0.0f);
    for (int64_t i = 0; i < P * mq; ++i)
      if (qlay[sz(i)] >= 0) {
        xp[sz(i)] = x[sz(qlay[sz(i)])];
        for (int64_t r = 0; r < s.rows; ++r) Wp[sz(r * P * mq + i)] = W[r * s.cols + qlay[sz(i)]];
      }
    return dist::gemv_f32_reference(spec_of(s.rows, P * mq, a), Wp.data(), xp.data());
  };

  std::vector<float> x(w_.token_embedding.begin() + int64_t{token} * dim,
                       w_.token_embedding.begin() + (int64_t{token} + 1) * dim);
  std::vector<float> xb(sz(dim)), h(sz(hidden));
  for (int64_t l = 0; l < cfg_.layers; ++l) {
    scale_by_norm(xb, x, w_.rms_att.data() + l * dim, sum_squares(x, dlay, P, mtD, ar), dim, eps);
    std::vector<float> q = project(0, l, xb, 1), k = project(1, l, xb, 0), v = project(2, l, xb, 0);
    for (int64_t i = 0; i < dim; i += 2) {
      const int64_t hdi = i % hd;
      const float freq = 1.0f / std::pow(theta, static_cast<float>(hdi) / static_cast<float>(hd));
      const float val = static_cast<float>(pos) * freq;
      const float fcr = std::cos(val), fci = std::sin(val);
      for (int r = 0; r < (i < kvd ? 2 : 1); ++r) {
        float* vec = r == 0 ? q.data() : k.data();
        const float v0 = vec[i], v1 = vec[i + 1];
        vec[i] = v0 * fcr - v1 * fci;
        vec[i + 1] = v0 * fci + v1 * fcr;
      }
    }
    auto& K = keys_[sz(l)];
    auto& V = values_[sz(l)];
    auto& Q = queries_[sz(l)];
    K.insert(K.end(), k.begin(), k.end());
    V.insert(V.end(), v.begin(), v.end());
    Q.insert(Q.end(), q.begin(), q.end());
    dist::GqaSpec gs;
    gs.policy = spec_.kv_policy;
    gs.P = P;
    gs.heads = H;
    gs.kv_heads = cfg_.kv_heads;
    gs.head_dim = hd;
    gs.allreduce = ar;
    std::vector<float> att = dist::gqa_attention_reference(gs, Q.data(), K.data(), V.data(), pos + 1);
    if (relu2)
      scale_by_norm(att, att, w_.attn_sub_norm.data() + l * dim, sum_squares(att, qlay, P, mq, ar), dim, eps);
    const std::vector<float> o = project(3, l, att, 2);
    for (int64_t i = 0; i < dim; ++i) x[sz(i)] += o[sz(i)];
    scale_by_norm(xb, x, w_.rms_ffn.data() + l * dim, sum_squares(x, dlay, P, mtD, ar), dim, eps);
    std::vector<float> a = project(4, l, xb, 0), b = project(6, l, xb, 0);
    for (int64_t i = 0; i < hidden; ++i) {
      float val = a[sz(i)];
      if (relu2) val = val > 0.0f ? val * val : 0.0f;
      else val *= 1.0f / (1.0f + std::exp(-val));
      h[sz(i)] = val * b[sz(i)];
    }
    if (relu2)
      scale_by_norm(h, h, w_.ffn_sub_norm.data() + l * hidden, sum_squares(h, hlay, P, mtH, ar), hidden, eps);
    const std::vector<float> down = project(5, l, h, 0);
    for (int64_t i = 0; i < dim; ++i) x[sz(i)] += down[sz(i)];
  }
  scale_by_norm(xb, x, w_.rms_final.data(), sum_squares(x, dlay, P, mtD, ar), dim, eps);
  int64_t row0 = 0;
  for (int64_t rows : pl_.classifier_rows) {
    const std::vector<float> y = dist::gemv_f32_reference(spec_of(rows, dim, Axis::Y),
                                                          w_.token_embedding.data() + row0 * dim, xb.data());
    std::copy(y.begin(), y.end(), logits_.begin() + row0);
    row0 += rows;
  }
  return logits_.data();
}

}  // namespace wm::model
