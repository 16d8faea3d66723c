#include "wafermesh/model/mesh_order_reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "wafermesh/dist/allreduce.hpp"
#include "wafermesh/dist/gemm.hpp"
#include "wafermesh/dist/gemv.hpp"
#include "wafermesh/dist/kv_cache.hpp"
#include "wafermesh/model/reference_transformer.hpp"

namespace wm::model {

namespace {

constexpr Tensor kProj[] = {Tensor::wq, Tensor::wk, Tensor::wv, Tensor::wo, Tensor::w1, Tensor::w2, Tensor::w3};

size_t sz(int64_t n) { return static_cast<size_t>(n); }

// The block at each position of a line of P PEs: the decode layout puts block b at position b;
// the prefill layout (the MeshGEMM's) puts logical block l at the interleaved ring's position:
// position i holds block i / 2 (i even) or P - 1 - (i - 1) / 2 (i odd).
std::vector<int32_t> blocks_along_line(int32_t P, bool interleaved) {
  std::vector<int32_t> b(sz(P));
  for (int32_t i = 0; i < P; ++i) b[sz(i)] = !interleaved ? i : i % 2 == 0 ? i / 2 : P - 1 - (i - 1) / 2;
  return b;
}

// Sum of v[i]^2 cut into P blocks of `block` (block b holds elements order[b*block .. +block)),
// each block in index order, the blocks' sums combined by the allreduce tree over the line, where
// position i holds block at[i]. order[i] < 0: padding.
float sum_squares(const std::vector<float>& v, const std::vector<int64_t>& order, const std::vector<int32_t>& at,
                  int64_t block, const dist::AllreduceSpec& ar) {
  std::vector<std::vector<float>> parts(at.size(), std::vector<float>(1, 0.0f));
  for (size_t pos = 0; pos < at.size(); ++pos) {
    const int64_t b = at[pos];
    float acc = 0.0f;
    for (int64_t e = 0; e < block; ++e) {
      const int64_t i = order[sz(b * block + e)];
      const float x = i >= 0 ? v[sz(i)] : 0.0f;
      acc += x * x;
    }
    parts[pos][0] = acc;
  }
  return dist::allreduce_line_reference(ar, parts)[0];
}

// Causal softmax of the prefill's scores S (n, n): row t over columns u <= t, each score divided
// by sqrt(head_dim); the row max (exact), then the sum of exp(s - max) as partial sums over the P
// column blocks of ceil(n / P) (the GEMM's C tiles along X, each in index order) combined by the
// allreduce tree over the line (position i holds block at[i]); a = exp(s - max) / sum, 0 above
// the diagonal.
void causal_softmax(std::vector<float>& S, int64_t n, int64_t head_dim, const std::vector<int32_t>& at,
                    const dist::AllreduceSpec& ar) {
  const int64_t P = int64_t(at.size()), bw = (n + P - 1) / P;  // columns per block
  const float scale = std::sqrt(static_cast<float>(head_dim));
  for (int64_t t = 0; t < n; ++t) {
    float* row = S.data() + t * n;
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t u = 0; u <= t; ++u) {
      row[u] /= scale;
      mx = std::max(mx, row[u]);
    }
    std::vector<std::vector<float>> parts(at.size(), std::vector<float>(1, 0.0f));
    for (size_t pos = 0; pos < at.size(); ++pos) {
      const int64_t b = at[pos];
      float acc = 0.0f;
      for (int64_t u = b * bw; u < std::min(n, (b + 1) * bw) && u <= t; ++u) {
        row[u] = std::exp(row[u] - mx);
        acc += row[u];
      }
      parts[pos][0] = acc;
    }
    const float sum = dist::allreduce_line_reference(ar, parts)[0];
    for (int64_t u = 0; u < n; ++u) row[u] = u <= t ? row[u] / sum : 0.0f;
  }
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

// How the mesh stores a projection's weight matrix (the reference's own names for the same three).
enum class Stored {
  as_in_model,
  query_rows,     // W_q: rows in the query layout
  query_columns,  // W_o: columns in the query layout
};

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

const float* MeshOrderReference::forward(int token, int pos) { return run({token}, pos, false); }

const float* MeshOrderReference::prefill(const std::vector<int>& tokens) {
  if (!keys_[0].empty()) throw std::logic_error("prefill into non-empty caches");
  return run(tokens, 0, tokens.size() > 1);
}

const float* MeshOrderReference::run(const std::vector<int>& tokens, int pos0, bool as_gemm) {
  const int32_t P = spec_.P;
  const int64_t n = int64_t(tokens.size());
  const int64_t dim = cfg_.dim, hidden = cfg_.hidden_dim, kv_dim = cfg_.kv_dim(), head_dim = cfg_.head_dim();
  const int64_t heads = cfg_.heads, group = cfg_.heads / cfg_.kv_heads;  // group: query heads per key head
  // Blocks per PE: the residual stream, the hidden vector, a key, and a query tile (group key blocks).
  const int64_t dim_block = (dim + P - 1) / P, hidden_block = (hidden + P - 1) / P;
  const int64_t kv_block = (kv_dim + P - 1) / P, query_block = group * kv_block;
  const int64_t query_width = P * query_block;
  const float eps = static_cast<float>(cfg_.norm_eps), theta = static_cast<float>(cfg_.rope_theta);
  const bool relu2 = cfg_.ffn == "relu2";
  const dist::AllreduceSpec& ar = spec_.allreduce;
  if (pos0 != static_cast<int>(keys_[0].size() / sz(kv_dim))) throw std::logic_error("positions must come in order");
  // The query layout: slot i = c * query_block + j * kv_block + e holds query element
  // ((kd / head_dim) * group + j) * head_dim + kd % head_dim, kd = c * kv_block + e (-1: padding).
  std::vector<int64_t> query_order(sz(query_width), -1);
  for (int64_t i = 0; i < query_width; ++i) {
    const int64_t c = i / query_block, j = (i % query_block) / kv_block, e = i % kv_block, kd = c * kv_block + e;
    if (kd < kv_dim) query_order[sz(i)] = ((kd / head_dim) * group + j) * head_dim + kd % head_dim;
  }
  const std::vector<int64_t> dim_order = identity(dim, P * dim_block);
  const std::vector<int64_t> hidden_order = identity(hidden, P * hidden_block);
  // Norm sums: decode's blocks sit along the line in order, the prefill's as the MeshGEMM
  // places its tiles. The final norm (the last token, in the decode layout) is decode's.
  const std::vector<int32_t> decode_line = blocks_along_line(P, false), line = blocks_along_line(P, as_gemm);
  auto gemv_spec = [&](int64_t M, int64_t K, Axis a) {
    dist::GemvSpec s;
    s.P = P;
    s.M = M;
    s.K = K;
    s.reduce_axis = a;
    s.allreduce = ar;
    return s;
  };
  auto gemm_ref = [&](int64_t M, int64_t K, int64_t N, bool tb, const float* A, const float* B) {
    dist::GemmSpec s;
    s.algo = dist::GemmAlgo::meshgemm;
    s.P = P;
    s.M = M;
    s.K = K;
    s.N = N;
    s.transpose_b = tb;
    std::vector<float> C(sz(M * N));
    dist::gemm_f32_reference(s, A, B, C.data());
    return C;
  };
  // Y (n, rows) = rows of X (n, cols) times W^T for projection pi of layer l, in the layout the
  // mesh holds W (x and y in the model's order). Decode: MeshGEMV order per row; prefill: MeshGEMM
  // order. Ternary: BitLinear (exact).
  auto project = [&](int pi, int64_t l, const std::vector<float>& X, Stored stored) {
    const Tensor t = kProj[pi];
    const TensorShape s = tensor_shape(cfg_, t);
    std::vector<float> Y(sz(n * s.rows));
    if (cfg_.ternary) {
      for (int64_t r = 0; r < n; ++r)
        bitlinear_ref(tern_[sz(pi * cfg_.layers + l)], X.data() + r * s.cols, Y.data() + r * s.rows);
      return Y;
    }
    const float* W = w_.tensor(t).data() + l * s.size();
    const Axis a = (t == Tensor::wo || t == Tensor::w2) ? Axis::X : Axis::Y;
    // The weight as the mesh holds it (M x K) and the input in its slot order.
    int64_t M = s.rows, K = s.cols;
    std::vector<float> Wp(W, W + s.size()), Xp = X;
    if (stored == Stored::query_rows) {
      M = query_width;
      Wp.assign(sz(M * K), 0.0f);
      for (int64_t i = 0; i < query_width; ++i)
        if (query_order[sz(i)] >= 0)
          for (int64_t k = 0; k < K; ++k) Wp[sz(i * K + k)] = W[query_order[sz(i)] * s.cols + k];
    } else if (stored == Stored::query_columns) {
      K = query_width;
      Wp.assign(sz(M * K), 0.0f);
      Xp.assign(sz(n * K), 0.0f);
      for (int64_t i = 0; i < query_width; ++i)
        if (query_order[sz(i)] >= 0) {
          for (int64_t r = 0; r < M; ++r) Wp[sz(r * K + i)] = W[r * s.cols + query_order[sz(i)]];
          for (int64_t r = 0; r < n; ++r) Xp[sz(r * K + i)] = X[sz(r * s.cols + query_order[sz(i)])];
        }
    }
    std::vector<float> Yp(sz(n * M));
    if (as_gemm) {
      Yp = gemm_ref(n, K, M, true, Xp.data(), Wp.data());
    } else {
      for (int64_t r = 0; r < n; ++r) {
        const std::vector<float> y = dist::gemv_f32_reference(gemv_spec(M, K, a), Wp.data(), Xp.data() + r * K);
        std::copy(y.begin(), y.end(), Yp.begin() + r * M);
      }
    }
    if (stored != Stored::query_rows) return Yp;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < query_width; ++i)
        if (query_order[sz(i)] >= 0) Y[sz(r * s.rows + query_order[sz(i)])] = Yp[sz(r * M + i)];
    return Y;
  };
  auto norm_rows = [&](std::vector<float>& out, const std::vector<float>& in, int64_t cols, const float* w,
                       const std::vector<int64_t>& order, int64_t block) {
    for (int64_t r = 0; r < n; ++r) {
      std::vector<float> row(in.begin() + r * cols, in.begin() + (r + 1) * cols), o(sz(cols));
      scale_by_norm(o, row, w, sum_squares(row, order, line, block, ar), cols, eps);
      std::copy(o.begin(), o.end(), out.begin() + r * cols);
    }
  };

  std::vector<float> x(sz(n * dim));
  for (int64_t r = 0; r < n; ++r)
    std::copy(w_.token_embedding.begin() + int64_t{tokens[sz(r)]} * dim,
              w_.token_embedding.begin() + (int64_t{tokens[sz(r)]} + 1) * dim, x.begin() + r * dim);
  std::vector<float> xb(sz(n * dim)), h(sz(n * hidden));
  for (int64_t l = 0; l < cfg_.layers; ++l) {
    norm_rows(xb, x, dim, w_.rms_att.data() + l * dim, dim_order, dim_block);
    std::vector<float> q = project(0, l, xb, Stored::query_rows), k = project(1, l, xb, Stored::as_in_model),
                       v = project(2, l, xb, Stored::as_in_model);
    for (int64_t r = 0; r < n; ++r)
      rope_ref(q.data() + r * dim, k.data() + r * kv_dim, dim, kv_dim, head_dim, theta, pos0 + int(r));
    auto& K = keys_[sz(l)];
    auto& V = values_[sz(l)];
    auto& Q = queries_[sz(l)];
    K.insert(K.end(), k.begin(), k.end());
    V.insert(V.end(), v.begin(), v.end());
    Q.insert(Q.end(), q.begin(), q.end());
    std::vector<float> att(sz(n * dim));
    if (!as_gemm) {
      dist::KvSpec gs;
      gs.policy = spec_.kv_policy;
      gs.P = P;
      gs.heads = heads;
      gs.kv_heads = cfg_.kv_heads;
      gs.head_dim = head_dim;
      gs.allreduce = ar;
      att = dist::kv_attention_reference(gs, Q.data(), K.data(), V.data(), pos0 + 1);
    } else {  // per query head: S = Q_h K^T, causal softmax, O_h = A V (MeshGEMM order)
      std::vector<float> Qh(sz(n * head_dim)), Kh(Qh.size()), Vh(Qh.size());
      for (int64_t head = 0; head < heads; ++head) {
        const int64_t kvh = head / group;
        for (int64_t r = 0; r < n; ++r)
          for (int64_t dd = 0; dd < head_dim; ++dd) {
            Qh[sz(r * head_dim + dd)] = q[sz(r * dim + head * head_dim + dd)];
            Kh[sz(r * head_dim + dd)] = k[sz(r * kv_dim + kvh * head_dim + dd)];
            Vh[sz(r * head_dim + dd)] = v[sz(r * kv_dim + kvh * head_dim + dd)];
          }
        std::vector<float> S = gemm_ref(n, head_dim, n, true, Qh.data(), Kh.data());
        causal_softmax(S, n, head_dim, line, ar);
        const std::vector<float> Oh = gemm_ref(n, n, head_dim, false, S.data(), Vh.data());
        for (int64_t r = 0; r < n; ++r)
          for (int64_t dd = 0; dd < head_dim; ++dd) att[sz(r * dim + head * head_dim + dd)] = Oh[sz(r * head_dim + dd)];
      }
    }
    if (relu2) {
      for (int64_t r = 0; r < n; ++r) {
        std::vector<float> row(att.begin() + r * dim, att.begin() + (r + 1) * dim);
        const float ss = sum_squares(row, query_order, line, query_block, ar);
        scale_by_norm(row, row, w_.attn_sub_norm.data() + l * dim, ss, dim, eps);
        std::copy(row.begin(), row.end(), att.begin() + r * dim);
      }
    }
    const std::vector<float> o = project(3, l, att, Stored::query_columns);
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    norm_rows(xb, x, dim, w_.rms_ffn.data() + l * dim, dim_order, dim_block);
    std::vector<float> a = project(4, l, xb, Stored::as_in_model), b = project(6, l, xb, Stored::as_in_model);
    for (size_t i = 0; i < h.size(); ++i) {
      float val = a[i];
      if (relu2) val = val > 0.0f ? val * val : 0.0f;
      else val *= 1.0f / (1.0f + std::exp(-val));
      h[i] = val * b[i];
    }
    if (relu2) norm_rows(h, h, hidden, w_.ffn_sub_norm.data() + l * hidden, hidden_order, hidden_block);
    const std::vector<float> down = project(5, l, h, Stored::as_in_model);
    for (size_t i = 0; i < x.size(); ++i) x[i] += down[i];
  }
  const std::vector<float> last(x.end() - dim, x.end());
  std::vector<float> xl(sz(dim));
  scale_by_norm(xl, last, w_.rms_final.data(), sum_squares(last, dim_order, decode_line, dim_block, ar), dim, eps);
  int64_t row0 = 0;
  for (int64_t rows : pl_.classifier_rows) {
    const std::vector<float> y = dist::gemv_f32_reference(gemv_spec(rows, dim, Axis::Y),
                                                          w_.token_embedding.data() + row0 * dim, xl.data());
    std::copy(y.begin(), y.end(), logits_.begin() + row0);
    row0 += rows;
  }
  return logits_.data();
}

}  // namespace wm::model
