// Decode: one token at a time through the layers and the classifier (see mesh_transformer.hpp,
// "Decode layout"). Every projection is a MeshGEMV whose reduction axis alternates, so the vectors
// never change layout; norm sums and absmax scales are one-element allreduces.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

#include "mesh_transformer_impl.hpp"
#include "rope.hpp"
#include "wafermesh/dist/host_io.hpp"
#include "wafermesh/kernels/quantize.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::model {

void MeshTransformer::Impl::rmsnorm(TileBuf<float>& out, const TileBuf<float>& v, const TileBuf<float>& w, int64_t n,
                                    Axis split, ScalarAllreduces& ops) {
  TileBuf<float> ss(f, v.region(), 1, "rmsnorm sum", TileBuf<float>::NoInit{});  // every head written below
  const size_t E = v.elems();
  const Axis rep = other_axis(split);
  per_replica(ss, rep, [&](int32_t x, int32_t y, float* s) {
    const float* a = v.tile(x, y);
    float acc = 0.0f;
    for (size_t j = 0; j < E; ++j) acc += a[j] * a[j];
    s[0] = acc;
  });
  f.charge_compute(v.region(), E, Work::elem);
  ops.sum(split).run(ss);
  const float eps = static_cast<float>(cfg.norm_eps);
  per_replica(out, rep, [&](int32_t x, int32_t y, float* r) {
    float s = ss.tile(x, y)[0];
    s /= static_cast<float>(n);
    s += eps;
    s = 1.0f / std::sqrt(s);
    const float* a = v.tile(x, y);
    const float* g = w.tile(x, y);
    for (size_t j = 0; j < E; ++j) r[j] = g[j] * (s * a[j]);
  });
  f.charge_compute(v.region(), E, Work::elem);
}

ActivationCodes MeshTransformer::Impl::quantize(const TileBuf<float>& x, Axis split, ScalarAllreduces& ops,
                                                LayerCycles& lc, PositionClock::Stamp& t) {
  ActivationCodes r;
  if (!cfg.ternary) return r;
  const Region& R = x.region();
  const size_t E = x.elems();
  const Axis rep = other_axis(split);  // x is replicated across the axis it is split along
  r.absmax = std::make_unique<TileBuf<dist::MaxFloat>>(f, R, 1, "absmax", TileBuf<dist::MaxFloat>::NoInit{});
  per_replica(*r.absmax, rep, [&](int32_t px, int32_t py, dist::MaxFloat* m) {
    const float* a = x.tile(px, py);
    float v = 0.0f;
    for (size_t j = 0; j < E; ++j) v = std::max(v, std::fabs(a[j]));
    m[0] = {v};
  });
  f.charge_compute(R, E, Work::elem);
  ops.max(split).run(*r.absmax);
  r.codes = std::make_unique<TileBuf<int8_t>>(f, R, E, "int8 activations", TileBuf<int8_t>::NoInit{});
  per_replica(*r.codes, rep, [&](int32_t px, int32_t py, int8_t* c) {
    kernels::quantize_activations_scaled(x.tile(px, py), int64_t(E), kernels::absmax_scale(r.absmax->tile(px, py)[0].v),
                                         c);
  });
  f.charge_compute(R, E, Work::elem);
  clock.lap(lc.allreduce, t, clock.stamp(R), "absmax + quantize", PhaseSpan::Kind::allreduce);
  return r;
}

TileBuf<float> MeshTransformer::Impl::project(Projection& p, const TileBuf<float>& x, const ActivationCodes& xq,
                                              LayerCycles& lc, PositionClock::Stamp& t) {
  const Region& R = x.region();
  const uint64_t block_cycles = f.cost().compute_cycles(uint64_t(ceil_div(p.spec.M, p.spec.P) * ceil_div(p.spec.K, p.spec.P)),
                                                        cfg.ternary ? Work::ternary : Work::fp);
  if (!cfg.ternary) {
    TileBuf<float> y = p.fp32->run_tiles(x, nullptr);
    clock.lap_gemv(lc, t, clock.stamp(R), block_cycles, gemv_name(p.tensor));
    return y;
  }
  // y = the int32 sums / the activations' scale * gamma, replicated along the reduce axis like the
  // sums; from each line's sums directly when the GEMV keeps them per line.
  const size_t M = size_t(ceil_div(p.spec.M, p.spec.P));
  auto scaled = [&](int32_t px, int32_t py, const int32_t* a, float* r) {
    const float s = kernels::absmax_scale(xq.absmax->tile(px, py)[0].v);
    for (size_t j = 0; j < M; ++j) r[j] = static_cast<float>(a[j]) / s * p.gamma;
  };
  if (p.ternary->has_line_sums()) {
    const dist::MeshGemvTernary::LineSums yl = p.ternary->run_line_sums(*xq.codes);
    clock.lap_gemv(lc, t, clock.stamp(R), block_cycles, gemv_name(p.tensor));
    TileBuf<float> y(f, R, M, "projection output", TileBuf<float>::NoInit{});
    per_replica(y, p.spec.reduce_axis, [&](int32_t px, int32_t py, float* r) {
      scaled(px, py, yl.sums + p.ternary->line_of(px, py) * int64_t(M), r);
    });
    f.charge_compute(R, M, Work::elem);
    return y;
  }
  TileBuf<int32_t> yi = p.ternary->run_tiles(*xq.codes, nullptr);
  clock.lap_gemv(lc, t, clock.stamp(R), block_cycles, gemv_name(p.tensor));
  TileBuf<float> y(f, R, M, "projection output", TileBuf<float>::NoInit{});
  per_replica(y, p.spec.reduce_axis, [&](int32_t px, int32_t py, float* r) { scaled(px, py, yi.tile(px, py), r); });
  f.charge_compute(R, M, Work::elem);
  return y;
}

void MeshTransformer::Impl::add_into(TileBuf<float>& x, const TileBuf<float>& y) {
  const size_t E = x.elems();
  per_replica(x, Axis::X, [&](int32_t px, int32_t py, float* a) {  // x is split along Y
    const float* b = y.tile(px, py);
    for (size_t j = 0; j < E; ++j) a[j] += b[j];
  });
  f.charge_compute(x.region(), E, Work::elem);
}

void MeshTransformer::Impl::layer_forward(Layer& L, TileBuf<float>& x, int pos, LayerCycles& lc) {
  ScalarAllreduces& ops = scalar_ops[size_t(L.region)];
  const Region& R = ops.R;
  PositionClock::Stamp t = clock.stamp(R);
  using K = PhaseSpan::Kind;
  auto lap = [&](uint64_t& bucket, const char* name, K kind) { clock.lap(bucket, t, clock.stamp(R), name, kind); };
  // ---- attention
  TileBuf<float> xb(f, R, size_t(d.dim_block), "normed x", TileBuf<float>::NoInit{});  // rmsnorm writes it
  rmsnorm(xb, x, *L.rms_att, d.dim, Axis::Y, ops);
  lap(lc.allreduce, "rmsnorm", K::allreduce);
  auto xq = std::make_unique<ActivationCodes>(quantize(xb, Axis::Y, ops, lc, t));
  TileBuf<float> q = project(L.wq, xb, *xq, lc, t);
  TileBuf<float> k = project(L.wk, xb, *xq, lc, t);
  TileBuf<float> v = project(L.wv, xb, *xq, lc, t);
  xq.reset();
  // RoPE on the query tiles (group blocks of kv_block) and the key tiles of column c: kv elements
  // c * kv_block ...
  // (odd kv_block: the pairs at the blocks' edges meet over the NoC, rope_on_tiles).
  const RopeShape rs{d.kv_dim, d.head_dim, static_cast<float>(cfg.rope_theta)};
  if (d.kv_block % 2 == 0) {
    per_replica(q, Axis::Y, [&](int32_t px, int32_t, float* tile) {
      rope_rotate(tile, d.group, d.kv_block, (px - R.x0) * d.kv_block, d.kv_block, rs, pos);
    });
    per_replica(k, Axis::Y, [&](int32_t px, int32_t, float* tile) {
      rope_rotate(tile, 1, d.kv_block, (px - R.x0) * d.kv_block, d.kv_block, rs, pos);
    });
  } else {
    const LinePerm natural = LinePerm::natural(R.w);
    auto col = [&](int32_t px) { return int64_t(px - R.x0); };
    auto vec = [&](float* tile, int64_t j) { return tile + j * d.kv_block; };
    auto at = [&](int32_t, int64_t) { return int64_t(pos); };
    rope_on_tiles(f, q, d.group, d.kv_block, natural, rs, col, vec, at);
    rope_on_tiles(f, k, 1, d.kv_block, natural, rs, col, vec, at);
  }
  f.charge_compute(R, uint64_t(4 * (d.group + 1) * d.kv_block), Work::elem);
  lap(lc.compute, "RoPE", K::compute);
  L.kv->append(k, v);
  lap(lc.kv, "KV append", K::kv);
  TileBuf<float> att = L.kv->attention(q);
  lap(lc.kv, "attention (scores, softmax, values)", K::kv);
  if (relu2) {
    rmsnorm(att, att, *L.attn_sub, d.dim, Axis::X, ops);
    lap(lc.allreduce, "attention sub-norm", K::allreduce);
  }
  {
    TileBuf<float> y = project(L.wo, att, quantize(att, Axis::X, ops, lc, t), lc, t);
    add_into(x, y);
    lap(lc.compute, "residual add", K::compute);
  }
  // ---- feed-forward
  rmsnorm(xb, x, *L.rms_ffn, d.dim, Axis::Y, ops);
  lap(lc.allreduce, "rmsnorm", K::allreduce);
  xq = std::make_unique<ActivationCodes>(quantize(xb, Axis::Y, ops, lc, t));
  TileBuf<float> h = project(L.w1, xb, *xq, lc, t);
  {
    TileBuf<float> h3 = project(L.w3, xb, *xq, lc, t);
    xq.reset();
    const size_t E = h.elems();
    per_replica(h, Axis::Y, [&](int32_t px, int32_t py, float* a) {
      const float* b = std::as_const(h3).tile(px, py);  // const: reads the line head
      for (size_t j = 0; j < E; ++j) a[j] = gated(a[j], b[j], relu2);
    });
    f.charge_compute(R, 3 * E, Work::elem);
    lap(lc.compute, "gate", K::compute);
  }
  if (relu2) {
    rmsnorm(h, h, *L.ffn_sub, d.hidden, Axis::X, ops);
    lap(lc.allreduce, "FFN sub-norm", K::allreduce);
  }
  TileBuf<float> y = project(L.w2, h, quantize(h, Axis::X, ops, lc, t), lc, t);
  add_into(x, y);
  lap(lc.compute, "residual add", K::compute);
}

void MeshTransformer::Impl::classify(std::unique_ptr<TileBuf<float>>& x, TokenCycles& tc) {
  const Region& RL = pl.layer_regions.back();
  const PositionClock::Stamp t = clock.stamp(RL);
  TileBuf<float> xn(f, RL, size_t(d.dim_block), "final norm", TileBuf<float>::NoInit{});  // rmsnorm writes it
  rmsnorm(xn, *x, *rms_final, cfg.dim, Axis::Y, scalar_ops.back());
  x.reset();
  std::vector<std::unique_ptr<TileBuf<float>>> in;
  for (const Region& c : pl.classifier_regions)
    in.push_back(std::make_unique<TileBuf<float>>(f, c, size_t(d.dim_block), "classifier input"));
  for (size_t i = 0; i < in.size(); ++i) {
    const int32_t from = pl.classifier_source[i];
    cls_handoffs[i].run(f, from < 0 ? xn : *in[size_t(from)], *in[i]);
  }
  // Every region's GEMV first, then the collectives that read the logits and clocks: a region
  // inside one rank's block involves no other rank, so the ranks work on their regions at once.
  std::vector<TileBuf<float>> ys;
  ys.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) ys.push_back(classifier[i]->run_tiles(*in[i], nullptr));
  std::vector<PositionClock::Stamp> ends;
  std::vector<const TileBuf<float>*> outs;
  for (size_t i = 0; i < in.size(); ++i) {
    ends.push_back(clock.stamp(pl.classifier_regions[i]));
    outs.push_back(&ys[i]);
  }
  // Each region's logits are the first classifier_rows[i] values of its row 0.
  const std::vector<float>& rows = logits_reader.read(f, outs, 0);
  int64_t row0 = 0;
  size_t at = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    std::copy(rows.begin() + std::ptrdiff_t(at), rows.begin() + std::ptrdiff_t(at) + pl.classifier_rows[i],
              logits.begin() + row0);
    row0 += pl.classifier_rows[i];
    at += size_t(ys[i].region().w) * ys[i].elems();
  }
  const std::vector<uint64_t> clocks = clock.settle();
  uint64_t end = 0;
  for (PositionClock::Stamp e : ends) end = std::max(end, clocks[size_t(e)]);
  tc.classifier = end - clocks[size_t(t)];
  prev_end = end;
  tc.spans = clock.take_spans();
  tc.spans.push_back({"final norm + classifier", PhaseSpan::Kind::classifier, -1, -1, clocks[size_t(t)], end, 0,
                      clock.settled_work(ends.back()) - clock.settled_work(t)});
  tc.sram = clock.take_sram();
}

void MeshTransformer::Impl::check_token(int tok) const {
  if (tok < 0 || tok >= cfg.vocab)
    throw UsageError("token " + std::to_string(tok) + " outside the vocabulary [0, " + std::to_string(cfg.vocab) + ")");
}

uint64_t MeshTransformer::Impl::begin_token() {
  clock.discard();
  dist::sync_ranks(f);
  const Region& R0 = pl.layer_regions.front();
  f.advance_clocks(R0, prev_end);
  const uint64_t start = std::max(prev_end, clock.now(R0));
  f.advance_clocks(R0, start);
  work_at_start = f.work();
  return start;
}

const float* MeshTransformer::Impl::end_token(std::unique_ptr<TileBuf<float>>& x, TokenCycles& tc, uint64_t start,
                                              std::chrono::steady_clock::time_point w0) {
  classify(x, tc);
  tc.start = start;
  tc.total = prev_end - start;
  tc.work = f.work() - work_at_start;
  if (tracing) tc.noc_bytes = region_bytes_sent();
  tc.wall_s = dist::max_over_ranks(f, std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count());
  last = std::move(tc);
  return logits.data();
}

const float* MeshTransformer::forward(int token, int pos) {
  Impl& m = *impl_;
  Fabric& f = m.f;
  const ModelConfig& cfg = m.cfg;
  m.check_token(token);
  if (pos != m.layers.front().kv->tokens())
    throw std::logic_error("MeshTransformer::forward: positions must come in order");
  const uint64_t start = m.begin_token();
  const auto w0 = std::chrono::steady_clock::now();
  TokenCycles tc;
  tc.layers.resize(size_t(cfg.layers));
  // The token's embedding enters the first region from the host, split along Y.
  const Region& R0 = m.pl.layer_regions.front();
  std::vector<float> emb(static_cast<size_t>(cfg.dim));
  m.embedding_row(token, emb.data());
  auto x = std::make_unique<TileBuf<float>>(f, R0, size_t(m.d.dim_block), "residual stream");
  x->for_each_local([&](int32_t, int32_t py, float* o) {
    for (int64_t e = 0; e < m.d.dim_block; ++e) {
      const int64_t i = (py - R0.y0) * m.d.dim_block + e;
      o[e] = i < m.d.dim ? emb[size_t(i)] : 0.0f;
    }
  });
  int32_t cur = 0;
  for (int64_t l = 0; l < cfg.layers; ++l) {
    Layer& L = m.layers[size_t(l)];
    if (L.region != cur) {  // move x to the next region: one column, then along the rows
      const Region& next = m.pl.layer_regions[size_t(L.region)];
      m.clock.scope(-1, L.region);
      PositionClock::Stamp t0 = m.clock.stamp(x->region());
      auto nx = std::make_unique<TileBuf<float>>(f, next, size_t(m.d.dim_block), "residual stream");
      m.handoffs[size_t(cur)].run(f, *x, *nx);
      x = std::move(nx);
      m.clock.lap(tc.handoff, t0, m.clock.stamp(next), "hand-off", PhaseSpan::Kind::handoff,
                  PositionClock::LapKind::add_positive);
      cur = L.region;
    }
    m.clock.scope(int32_t(l), L.region);
    m.layer_forward(L, *x, pos, tc.layers[size_t(l)]);
  }
  return m.end_token(x, tc, start, w0);
}

}  // namespace wm::model
