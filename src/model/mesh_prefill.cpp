// Prefill: all prompt tokens at once, on the mesh (see mesh_transformer.hpp, "Prefill").
//
// The prompt's activations live as tiles on the PEs of the region that computes them, in the
// prefill layout of prompt_tiles.hpp (tokens along Y, features along X); no rank holds more of
// them than its own PEs' tiles (and one embedding row at a time while they enter). Per layer:
//   x --rmsnorm--> W_q, W_k, W_v (MeshGEMMs, C = X W^T) --> RoPE --> keys and values into the
//     decode KV cache, token by token --> per query head: Q_h, K_h, V_h to the head layout,
//     S = Q_h K_h^T (MeshGEMM), causal softmax, O_h = S V_h (MeshGEMM), O_h back
//     [--sub-norm] --> W_o --> x +=
//   x --rmsnorm--> W_1, W_3 --> gate [--sub-norm] --> W_2 --> x +=
// Norm sums, absmax scales and the softmax's maxima and sums are allreduces along the rows of PEs
// (dist::LineAllreduce, one value per token of the row), summed in the order of the physical line
// (MeshOrderReference::prefill sums them so). The last token's vector then switches to the decode
// layout for the classifier, and the prompt moves between layer regions as tiles (PromptHandoff).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>

#include "mesh_transformer_impl.hpp"
#include "prompt_tiles.hpp"
#include "rope.hpp"
#include "wafermesh/dist/gemm.hpp"
#include "wafermesh/kernels/quantize.hpp"

namespace wm::model {

namespace {

using Stamp = PositionClock::Stamp;

// BitLinear's input for a prompt matrix (ternary models): int8 codes and each token's scale s
// (on every PE of the token's row).
struct PromptCodes {
  std::unique_ptr<TileBuf<int8_t>> codes;  // (row_block, width)
  std::unique_ptr<TileBuf<float>> scale;   // (row_block)
};

// The allreduces along the rows of a layer region, one value per token of the row.
struct RowAllreduces {
  dist::LineAllreduce<float> sum;
  dist::LineAllreduce<dist::MaxFloat> max;
  RowAllreduces(Fabric& f, const PromptLayout& lay, const dist::AllreduceSpec& ar)
      : sum(f, lay.R, Axis::X, size_t(lay.row_block), ar), max(f, lay.R, Axis::X, size_t(lay.row_block), ar) {}
};

class PromptPass {
 public:
  PromptPass(MeshTransformer::Impl& m, const std::vector<int>& tokens, TokenCycles& tc)
      : m_(m), f_(m.f), d_(m.d), tokens_(tokens), tc_(tc), n_(int64_t(tokens.size())) {}

  // Runs every layer (done(k) after the k-th); returns the last token's residual stream in the
  // decode layout (split along Y) on the last layer region.
  std::unique_ptr<TileBuf<float>> run(const std::function<void(int64_t layers_done)>& done);

 private:
  // The prefill layout on region R: the MeshGEMM's placement of its operands.
  PromptLayout layout_on(const Region& R) const { return {R, dist::gemm_line_perm(gemm_spec(R, 1, 1, 1, true)), n_}; }
  dist::GemmSpec gemm_spec(const Region& R, int64_t M, int64_t K, int64_t N, bool transpose_b) const;
  PromptTiles embed(const PromptLayout& lay);
  void layer(Layer& L, const PromptLayout& lay, PromptTiles& x, LayerCycles& lc);
  // A norm's weight vector v in the prefill layout: block c (`layout` of the decode path) on
  // logical column c.
  std::unique_ptr<TileBuf<float>> weight_tiles(const PromptLayout& lay, const std::vector<float>& v, int64_t block,
                                               VectorLayout layout, const std::string& name);
  PromptTiles rmsnorm(RowAllreduces& ar, const PromptLayout& lay, const PromptTiles& x, const TileBuf<float>& w,
                      int64_t count, const std::string& name);
  PromptCodes quantize(RowAllreduces& ar, const PromptLayout& lay, const PromptTiles& x);
  PromptTiles project(const PromptLayout& lay, const Layer& L, const Projection& p, const PromptTiles& x,
                      const PromptCodes& xq, LayerCycles& lc, Stamp& clk, const std::string& name);
  void rope(const PromptLayout& lay, PromptTiles& t, int64_t vectors);
  void enter_kv_cache(const PromptLayout& lay, Layer& L, const PromptTiles& k, const PromptTiles& v);
  PromptTiles attention(RowAllreduces& ar, const PromptLayout& lay, const PromptTiles& q, const PromptTiles& k,
                        const PromptTiles& v, LayerCycles& lc, Stamp& clk);
  void causal_softmax(RowAllreduces& ar, const PromptLayout& lay, TileBuf<float>& s);
  std::vector<ColumnPiece> head_pieces(const PromptLayout& lay, int64_t kv_head, int64_t offset, bool to_head) const;
  PromptTiles copy(const PromptLayout& lay, const PromptTiles& t, const std::string& name);
  void add_into(const PromptLayout& lay, PromptTiles& x, const PromptTiles& y);
  std::unique_ptr<TileBuf<float>> last_token_vector(const PromptLayout& lay, const PromptTiles& x);

  MeshTransformer::Impl& m_;
  Fabric& f_;
  const MeshDims& d_;
  const std::vector<int>& tokens_;
  TokenCycles& tc_;
  int64_t n_;
};

dist::GemmSpec PromptPass::gemm_spec(const Region& R, int64_t M, int64_t K, int64_t N, bool transpose_b) const {
  dist::GemmSpec gs;
  gs.algo = dist::GemmAlgo::meshgemm;
  gs.P = R.w;
  gs.origin = {R.x0, R.y0};
  gs.M = M;
  gs.K = K;
  gs.N = N;
  gs.transpose_b = transpose_b;
  gs.compute = !m_.timing_only;  // timing only: every GEMM (projections and attention) charged, not computed
  return gs;
}

PromptTiles PromptPass::embed(const PromptLayout& lay) {
  PromptTiles x(f_, lay, d_.dim_block, "residual stream (prompt)");
  const Region& l = x.tiles->local();
  std::vector<float> row(size_t(d_.dim));  // one token's embedding at a time
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y)
    for (int64_t i = 0; i < lay.row_block; ++i) {
      const int64_t t = lay.token(y, i);
      if (t >= n_) continue;
      m_.embedding_row(tokens_[size_t(t)], row.data());
      for (int32_t px = l.x0; px < l.x0 + l.w; ++px) {
        float* o = x.tile(px, y) + i * x.width;
        for (int64_t e = 0; e < x.width; ++e) {
          const int64_t k = lay.col_of(px) * x.width + e;
          o[e] = k < d_.dim ? row[size_t(k)] : 0.0f;
        }
      }
    }
  return x;
}

std::unique_ptr<TileBuf<float>> PromptPass::weight_tiles(const PromptLayout& lay, const std::vector<float>& v,
                                                         int64_t block, VectorLayout layout, const std::string& name) {
  auto t = std::make_unique<TileBuf<float>>(f_, lay.R, size_t(block), name);
  t->for_each_local([&](int32_t x, int32_t, float* o) {
    for (int64_t e = 0; e < block; ++e) {
      const int64_t i = vector_index(d_, layout, lay.col_of(x), block, e, int64_t(v.size()));
      o[e] = i >= 0 ? v[size_t(i)] : 0.0f;
    }
  });
  return t;
}

PromptTiles PromptPass::rmsnorm(RowAllreduces& ar, const PromptLayout& lay, const PromptTiles& x,
                                const TileBuf<float>& w, int64_t count, const std::string& name) {
  const int64_t rb = lay.row_block, W = x.width;
  TileBuf<float> ss(f_, lay.R, size_t(rb), "rmsnorm sums");
  ss.for_each_local([&](int32_t px, int32_t py, float* s) {
    const float* a = x.tile(px, py);
    for (int64_t i = 0; i < rb; ++i) {
      float acc = 0.0f;
      for (int64_t j = 0; j < W; ++j) acc += a[i * W + j] * a[i * W + j];
      s[i] = acc;
    }
  });
  f_.charge_compute(lay.R, uint64_t(rb * W), Work::elem);
  ar.sum.run(ss);
  PromptTiles out(f_, lay, W, name);
  const float eps = static_cast<float>(m_.cfg.norm_eps);
  out.tiles->for_each_local([&](int32_t px, int32_t py, float* o) {
    const float* a = x.tile(px, py);
    const float* g = w.tile(px, py);
    for (int64_t i = 0; i < rb; ++i) {
      float s = ss.tile(px, py)[i];
      s /= static_cast<float>(count);
      s += eps;
      s = 1.0f / std::sqrt(s);
      for (int64_t j = 0; j < W; ++j) o[i * W + j] = g[j] * (s * a[i * W + j]);
    }
  });
  f_.charge_compute(lay.R, uint64_t(rb * W), Work::elem);
  return out;
}

PromptCodes PromptPass::quantize(RowAllreduces& ar, const PromptLayout& lay, const PromptTiles& x) {
  PromptCodes r;
  if (!m_.cfg.ternary) return r;
  const int64_t rb = lay.row_block, W = x.width;
  TileBuf<dist::MaxFloat> mx(f_, lay.R, size_t(rb), "absmax");
  mx.for_each_local([&](int32_t px, int32_t py, dist::MaxFloat* o) {
    const float* a = x.tile(px, py);
    for (int64_t i = 0; i < rb; ++i) {
      float v = 0.0f;
      for (int64_t j = 0; j < W; ++j) v = std::max(v, std::fabs(a[i * W + j]));
      o[i] = {v};
    }
  });
  ar.max.run(mx);
  r.codes = std::make_unique<TileBuf<int8_t>>(f_, lay.R, size_t(rb * W), "int8 activations", TileBuf<int8_t>::NoInit{});
  r.scale = std::make_unique<TileBuf<float>>(f_, lay.R, size_t(rb), "activation scales");
  r.codes->for_each_local([&](int32_t px, int32_t py, int8_t* c) {
    float* s = r.scale->tile(px, py);
    for (int64_t i = 0; i < rb; ++i) {
      s[i] = kernels::absmax_scale(mx.tile(px, py)[i].v);
      kernels::quantize_activations_scaled(x.tile(px, py) + i * W, W, s[i], c + i * W);
    }
  });
  return r;
}

PromptTiles PromptPass::project(const PromptLayout& lay, const Layer& L, const Projection& p, const PromptTiles& x,
                                const PromptCodes& xq, LayerCycles& lc, Stamp& clk, const std::string& name) {
  const WeightReader::Matrix w = m_.weights.read(p.tensor, L.index, p.layout, p.spec.M, p.spec.K);
  const dist::GemmSpec gs = gemm_spec(lay.R, n_, p.spec.K, p.spec.M, true);  // C = X W^T
  dist::GemmReport rep;
  const int64_t W = ceil_div(p.spec.M, lay.side());
  PromptTiles y;
  if (m_.cfg.ternary) {
    const TileBuf<int32_t> acc = dist::gemm_ternary_tiles(f_, gs, *xq.codes, w.codes, &rep);
    y = PromptTiles(f_, lay, W, name);
    const int64_t rb = lay.row_block;
    y.tiles->for_each_local([&](int32_t px, int32_t py, float* o) {
      const int32_t* a = acc.tile(px, py);
      const float* s = xq.scale->tile(px, py);
      for (int64_t i = 0; i < rb; ++i)
        for (int64_t j = 0; j < W; ++j) o[i * W + j] = static_cast<float>(a[i * W + j]) / s[i] * w.gamma;
    });
  } else {
    y.tiles = std::make_unique<TileBuf<float>>(dist::gemm_f32_tiles(f_, gs, *x.tiles, w.floats, &rep));
    y.width = W;
  }
  m_.clock.lap_gemv(lc, clk, m_.clock.stamp(lay.R), rep.compute_cycles, projection_span_name(p.tensor, true));
  return y;
}

void PromptPass::rope(const PromptLayout& lay, PromptTiles& t, int64_t vectors) {
  const RopeShape rs{d_.kv_dim, d_.head_dim, static_cast<float>(m_.cfg.rope_theta)};
  if (d_.kv_block % 2 == 0) {
    t.tiles->for_each_local([&](int32_t px, int32_t py, float* tile) {
      const int64_t first = lay.col_of(px) * d_.kv_block;
      for (int64_t i = 0; i < lay.row_block; ++i) {
        const int64_t tok = lay.token(py, i);
        if (tok < n_) rope_rotate(tile + i * t.width, vectors, d_.kv_block, first, d_.kv_block, rs, tok);
      }
    });
    return;
  }
  // Odd kv_block: the pairs at the blocks' edges meet over the NoC, between logical neighbours of
  // the MeshGEMM's placement (vector j = token j / vectors, head part j % vectors).
  const int64_t w = t.width, kb = d_.kv_block;
  rope_on_tiles(
      f_, *t.tiles, lay.row_block * vectors, kb, lay.perm, rs,
      [&](int32_t px) { return int64_t(lay.col_of(px)); },
      [&](float* tile, int64_t j) { return tile + (j / vectors) * w + (j % vectors) * kb; },
      [&](int32_t py, int64_t j) {
        const int64_t tok = lay.token(py, j / vectors);
        return tok < n_ ? tok : int64_t(-1);
      });
}

void PromptPass::enter_kv_cache(const PromptLayout& lay, Layer& L, const PromptTiles& k, const PromptTiles& v) {
  const Region& R = lay.R;
  const int64_t kb = d_.kv_block;
  std::vector<PeCoord> dests(size_t(lay.side()));
  // A token's blocks wait on the cache's entry row in kt and vt while the cache takes them in (the
  // other rows of kt and vt are not read).
  TileBuf<float> kt(f_, R, size_t(kb), "prefill k"), vt(f_, R, size_t(kb), "prefill v");
  TokenRowPlans plans;  // of the last token, by (tile row, entry row)
  for (int64_t t = 0; t < n_; ++t) {
    // Token t's key and value blocks to the row of the decode cache that takes it (block c to
    // column c), then appended there.
    const int32_t entry = L.kv->entry_row(), ye = R.y0 + entry;
    for (int32_t c = 0; c < lay.side(); ++c) dests[size_t(c)] = {R.x0 + c, ye};
    TileBuf<float> kv(f_, Region{R.x0, ye, R.w, 1}, size_t(2 * kb), "prefill: a token's key and value",
                      TileBuf<float>::Uncharged{});
    send_token_row(f_, lay, {&k, &v}, int32_t(t / lay.row_block), t % lay.row_block, dests, kv,
                   "prefill: a token's key and value to the KV cache", &plans, entry);
    for (int32_t x = kv.local().x0; x < kv.local().x0 + kv.local().w; ++x) {
      std::copy(kv.tile(x, ye), kv.tile(x, ye) + kb, kt.tile(x, ye));
      std::copy(kv.tile(x, ye) + kb, kv.tile(x, ye) + 2 * kb, vt.tile(x, ye));
    }
    L.kv->append(kt, vt);
  }
}

std::vector<ColumnPiece> PromptPass::head_pieces(const PromptLayout& lay, int64_t kv_head, int64_t offset,
                                                 bool to_head) const {
  // Head element e (0 .. head_dim) is kv element kd = kv_head * head_dim + e: in the projections'
  // layout at column kd / kv_block, place offset + kd % kv_block of a tile row; in the head
  // layout (a GEMM operand of head_dim columns) at column e / hb, place e % hb.
  const int64_t hd = d_.head_dim, kb = d_.kv_block, hb = ceil_div(hd, lay.side());
  std::vector<ColumnPiece> out;
  for (int64_t e = 0; e < hd;) {
    const int64_t kd = kv_head * hd + e, kc = kd / kb, ko = kd % kb, hc = e / hb, ho = e % hb;
    const int64_t len = std::min({kb - ko, hb - ho, hd - e});
    if (to_head) out.push_back({int32_t(kc), int32_t(hc), offset + ko, ho, len});
    else out.push_back({int32_t(hc), int32_t(kc), ho, offset + ko, len});
    e += len;
  }
  return out;
}

PromptTiles PromptPass::copy(const PromptLayout& lay, const PromptTiles& t, const std::string& name) {
  PromptTiles c(f_, lay, t.width, name);
  c.tiles->for_each_local([&](int32_t x, int32_t y, float* o) {
    std::copy(t.tile(x, y), t.tile(x, y) + t.tiles->elems(), o);
  });
  return c;
}

void PromptPass::causal_softmax(RowAllreduces& ar, const PromptLayout& lay, TileBuf<float>& s) {
  // S (n x n) in tiles of row_block x row_block: row t, column u of the scores; a token attends
  // to u <= t. Each PE scales and takes the max of its part of a row, the rows' maxima are
  // allreduced, each PE sums exp(s - max) over its part (in index order), the sums are allreduced.
  const int64_t rb = lay.row_block;
  const float scale = std::sqrt(static_cast<float>(d_.head_dim));
  auto live = [&](int32_t px, int32_t py, int64_t i, int64_t k) {
    const int64_t t = lay.token(py, i), u = int64_t(lay.col_of(px)) * rb + k;
    return t < n_ && u <= t;
  };
  // Timing only: the host does not compute (the tiles still travel the allreduces).
  const bool host = !m_.timing_only;
  TileBuf<dist::MaxFloat> mx(f_, lay.R, size_t(rb), "softmax max");
  if (host) mx.for_each_local([&](int32_t px, int32_t py, dist::MaxFloat* o) {
    float* row = s.tile(px, py);
    for (int64_t i = 0; i < rb; ++i) {
      float v = -std::numeric_limits<float>::infinity();
      for (int64_t k = 0; k < rb; ++k)
        if (live(px, py, i, k)) {
          row[i * rb + k] /= scale;
          v = std::max(v, row[i * rb + k]);
        }
      o[i] = {v};
    }
  });
  f_.charge_compute(lay.R, uint64_t(3 * rb * rb), Work::elem);  // scale and max, exp and sum, divide
  ar.max.run(mx);
  TileBuf<float> sum(f_, lay.R, size_t(rb), "softmax sum");
  if (host) sum.for_each_local([&](int32_t px, int32_t py, float* o) {
    float* row = s.tile(px, py);
    for (int64_t i = 0; i < rb; ++i) {
      float acc = 0.0f;
      for (int64_t k = 0; k < rb; ++k) {
        float& v = row[i * rb + k];
        if (live(px, py, i, k)) {
          v = std::exp(v - mx.tile(px, py)[i].v);
          acc += v;
        } else {
          v = 0.0f;
        }
      }
      o[i] = acc;
    }
  });
  ar.sum.run(sum);
  if (host) s.for_each_local([&](int32_t px, int32_t py, float* row) {
    for (int64_t i = 0; i < rb; ++i)
      for (int64_t k = 0; k < rb; ++k)
        if (live(px, py, i, k)) row[i * rb + k] /= sum.tile(px, py)[i];
  });
}

PromptTiles PromptPass::attention(RowAllreduces& ar, const PromptLayout& lay, const PromptTiles& q,
                                  const PromptTiles& k, const PromptTiles& v, LayerCycles& lc, Stamp& clk) {
  const Region& R = lay.R;
  auto lap = [&](const char* name) { m_.clock.lap(lc.kv, clk, m_.clock.stamp(R), name, PhaseSpan::Kind::kv); };
  const int64_t hd = d_.head_dim, hb = ceil_div(hd, lay.side());
  PromptTiles out(f_, lay, d_.query_block, "attention output (prompt)");
  for (int64_t kvh = 0; kvh < m_.cfg.kv_heads; ++kvh) {
    const std::vector<ColumnPiece> kv_to_head = head_pieces(lay, kvh, 0, true);
    PromptTiles kh(f_, lay, hb, "K_h"), vh(f_, lay, hb, "V_h");
    move_columns(f_, lay, k, kh, kv_to_head, "prefill: keys to the head layout");
    move_columns(f_, lay, v, vh, kv_to_head, "prefill: values to the head layout");
    lap("keys, values to the head layout");
    for (int64_t j = 0; j < d_.group; ++j) {
      TileBuf<float> s = [&] {
        PromptTiles qh(f_, lay, hb, "Q_h");
        move_columns(f_, lay, q, qh, head_pieces(lay, kvh, j * d_.kv_block, true),
                     "prefill: queries to the head layout");
        PromptTiles kc = copy(lay, kh, "K_h (GEMM operand)");
        return dist::gemm_f32_tiles(f_, gemm_spec(R, n_, hd, n_, true), *qh.tiles, *kc.tiles);  // S = Q_h K_h^T
      }();
      lap("Q K^T (MeshGEMM)");
      causal_softmax(ar, lay, s);
      lap("causal softmax");
      PromptTiles vc = copy(lay, vh, "V_h (GEMM operand)");
      PromptTiles oh;
      oh.width = hb;
      oh.tiles = std::make_unique<TileBuf<float>>(dist::gemm_f32_tiles(f_, gemm_spec(R, n_, n_, hd, false), s,
                                                                       *vc.tiles));  // O_h = S V_h
      move_columns(f_, lay, oh, out, head_pieces(lay, kvh, j * d_.kv_block, false),
                   "prefill: attention output to the query layout");
      lap("S V (MeshGEMM)");
    }
  }
  return out;
}

void PromptPass::add_into(const PromptLayout& lay, PromptTiles& x, const PromptTiles& y) {
  const size_t E = x.tiles->elems();
  x.tiles->for_each_local([&](int32_t px, int32_t py, float* a) {
    const float* b = y.tile(px, py);
    for (size_t j = 0; j < E; ++j) a[j] += b[j];
  });
  f_.charge_compute(lay.R, E, Work::elem);
}

void PromptPass::layer(Layer& L, const PromptLayout& lay, PromptTiles& x, LayerCycles& lc) {
  const Region& R = lay.R;
  const bool relu2 = m_.relu2;
  RowAllreduces ar(f_, lay, m_.spec.allreduce);
  Stamp clk = m_.clock.stamp(R);
  using K = PhaseSpan::Kind;
  auto lap = [&](uint64_t& bucket, const char* name, K kind) {
    m_.clock.lap(bucket, clk, m_.clock.stamp(R), name, kind);
  };
  auto weights = [&](Tensor t, int64_t block, VectorLayout layout, const char* name) {
    return weight_tiles(lay, m_.vector_weights(t, L.index), block, layout, name);
  };
  // ---- attention
  PromptTiles o;
  {
    PromptTiles xb = rmsnorm(ar, lay, x, *weights(Tensor::rms_att, d_.dim_block, VectorLayout::split_x, "rms_att"),
                             d_.dim, "normed x (prompt)");
    PromptCodes xq = quantize(ar, lay, xb);
    lap(lc.allreduce, m_.cfg.ternary ? "rmsnorm, absmax + quantize" : "rmsnorm", K::allreduce);
    PromptTiles q = project(lay, L, L.wq, xb, xq, lc, clk, "queries (prompt)");
    PromptTiles k = project(lay, L, L.wk, xb, xq, lc, clk, "keys (prompt)");
    PromptTiles v = project(lay, L, L.wv, xb, xq, lc, clk, "values (prompt)");
    xq = {};
    xb = {};
    rope(lay, q, d_.group);
    rope(lay, k, 1);
    f_.charge_compute(R, uint64_t(4 * (d_.group + 1) * d_.kv_block * lay.row_block), Work::elem);
    lap(lc.compute, "RoPE", K::compute);
    enter_kv_cache(lay, L, k, v);  // the layout switch to decode
    lap(lc.kv, "keys, values into the KV cache", K::kv);
    o = attention(ar, lay, q, k, v, lc, clk);
  }
  if (relu2)
    o = rmsnorm(ar, lay, o, *weights(Tensor::attn_sub_norm, d_.query_block, VectorLayout::query, "attn_sub_norm"),
                d_.dim, "attention output, normed");
  {
    PromptCodes oq = quantize(ar, lay, o);
    if (relu2 || m_.cfg.ternary) lap(lc.allreduce, relu2 ? "attention sub-norm" : "absmax + quantize", K::allreduce);
    const PromptTiles y = project(lay, L, L.wo, o, oq, lc, clk, "attention projection (prompt)");
    add_into(lay, x, y);
    lap(lc.compute, "residual add", K::compute);
  }
  o = {};
  // ---- feed-forward
  PromptTiles h;
  {
    PromptTiles xb = rmsnorm(ar, lay, x, *weights(Tensor::rms_ffn, d_.dim_block, VectorLayout::split_x, "rms_ffn"),
                             d_.dim, "normed x (prompt)");
    PromptCodes xq = quantize(ar, lay, xb);
    lap(lc.allreduce, m_.cfg.ternary ? "rmsnorm, absmax + quantize" : "rmsnorm", K::allreduce);
    h = project(lay, L, L.w1, xb, xq, lc, clk, "FFN gate (prompt)");
    const PromptTiles h3 = project(lay, L, L.w3, xb, xq, lc, clk, "FFN up (prompt)");
    const size_t E = h.tiles->elems();
    h.tiles->for_each_local([&](int32_t px, int32_t py, float* a) {
      const float* b = h3.tile(px, py);
      for (size_t j = 0; j < E; ++j) a[j] = gated(a[j], b[j], relu2);
    });
    f_.charge_compute(R, 3 * E, Work::elem);
    lap(lc.compute, "gate", K::compute);
  }
  if (relu2)
    h = rmsnorm(ar, lay, h, *weights(Tensor::ffn_sub_norm, d_.hidden_block, VectorLayout::split_x, "ffn_sub_norm"),
                d_.hidden, "FFN hidden, normed");
  PromptCodes hq = quantize(ar, lay, h);
  if (relu2 || m_.cfg.ternary) lap(lc.allreduce, relu2 ? "FFN sub-norm" : "absmax + quantize", K::allreduce);
  const PromptTiles y = project(lay, L, L.w2, h, hq, lc, clk, "FFN down (prompt)");
  add_into(lay, x, y);
  lap(lc.compute, "residual add", K::compute);
}

std::unique_ptr<TileBuf<float>> PromptPass::last_token_vector(const PromptLayout& lay, const PromptTiles& x) {
  // The last token's block c (logical column c) down or up its column to row c, then along the
  // row: the residual stream split along Y, as decode holds it.
  const Region& R = lay.R;
  const int32_t P = lay.side();
  auto v = std::make_unique<TileBuf<float>>(f_, R, size_t(d_.dim_block), "residual stream");
  std::vector<PeCoord> dests;
  for (int32_t c = 0; c < P; ++c) dests.push_back({lay.x_of(c), R.y0 + c});
  const int64_t t = n_ - 1;
  send_token_row(f_, lay, {&x}, int32_t(t / lay.row_block), t % lay.row_block, dests, *v,
                 "prefill: the last token to the decode layout");
  if (P > 1) {
    LinePattern lp{R, Axis::X, {}, {}};
    for (int32_t c = 0; c < P; ++c) {
      std::vector<LineTransfer> bc;
      for (int32_t p = 0; p < P; ++p)
        if (p != lay.perm.phys(c)) bc.push_back({lay.perm.phys(c), p, 0, 0});
      lp.templates.push_back(std::move(bc));
      lp.template_of_line.push_back(c);
    }
    TransferPlan plan = f_.plan(std::move(lp), v->bytes_per_pe(), "prefill: the last token along the rows");
    f_.execute(plan, v->view(), v->view());
  }
  return v;
}

std::unique_ptr<TileBuf<float>> PromptPass::run(const std::function<void(int64_t layers_done)>& done) {
  const std::vector<Region>& regions = m_.pl.layer_regions;
  int32_t cur = 0;
  PromptLayout lay = layout_on(regions.front());
  PromptTiles x = embed(lay);
  for (Layer& L : m_.layers) {
    if (L.region != cur) {  // the prompt's tiles move to the next region
      const PromptLayout next = layout_on(regions[size_t(L.region)]);
      m_.clock.scope(-1, L.region);
      Stamp t0 = m_.clock.stamp(lay.R);
      PromptTiles nx(f_, next, x.width, "residual stream (prompt)");
      PromptHandoff(f_, lay.R, next.R, x.tiles->bytes_per_pe(),
                    "prefill: hand-off to layer region " + std::to_string(L.region))
          .run(*x.tiles, *nx.tiles);
      x = std::move(nx);
      lay = next;
      m_.clock.lap(tc_.handoff, t0, m_.clock.stamp(lay.R), "hand-off (prompt tiles)", PhaseSpan::Kind::handoff,
                   PositionClock::LapKind::add_positive);
      cur = L.region;
    }
    m_.clock.scope(int32_t(L.index), L.region);
    layer(L, lay, x, tc_.layers[size_t(L.index)]);
    done(L.index + 1);
  }
  m_.clock.scope(-1, cur);
  Stamp t0 = m_.clock.stamp(lay.R);
  auto v = last_token_vector(lay, x);
  m_.clock.lap(tc_.handoff, t0, m_.clock.stamp(lay.R), "last token to the decode layout", PhaseSpan::Kind::handoff);
  return v;
}

}  // namespace

const float* MeshTransformer::prefill(const std::vector<int>& tokens, const ProgressFn& progress) {
  Impl& m = *impl_;
  const int64_t n = int64_t(tokens.size());
  if (n == 0) throw std::logic_error("MeshTransformer::prefill: no tokens");
  if (m.layers.front().kv->tokens() != 0)
    throw std::logic_error("MeshTransformer::prefill: the KV caches are not empty");
  if (n == 1) return forward(tokens[0], 0);
  for (int tok : tokens) m.check_token(tok);
  const uint64_t start = m.begin_token();
  const auto w0 = std::chrono::steady_clock::now();
  TokenCycles tc;
  tc.layers.resize(size_t(m.cfg.layers));
  auto x = PromptPass(m, tokens, tc).run([&](int64_t done) {
    if (!progress) return;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
    progress("prefill of " + std::to_string(n) + " tokens: layer " + std::to_string(done) + "/" +
             std::to_string(m.cfg.layers) + " done, " + std::to_string(int64_t(s)) + " s");
  });
  return m.end_token(x, tc, start, w0);
}

}  // namespace wm::model
