#include "wafermesh/dist/kv_cache.hpp"

#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "wafermesh/dist/allreduce.hpp"
#include "wafermesh/mesh/mpi_traits.hpp"
#include "wafermesh/noc/tile_buf.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::dist {

KvPolicy kv_policy_from_name(const std::string& name) {
  if (name == "concat") return KvPolicy::concat;
  if (name == "shift") return KvPolicy::shift;
  throw UsageError("unknown KV cache policy '" + name + "' (choose concat or shift)");
}

const char* kv_policy_name(KvPolicy p) { return p == KvPolicy::concat ? "concat" : "shift"; }

namespace {
// The allreduce of partial scores along a row: fixed, so results do not depend on the policy.
AllreduceSpec score_allreduce() { return AllreduceSpec{}; }
}  // namespace

struct KvCache::Impl {
  Fabric& f;
  KvSpec s;
  Region R;
  int64_t slice;                      // elements of a token's K (or V) per PE
  std::vector<int64_t> rows;          // tokens per row (same on every rank)
  std::vector<std::vector<float>> k;  // per local PE of R, row-major: (tokens of the row, slice)
  std::vector<std::vector<float>> v;
  // shift: the outgoing and incoming token of a step, allocated once with the cache.
  std::unique_ptr<TileBuf<float>> out, in;
  std::vector<std::optional<TransferPlan>> shift_plans;  // per growing row, built at first use
  Impl(Fabric& fab, const KvSpec& sp)
      : f(fab), s(sp), R{sp.origin.x, sp.origin.y, sp.P, sp.P}, slice((sp.kv_dim + sp.P - 1) / sp.P),
        rows(size_t(sp.P), 0), shift_plans(size_t(sp.P)) {
    const Region l = R.intersect(f.block());
    k.resize(size_t(l.size()));
    v.resize(size_t(l.size()));
  }
  uint64_t token_bytes() const { return uint64_t(s.layers) * 2 * uint64_t(slice) * sizeof(float); }
  Region row_region(int32_t r) const { return {R.x0, R.y0 + r, R.w, 1}; }
  size_t li(int32_t x, int32_t y) const {
    const Region l = R.intersect(f.block());
    return size_t(y - l.y0) * size_t(l.w) + size_t(x - l.x0);
  }
  // Appends token (key, value) to the local PEs of row r.
  void push(int32_t r, const float* key, const float* value) {
    const Region l = R.intersect(f.block());
    const int32_t y = R.y0 + r;
    if (y < l.y0 || y >= l.y0 + l.h) return;
    for (int32_t x = l.x0; x < l.x0 + l.w; ++x) {
      const int64_t c = x - R.x0;
      auto& kk = k[li(x, y)];
      auto& vv = v[li(x, y)];
      for (int64_t e = 0; e < slice; ++e) {
        const int64_t g = c * slice + e;
        kk.push_back(g < s.kv_dim ? key[g] : 0.0f);
        vv.push_back(g < s.kv_dim ? value[g] : 0.0f);
      }
    }
  }
  uint64_t region_clock() const { return f.summarize(R).max_clock_cycles; }
};

KvCache::KvCache(Fabric& f, const KvSpec& s) {
  const MeshShape& m = f.mesh();
  if (s.P < 1 || s.kv_dim < 1 || s.layers < 1)
    throw UsageError("KV cache: P, kv_dim and layers must be >= 1 (got " + std::to_string(s.P) + ", " +
                     std::to_string(s.kv_dim) + ", " + std::to_string(s.layers) + ")");
  if (s.origin.x < 0 || s.origin.y < 0 || s.origin.x + s.P > m.width || s.origin.y + s.P > m.height)
    throw UsageError("KV cache region " + std::to_string(s.P) + " x " + std::to_string(s.P) + " does not fit the " +
                     std::to_string(m.width) + " x " + std::to_string(m.height) + " mesh");
  impl_ = std::make_unique<Impl>(f, s);
  if (s.policy == KvPolicy::shift) {
    const size_t tile = size_t(2 * impl_->slice);
    impl_->out = std::make_unique<TileBuf<float>>(f, impl_->R, tile, "KV shift: outgoing token");
    impl_->in = std::make_unique<TileBuf<float>>(f, impl_->R, tile, "KV shift: incoming token");
  }
}

KvCache::~KvCache() {
  if (!impl_) return;
  for (int32_t r = 0; r < impl_->s.P; ++r)
    impl_->f.sram_release(impl_->row_region(r), uint64_t(impl_->rows[size_t(r)]) * impl_->token_bytes());
}

int64_t KvCache::tokens() const {
  int64_t n = 0;
  for (int64_t r : impl_->rows) n += r;
  return n;
}
std::vector<int64_t> KvCache::row_tokens() const { return impl_->rows; }
uint64_t KvCache::bytes_per_token_per_pe() const { return impl_->token_bytes(); }

void KvCache::prefill(const float* keys, const float* values, int64_t n) {
  Impl& m = *impl_;
  if (tokens() != 0) throw std::logic_error("prefill into a non-empty KV cache");
  const Block1D split(n, m.s.P);
  // Charge every row first, so an overflow leaves the cache empty.
  int32_t charged = 0;
  try {
    for (; charged < m.s.P; ++charged)
      m.f.sram_acquire(m.row_region(charged), uint64_t(split.size(charged)) * m.token_bytes(),
                       std::to_string(split.size(charged)) + " prompt tokens of the KV cache");
  } catch (...) {
    for (int32_t r = 0; r < charged; ++r)
      m.f.sram_release(m.row_region(r), uint64_t(split.size(r)) * m.token_bytes());
    throw;
  }
  for (int32_t r = 0; r < m.s.P; ++r) {
    for (int64_t t = split.start(r); t < split.start(r) + split.size(r); ++t)
      m.push(r, keys + t * m.s.kv_dim, values + t * m.s.kv_dim);
    m.rows[size_t(r)] = split.size(r);
  }
}

uint64_t KvCache::append(const float* key, const float* value) {
  Impl& m = *impl_;
  const int32_t P = m.s.P;
  const int64_t T = tokens();
  const int32_t grow = m.s.policy == KvPolicy::concat ? P - 1 : int32_t(T % P);
  // The growing row is charged first: an overflow throws before anything moves.
  m.f.sram_acquire(m.row_region(grow), m.token_bytes(), "one more token of the KV cache");
  const uint64_t before = m.region_clock();
  if (m.s.policy == KvPolicy::shift && grow < P - 1) {
    detail::shift_rows_up(m.f, m.R, grow, m.slice, m.k, m.v, *m.out, *m.in, m.shift_plans);
  }
  m.push(P - 1, key, value);
  m.rows[size_t(grow)] += 1;
  return m.region_clock() - before;
}

namespace detail {
void shift_rows_up(Fabric& f, const Region& R, int32_t grow, int64_t slice, std::vector<std::vector<float>>& k,
                   std::vector<std::vector<float>>& v, TileBuf<float>& out, TileBuf<float>& in,
                   std::vector<std::optional<TransferPlan>>& plans) {
  const int32_t P = R.h;
  const Region l = R.intersect(f.block());
  auto li = [&](int32_t x, int32_t y) { return size_t(y - l.y0) * size_t(l.w) + size_t(x - l.x0); };
  if (plans.size() != size_t(P)) throw std::logic_error("KV shift: one plan slot per row expected");
  std::optional<TransferPlan>& p = plans[size_t(grow)];
  if (!p) {
    std::vector<Transfer> t;
    for (int32_t x = l.x0; x < l.x0 + l.w; ++x)
      for (int32_t r = grow + 1; r < P; ++r) t.push_back({{x, R.y0 + r}, {x, R.y0 + r - 1}, uint32_t(t.size()), 0});
    const std::string name = "KV shift up from row " + std::to_string(grow + 1);
    p = f.plan(std::move(t), out.bytes_per_pe(), name);
    p->share_routes(name + " on " + R.str());
  }
  out.for_each_local([&](int32_t x, int32_t y, float* o) {
    if (y - R.y0 <= grow) return;
    const auto& kk = k[li(x, y)];
    const auto& vv = v[li(x, y)];
    std::copy(kk.begin(), kk.begin() + slice, o);
    std::copy(vv.begin(), vv.begin() + slice, o + slice);
  });
  f.execute(*p, out.view(), in.view());
  p->release_routes();
  in.for_each_local([&](int32_t x, int32_t y, float* i) {
    const int32_t r = y - R.y0;
    auto& kk = k[li(x, y)];
    auto& vv = v[li(x, y)];
    if (r > grow) {  // sent its oldest
      kk.erase(kk.begin(), kk.begin() + slice);
      vv.erase(vv.begin(), vv.begin() + slice);
    }
    if (r >= grow && r < P - 1) {  // received the next row's oldest as its newest
      kk.insert(kk.end(), i, i + slice);
      vv.insert(vv.end(), i + slice, i + 2 * slice);
    }
  });
}
}  // namespace detail

std::vector<float> KvCache::attention(const float* q) {
  Impl& m = *impl_;
  const int32_t P = m.s.P;
  if (tokens() == 0) throw UsageError("attention over an empty KV cache");
  const Region& R = m.R;
  const int64_t S = m.slice;
  const float inv_sqrt = 1.0f / std::sqrt(float(m.s.kv_dim));
  // 1. Partial dot products of every local token, then the sum along each row.
  const int64_t widest = *std::max_element(m.rows.begin(), m.rows.end());
  TileBuf<float> scores(m.f, R, size_t(std::max<int64_t>(widest, 1)), "attention scores");
  scores.for_each_local([&](int32_t x, int32_t y, float* sc) {
    const int64_t c = x - R.x0, n = m.rows[size_t(y - R.y0)];
    const auto& kk = m.k[m.li(x, y)];
    for (int64_t t = 0; t < n; ++t) {
      float acc = 0.0f;
      for (int64_t e = 0; e < S; ++e) acc = acc + (c * S + e < m.s.kv_dim ? q[c * S + e] : 0.0f) * kk[size_t(t * S + e)];
      sc[t] = acc;
    }
    std::fill(sc + n, sc + scores.elems(), 0.0f);
    m.f.charge_compute(x, y, uint64_t(n * S));
  });
  allreduce_lines(m.f, scores, Axis::X, score_allreduce());
  // 2. Online softmax down the rows, in token order: state (max, sum, output slice).
  const size_t st = size_t(2 + S);
  TileBuf<float> state(m.f, R, st, "attention state"), incoming(m.f, R, st, "attention state in");
  state.for_each_local([&](int32_t, int32_t, float* s) {
    s[0] = -std::numeric_limits<float>::infinity();
    std::fill(s + 1, s + st, 0.0f);
  });
  auto absorb = [&](int32_t r) {  // row r folds its tokens into its state
    state.for_each_local([&](int32_t x, int32_t y, float* s) {
      if (y - R.y0 != r) return;
      const int64_t n = m.rows[size_t(r)];
      const float* sc = scores.tile(x, y);
      const auto& vv = m.v[m.li(x, y)];
      for (int64_t t = 0; t < n; ++t) {
        const float score = sc[t] * inv_sqrt;
        const float mx = std::max(s[0], score);
        const float a = std::exp(s[0] - mx), b = std::exp(score - mx);
        s[1] = s[1] * a + b;
        for (int64_t e = 0; e < S; ++e) s[2 + e] = s[2 + e] * a + b * vv[size_t(t * S + e)];
        s[0] = mx;
      }
      m.f.charge_compute(x, y, uint64_t(n * (2 * S + 4)));
    });
  };
  absorb(0);
  for (int32_t r = 1; r < P; ++r) {
    std::vector<Transfer> t;
    const Region l = R.intersect(m.f.block());
    for (int32_t x = l.x0; x < l.x0 + l.w; ++x)
      t.push_back({{x, R.y0 + r - 1}, {x, R.y0 + r}, uint32_t(t.size()), 1});
    TransferPlan p = m.f.plan(std::move(t), state.bytes_per_pe(), "attention state down to row " + std::to_string(r));
    m.f.execute(p, state.view(), incoming.view());
    state.for_each_local([&](int32_t x, int32_t y, float* s) {
      if (y - R.y0 == r) std::copy(incoming.tile(x, y), incoming.tile(x, y) + st, s);
    });
    absorb(r);
  }
  // 3. The bottom row holds the result, one slice per column.
  const std::vector<float> all = state.gather();
  if (m.f.rank() != 0) return {};
  std::vector<float> out(static_cast<size_t>(m.s.kv_dim));
  for (int32_t c = 0; c < P; ++c) {
    const float* s = all.data() + (size_t(P - 1) * size_t(P) + size_t(c)) * st;
    for (int64_t e = 0; e < S && c * S + e < m.s.kv_dim; ++e) out[size_t(c * S + e)] = s[2 + e] / s[1];
  }
  return out;
}

std::vector<float> kv_attention_reference(const float* q, const float* keys, const float* values, int64_t n,
                                          int64_t kv_dim, int32_t P) {
  const int64_t S = (kv_dim + P - 1) / P;
  const float inv_sqrt = 1.0f / std::sqrt(float(kv_dim));
  std::vector<float> out(static_cast<size_t>(kv_dim));
  std::vector<float> scores(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) {
    std::vector<std::vector<float>> partial;  // per column, in line order
    for (int32_t c = 0; c < P; ++c) {
      float acc = 0.0f;
      for (int64_t e = 0; e < S; ++e) {
        const int64_t g = c * S + e;
        acc = acc + (g < kv_dim ? q[g] : 0.0f) * (g < kv_dim ? keys[t * kv_dim + g] : 0.0f);
      }
      partial.push_back({acc});
    }
    scores[size_t(t)] = allreduce_line_reference(score_allreduce(), partial)[0];
  }
  for (int32_t c = 0; c < P; ++c) {
    float mx = -std::numeric_limits<float>::infinity(), sum = 0.0f;
    std::vector<float> o(size_t(S), 0.0f);
    for (int64_t t = 0; t < n; ++t) {
      const float score = scores[size_t(t)] * inv_sqrt;
      const float m2 = std::max(mx, score);
      const float a = std::exp(mx - m2), b = std::exp(score - m2);
      sum = sum * a + b;
      for (int64_t e = 0; e < S; ++e) {
        const int64_t g = c * S + e;
        o[size_t(e)] = o[size_t(e)] * a + b * (g < kv_dim ? values[t * kv_dim + g] : 0.0f);
      }
      mx = m2;
    }
    for (int64_t e = 0; e < S && c * S + e < kv_dim; ++e) out[size_t(c * S + e)] = o[size_t(e)] / sum;
  }
  return out;
}

}  // namespace wm::dist
