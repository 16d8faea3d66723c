#include "wafermesh/dist/kv_cache.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

#include "wafermesh/util/error.hpp"

namespace wm::dist {

KvPolicy kv_policy_from_name(const std::string& name) {
  if (name == "concat") return KvPolicy::concat;
  if (name == "shift") return KvPolicy::shift;
  throw UsageError("unknown KV cache policy '" + name + "' (choose concat or shift)");
}

const char* kv_policy_name(KvPolicy p) { return p == KvPolicy::concat ? "concat" : "shift"; }

namespace {

// Tokens per row after n appends, and the first token of each row.
std::vector<int64_t> rows_after(KvPolicy p, int32_t P, int64_t n) {
  std::vector<int64_t> rows(size_t(P), 0);
  if (p == KvPolicy::concat) {
    rows[size_t(P - 1)] = n;
  } else {
    for (int32_t r = 0; r < P; ++r) rows[size_t(r)] = n / P + (r < n % P ? 1 : 0);
  }
  return rows;
}

uint64_t region_clock(Fabric& f, const Region& R) { return f.max_clock(R); }

}  // namespace

int64_t KvCache::row_capacity(KvPolicy p, int32_t P, int64_t context) {
  return p == KvPolicy::concat ? context : (context + P - 1) / P;
}

struct KvCache::Impl {
  Fabric& f;
  KvSpec s;
  Region R, local;
  int64_t mtk, g;
  std::vector<int64_t> rows;    // tokens per row (same on every rank)
  // Per local row of the region: its tokens, oldest first; a token is every local PE's key block
  // and value block side by side, (local PEs, 2, mtk), so a row passes its oldest token on, and
  // takes a token, as one block.
  std::vector<TokenQueue> kv;
  size_t token_floats = 0;  // local.w * 2 * mtk
  std::unique_ptr<TileBuf<float>> out, in;  // shift: a token's K and V on its way up (scratch)
  std::vector<float> block;                 // a token of a local row being assembled
  std::vector<std::optional<TransferPlan>> shift_plans;  // per growing row, built at first use
  std::unique_ptr<LineAllreduce<float>> score_ar;  // rebuilt when the widest row grows
  int64_t score_width = 0;
  std::unique_ptr<LineAllreduce<MaxFloat>> max_ar;
  std::unique_ptr<LineAllreduce<float>> sum_ar, out_ar;

  Impl(Fabric& fab, const KvSpec& sp)
      : f(fab), s(sp), R{sp.origin.x, sp.origin.y, sp.P, sp.P}, local(R.intersect(fab.block())), mtk(sp.mtk()),
        g(sp.group()), rows(size_t(sp.P), 0), shift_plans(size_t(sp.P)) {
    kv.resize(size_t(std::max(local.h, 0)));
    token_floats = size_t(std::max(local.w, 0)) * 2 * size_t(mtk);
  }
  // A token's key and value blocks on a PE, at wafer.dtype.
  uint64_t token_bytes() const { return uint64_t(s.layers) * 2 * uint64_t(mtk) * f.params().wafer_fp_bytes(); }
  Region row_region(int32_t r) const { return {R.x0, R.y0 + r, R.w, 1}; }
  size_t li(int32_t x, int32_t y) const { return size_t(y - local.y0) * size_t(local.w) + size_t(x - local.x0); }
  // Token t of local PE (x, y): key block, then value block (mtk each); tokens are token_floats apart.
  const float* token(int32_t x, int32_t y, int64_t t) const {
    return kv[size_t(y - local.y0)].data() + size_t(t) * token_floats + size_t(x - local.x0) * 2 * size_t(mtk);
  }
  // The row that gains a token at the next append.
  int32_t growing_row() const {
    int64_t T = 0;
    for (int64_t r : rows) T += r;
    return s.policy == KvPolicy::concat ? s.P - 1 : int32_t(T % s.P);
  }
  // Whether that append shifts rows: while the rows below the growing one are still empty (the
  // first P tokens), the token goes straight to the growing row; afterwards the rows below it
  // shift up and the token enters the bottom row.
  bool shifts(int32_t grow) const {
    return s.policy == KvPolicy::shift && grow < s.P - 1 && rows[size_t(s.P - 1)] > 0;
  }
  // The shift policy's step: rows grow+1 .. P-1 pass their oldest token one row up (all at once)
  // and rows grow .. P-2 append what they receive.
  void shift_up(int32_t grow);
};

KvCache::KvCache(Fabric& f, const KvSpec& s) {
  const MeshShape& m = f.mesh();
  if (s.P < 1 || s.heads < 1 || s.kv_heads < 1 || s.head_dim < 1 || s.heads % s.kv_heads != 0)
    throw UsageError("attention: P, heads, kv_heads, head_dim must be >= 1 and kv_heads must divide heads (got P " +
                     std::to_string(s.P) + ", heads " + std::to_string(s.heads) + ", kv_heads " +
                     std::to_string(s.kv_heads) + ")");
  if (s.origin.x < 0 || s.origin.y < 0 || s.origin.x + s.P > m.width || s.origin.y + s.P > m.height)
    throw UsageError("attention region " + std::to_string(s.P) + " x " + std::to_string(s.P) + " at (" +
                     std::to_string(s.origin.x) + ", " + std::to_string(s.origin.y) + ") does not fit the " +
                     std::to_string(m.width) + " x " + std::to_string(m.height) + " mesh");
  impl_ = std::make_unique<Impl>(f, s);
  Impl& q = *impl_;
  const size_t tile = size_t(2 * q.mtk);
  if (s.policy == KvPolicy::shift) {
    q.out = std::make_unique<TileBuf<float>>(f, q.R, tile, "KV shift: outgoing token", TileBuf<float>::Uncharged{});
    q.in = std::make_unique<TileBuf<float>>(f, q.R, tile, "KV shift: incoming token", TileBuf<float>::Uncharged{});
  }
  q.max_ar = std::make_unique<LineAllreduce<MaxFloat>>(f, q.R, Axis::Y, size_t(s.heads), s.allreduce);
  q.sum_ar = std::make_unique<LineAllreduce<float>>(f, q.R, Axis::Y, size_t(s.heads), s.allreduce);
  q.out_ar = std::make_unique<LineAllreduce<float>>(f, q.R, Axis::Y, size_t(q.g * q.mtk), s.allreduce);
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

void KvCache::append(const TileBuf<float>& kt, const TileBuf<float>& vt, uint64_t* cycles) {
  Impl& m = *impl_;
  if (!(kt.region() == m.R) || kt.elems() != size_t(m.mtk) || !(vt.region() == m.R) || vt.elems() != size_t(m.mtk))
    throw std::logic_error("KV append: tiles do not match the cache");
  const int64_t T = tokens();
  const int32_t grow = m.growing_row();
  const bool shift = m.shifts(grow);
  const int32_t yb = m.R.y0 + entry_row();
  // Everything is charged before anything moves: an overflow leaves the cache as it was.
  std::optional<SramCharge> scratch;  // the tiles on their way up, while the rows shift
  if (shift) scratch.emplace(m.f, m.R, 2 * m.out->bytes_per_pe(), "KV shift scratch");
  m.f.sram_acquire(m.row_region(grow), m.token_bytes(), [&] {
    return "token " + std::to_string(T) + " of a layer's KV cache (" + kv_policy_name(m.s.policy) + ")";
  });
  const uint64_t before = cycles ? region_clock(m.f, m.R) : 0;
  if (shift) {
    m.shift_up(grow);
    scratch.reset();
  }
  // The new token: its row already holds its blocks (the vectors are replicated along Y).
  if (yb >= m.local.y0 && yb < m.local.y0 + m.local.h) {
    const size_t S = size_t(m.mtk);
    m.block.resize(m.token_floats);
    for (int32_t x = m.local.x0; x < m.local.x0 + m.local.w; ++x) {
      float* o = m.block.data() + size_t(x - m.local.x0) * 2 * S;
      std::copy(kt.tile(x, yb), kt.tile(x, yb) + S, o);
      std::copy(vt.tile(x, yb), vt.tile(x, yb) + S, o + S);
    }
    m.kv[size_t(yb - m.local.y0)].push(m.block.data(), m.token_floats);
  }
  m.rows[size_t(grow)] += 1;
  if (cycles) *cycles = region_clock(m.f, m.R) - before;
}

int32_t KvCache::entry_row() const {
  const Impl& m = *impl_;
  const int32_t grow = m.growing_row();
  return m.s.policy == KvPolicy::shift && !m.shifts(grow) ? grow : m.s.P - 1;
}

void KvCache::prefill(const float* keys, const float* values, int64_t n) {
  const Block1D split(n, impl_->s.P);
  std::vector<int64_t> rows(size_t(impl_->s.P));
  for (int32_t r = 0; r < impl_->s.P; ++r) rows[size_t(r)] = split.size(r);
  place_rows(keys, values, rows);
}

void KvCache::load(const float* keys, const float* values, int64_t n) {
  place_rows(keys, values, rows_after(impl_->s.policy, impl_->s.P, n));
}

std::vector<int64_t> KvCache::rows_after(KvPolicy p, int32_t P, int64_t n) { return dist::rows_after(p, P, n); }

void KvCache::place_rows(const float* keys, const float* values, const std::vector<int64_t>& rows) {
  Impl& m = *impl_;
  if (tokens() != 0) throw std::logic_error("prefill into a non-empty KV cache");
  // Charge every row first, so an overflow leaves the cache empty.
  int32_t charged = 0;
  try {
    for (; charged < m.s.P; ++charged)
      m.f.sram_acquire(m.row_region(charged), uint64_t(rows[size_t(charged)]) * m.token_bytes(), [&] {
        return std::to_string(rows[size_t(charged)]) + " prompt tokens of the KV cache";
      });
  } catch (...) {
    for (int32_t r = 0; r < charged; ++r) m.f.sram_release(m.row_region(r), uint64_t(rows[size_t(r)]) * m.token_bytes());
    throw;
  }
  const int64_t kvd = m.s.kv_dim(), S = m.mtk;
  m.block.resize(m.token_floats);
  int64_t first = 0;
  for (int32_t r = 0; r < m.s.P; ++r) {
    const int32_t y = m.R.y0 + r;
    if (y >= m.local.y0 && y < m.local.y0 + m.local.h)
      for (int64_t t = first; t < first + rows[size_t(r)]; ++t) {
        for (int32_t x = m.local.x0; x < m.local.x0 + m.local.w; ++x) {
          const int64_t c = x - m.R.x0;
          float* o = m.block.data() + size_t(x - m.local.x0) * 2 * size_t(S);
          for (int64_t e = 0; e < S; ++e) {
            const bool real = c * S + e < kvd;
            o[e] = real ? keys[t * kvd + c * S + e] : 0.0f;
            o[S + e] = real ? values[t * kvd + c * S + e] : 0.0f;
          }
        }
        m.kv[size_t(y - m.local.y0)].push(m.block.data(), m.token_floats);
      }
    m.rows[size_t(r)] = rows[size_t(r)];
    first += rows[size_t(r)];
  }
}

void KvCache::read_tokens(std::vector<float>& keys, std::vector<float>& values) const {
  const Impl& m = *impl_;
  const int64_t n = tokens(), kvd = m.s.kv_dim(), S = m.mtk;
  // Every rank writes the elements its PEs hold into zeroed arrays; a bitwise OR over the ranks
  // then gives every element's exact bits (a sum would turn -0.0 into +0.0).
  std::vector<uint32_t> bits(size_t(2 * n * kvd), 0);
  int64_t first = 0;
  for (int32_t r = 0; r < m.s.P; ++r) {
    const int32_t y = m.R.y0 + r;
    if (y >= m.local.y0 && y < m.local.y0 + m.local.h)
      for (int64_t t = 0; t < m.rows[size_t(r)]; ++t)
        for (int32_t x = m.local.x0; x < m.local.x0 + m.local.w; ++x) {
          const int64_t c = x - m.R.x0;
          const float* blk = m.token(x, y, t);
          for (int64_t e = 0; e < S && c * S + e < kvd; ++e) {
            std::memcpy(&bits[size_t((first + t) * kvd + c * S + e)], blk + e, 4);
            std::memcpy(&bits[size_t(n * kvd + (first + t) * kvd + c * S + e)], blk + S + e, 4);
          }
        }
    first += m.rows[size_t(r)];
  }
  if (!bits.empty())
    MPI_Allreduce(MPI_IN_PLACE, bits.data(), int(bits.size()), MPI_UINT32_T, MPI_BOR, m.f.comm());
  keys.resize(size_t(n * kvd));
  values.resize(size_t(n * kvd));
  if (n) {
    std::memcpy(keys.data(), bits.data(), size_t(n * kvd) * 4);
    std::memcpy(values.data(), bits.data() + n * kvd, size_t(n * kvd) * 4);
  }
}

void KvCache::Impl::shift_up(int32_t grow) {
  const int32_t P = s.P;
  std::optional<TransferPlan>& p = shift_plans[size_t(grow)];
  if (!p) {  // rows grow+1 .. P-1 pass their oldest token one row up, in every column
    std::vector<LineTransfer> t;
    for (int32_t r = grow + 1; r < P; ++r) t.push_back({r, r - 1, uint32_t(r), 0});
    const std::string name = "KV shift up from row " + std::to_string(grow + 1);
    p = f.plan(LinePattern{R, Axis::Y, {std::move(t)}, std::vector<int32_t>(size_t(R.w), 0)}, out->bytes_per_pe(),
               name);
    p->share_routes(name + " on " + R.str());
  }
  // Rows below `grow` send their oldest token: whole local rows at once (the scratch tiles are
  // only ever copied between the two buffers, never permuted in place, so a row's lie side by side).
  if (out->view().slotted() || in->view().slotted()) throw std::logic_error("KV shift: scratch tiles permuted");
  for (int32_t y = std::max(local.y0, R.y0 + grow + 1); y < local.y0 + local.h; ++y)
    std::copy(kv[size_t(y - local.y0)].data(), kv[size_t(y - local.y0)].data() + token_floats, out->tile(local.x0, y));
  f.execute(*p, out->view(), in->view());
  p->release_routes();
  for (int32_t y = local.y0; y < local.y0 + local.h; ++y) {
    const int32_t r = y - R.y0;
    if (r > grow) kv[size_t(y - local.y0)].pop(token_floats);  // sent its oldest
    if (r >= grow && r < P - 1) kv[size_t(y - local.y0)].push(in->tile(local.x0, y), token_floats);  // the next row's oldest is its newest
  }
}

TileBuf<float> KvCache::attention(const TileBuf<float>& qt, AttentionReport* rep) {
  Impl& m = *impl_;
  Fabric& f = m.f;
  const Region& R = m.R;
  const int64_t S = m.mtk, G = m.g, H = m.s.heads, hd = m.s.head_dim, kvd = m.s.kv_dim();
  if (!(qt.region() == R) || qt.elems() != size_t(G * S)) throw std::logic_error("attention: q tiles do not match");
  if (tokens() == 0) throw std::logic_error("attention over an empty KV cache");
  const int64_t W = *std::max_element(m.rows.begin(), m.rows.end());
  if (W != m.score_width) {
    m.score_ar.reset();
    m.score_ar = std::make_unique<LineAllreduce<float>>(f, R, Axis::X, size_t(H * W), m.s.allreduce);
    m.score_width = W;
  }
  uint64_t t0 = rep ? region_clock(f, R) : 0;
  auto lap = [&](uint64_t* into) {
    if (!rep) return;
    const uint64_t t = region_clock(f, R);
    *into = t - t0;
    t0 = t;
  };
  // Query head of (kv element e of block c, group member j): kvh * g + j.
  auto head_of = [&](int32_t c, int64_t e, int64_t j) { return ((int64_t(c) * S + e) / hd) * G + j; };
  // Work of every PE in proportion to its row's tokens: charged per band of consecutive rows that
  // hold the same number of tokens (two bands at most under either policy), as region-uniform work.
  auto charge_rows = [&](uint64_t per_token, Work w) {
    for (int32_t r0 = 0; r0 < m.s.P;) {
      int32_t r1 = r0 + 1;
      while (r1 < m.s.P && m.rows[size_t(r1)] == m.rows[size_t(r0)]) ++r1;
      f.charge_compute(Region{R.x0, R.y0 + r0, R.w, r1 - r0}, per_token * uint64_t(m.rows[size_t(r0)]), w);
      r0 = r1;
    }
  };

  // 1. Partial scores, (H, W) per PE: head-major, tokens of the row.
  // Zeroed in one sweep: rows without tokens, and each row's scores past its tokens, stay 0. The
  // local rows holding tokens are visited row by row.
  TileBuf<float> sc(f, R, size_t(H * W), "attention scores");
  auto for_each_pe_with_tokens = [&](TileBuf<float>& buf, auto&& fn) {
    const Region& l = buf.local();
    for (int32_t y = l.y0; y < l.y0 + l.h; ++y) {
      const int64_t n = m.rows[size_t(y - R.y0)];
      if (n > 0)
        for (int32_t x = l.x0; x < l.x0 + l.w; ++x) fn(x, y, n, buf.tile(x, y));
    }
  };
  for_each_pe_with_tokens(sc, [&](int32_t x, int32_t y, int64_t n, float* out) {
    const int32_t c = x - R.x0;
    const float* q = qt.tile(x, y);
    const float* kd = m.token(x, y, 0);  // key blocks, m.token_floats apart
    const size_t tf = m.token_floats;
    const int64_t live = std::clamp<int64_t>(kvd - int64_t(c) * S, 0, S);  // real elements of the block
    for (int64_t e0 = 0; e0 < live;) {  // one run per key head inside the block
      const int64_t end = std::min(live, ((int64_t(c) * S + e0) / hd + 1) * hd - int64_t(c) * S);
      // One sum per (group member j, token t), each over e in ascending order; four tokens' sums
      // run side by side so their additions overlap (each sum's own order is unchanged).
      for (int64_t j = 0; j < G; ++j) {
        const float* qa = q + j * S;
        float* o = out + head_of(c, e0, j) * W;
        int64_t t = 0;
        for (; t + 4 <= n; t += 4) {
          const float* ka[4];
          float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
          for (int u = 0; u < 4; ++u) ka[u] = kd + size_t(t + u) * tf;
          for (int64_t e = e0; e < end; ++e)
            for (int u = 0; u < 4; ++u) acc[u] += qa[e] * ka[u][e];
          for (int u = 0; u < 4; ++u) o[t + u] = acc[u];
        }
        for (; t < n; ++t) {
          const float* ka = kd + size_t(t) * tf;
          float acc = 0.0f;
          for (int64_t e = e0; e < end; ++e) acc += qa[e] * ka[e];
          o[t] = acc;
        }
      }
      e0 = end;
    }
  });
  charge_rows(uint64_t(G * S), Work::fp);
  m.score_ar->run(sc);
  // From here on every PE of a row holds the same scores (and, after their allreduces along the
  // columns, every PE the same maxima and sums): what each PE computes from them is computed once
  // per row, at the row's head (TileBuf::for_each_line_head), and charged to every PE.
  const float scale = std::sqrt(static_cast<float>(hd));
  sc.for_each_line_head(Axis::X, [&](int32_t, int32_t y, float* out) {
    const int64_t n = m.rows[size_t(y - R.y0)];
    if (n == 0) return;
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < n; ++t) out[h * W + t] /= scale;
  });
  charge_rows(uint64_t(H), Work::elem);
  if (rep) lap(&rep->score_cycles);

  // 2. Softmax over all tokens: per head max, then sum of exponentials, along the columns.
  TileBuf<MaxFloat> mx(f, R, size_t(H), "softmax max", TileBuf<MaxFloat>::NoInit{});  // written below
  mx.for_each_line_head(Axis::X, [&](int32_t x, int32_t y, MaxFloat* o) {
    const int64_t n = m.rows[size_t(y - R.y0)];
    if (n == 0) {
      std::fill(o, o + H, MaxFloat{-std::numeric_limits<float>::infinity()});
      return;
    }
    const float* s = std::as_const(sc).tile(x, y);
    for (int64_t h = 0; h < H; ++h) {
      float v = -std::numeric_limits<float>::infinity();
      for (int64_t t = 0; t < n; ++t) v = std::max(v, s[h * W + t]);
      o[h] = {v};
    }
  });
  charge_rows(uint64_t(H), Work::elem);
  m.max_ar->run(mx);
  sc.for_each_line_head(Axis::X, [&](int32_t x, int32_t y, float* s) {
    const int64_t n = m.rows[size_t(y - R.y0)];
    const MaxFloat* mm = std::as_const(mx).tile(x, y);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < n; ++t) s[h * W + t] = std::exp(s[h * W + t] - mm[h].v);
  });
  TileBuf<float> sum(f, R, size_t(H), "softmax sum", TileBuf<float>::NoInit{});  // written below
  sum.for_each_line_head(Axis::X, [&](int32_t x, int32_t y, float* o) {
    const int64_t n = m.rows[size_t(y - R.y0)];
    const float* s = std::as_const(sc).tile(x, y);
    for (int64_t h = 0; h < H; ++h) {
      float acc = 0.0f;
      for (int64_t t = 0; t < n; ++t) acc += s[h * W + t];
      o[h] = acc;
    }
  });
  charge_rows(uint64_t(2 * H), Work::elem);
  m.sum_ar->run(sum);
  sc.for_each_line_head(Axis::X, [&](int32_t x, int32_t y, float* s) {
    const int64_t n = m.rows[size_t(y - R.y0)];
    if (n == 0) return;
    const float* su = std::as_const(sum).tile(x, y);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < n; ++t) s[h * W + t] /= su[h];
  });
  charge_rows(uint64_t(H), Work::elem);
  if (rep) lap(&rep->softmax_cycles);

  // 3. Weighted values over the row's tokens, then the sum along each column.
  TileBuf<float> o(f, R, size_t(G * S), "attention output");  // rows without tokens stay 0
  for_each_pe_with_tokens(o, [&](int32_t x, int32_t y, int64_t n, float* out) {
    const int32_t c = x - R.x0;
    const float* a = std::as_const(sc).tile(x, y);
    const int64_t live = std::clamp<int64_t>(kvd - int64_t(c) * S, 0, S);
    const float* vd = m.token(x, y, 0) + S;  // value blocks, m.token_floats apart
    const int64_t tf = int64_t(m.token_floats);
    for (int64_t j = 0; j < G; ++j) {
      // One sum per element e over the tokens in order; four neighbouring elements side by side.
      int64_t e = 0;
      for (; e + 4 <= live; e += 4) {
        const float* ah[4];
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int u = 0; u < 4; ++u) ah[u] = a + head_of(c, e + u, j) * W;
        for (int64_t t = 0; t < n; ++t)
          for (int u = 0; u < 4; ++u) acc[u] += ah[u][t] * vd[t * tf + e + u];
        for (int u = 0; u < 4; ++u) out[j * S + e + u] = acc[u];
      }
      for (; e < live; ++e) {
        const float* ah = a + head_of(c, e, j) * W;
        float acc = 0.0f;
        for (int64_t t = 0; t < n; ++t) acc += ah[t] * vd[t * tf + e];
        out[j * S + e] = acc;
      }
    }
  });
  charge_rows(uint64_t(G * S), Work::fp);
  m.out_ar->run(o);
  if (rep) lap(&rep->output_cycles);
  return o;
}

std::vector<float> kv_attention_reference(const KvSpec& s, const float* q, const float* keys, const float* values,
                                           int64_t n) {
  const int32_t P = s.P;
  const int64_t S = s.mtk(), G = s.group(), H = s.heads, hd = s.head_dim, kvd = s.kv_dim();
  const std::vector<int64_t> rows = rows_after(s.policy, P, n);
  std::vector<int64_t> start(size_t(P), 0);
  for (int32_t r = 1; r < P; ++r) start[size_t(r)] = start[size_t(r - 1)] + rows[size_t(r - 1)];
  const float* qn = q + (n - 1) * H * hd;  // the last query
  auto qj = [&](int64_t j, int64_t kd) { return qn[((kd / hd) * G + j) * hd + kd % hd]; };
  // Scores per row: for each row, per head: partial over columns c, combined along the row.
  std::vector<float> score(size_t(H * n));
  for (int32_t r = 0; r < P; ++r)
    for (int64_t t = start[size_t(r)]; t < start[size_t(r)] + rows[size_t(r)]; ++t)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t kvh = h / G, j = h % G;
        std::vector<std::vector<float>> parts(size_t(P), std::vector<float>(1, 0.0f));
        for (int32_t c = 0; c < P; ++c) {
          float acc = 0.0f;
          bool any = false;
          for (int64_t e = 0; e < S; ++e) {
            const int64_t kd = int64_t(c) * S + e;
            if (kd >= kvd || kd / hd != kvh) continue;
            acc += qj(j, kd) * keys[t * kvd + kd];
            any = true;
          }
          parts[size_t(c)][0] = any ? acc : 0.0f;
        }
        score[size_t(h * n + t)] = allreduce_line_reference(s.allreduce, parts)[0] / std::sqrt(static_cast<float>(hd));
      }
  // Softmax: max (exact), then per-row sums of exponentials combined along the column.
  std::vector<float> out(size_t(H * hd), 0.0f);
  for (int64_t h = 0; h < H; ++h) {
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t t = 0; t < n; ++t) mx = std::max(mx, score[size_t(h * n + t)]);
    std::vector<std::vector<float>> parts(size_t(P), std::vector<float>(1, 0.0f));
    for (int32_t r = 0; r < P; ++r) {
      float acc = 0.0f;
      for (int64_t t = start[size_t(r)]; t < start[size_t(r)] + rows[size_t(r)]; ++t) {
        score[size_t(h * n + t)] = std::exp(score[size_t(h * n + t)] - mx);
        acc += score[size_t(h * n + t)];
      }
      parts[size_t(r)][0] = acc;
    }
    const float sum = allreduce_line_reference(s.allreduce, parts)[0];
    for (int64_t t = 0; t < n; ++t) score[size_t(h * n + t)] /= sum;
    // Output: per row, per element, sum over the row's tokens; combined along the column.
    const int64_t kvh = h / G;
    for (int64_t d = 0; d < hd; ++d) {
      const int64_t kd = kvh * hd + d;
      std::vector<std::vector<float>> po(size_t(P), std::vector<float>(1, 0.0f));
      for (int32_t r = 0; r < P; ++r) {
        float acc = 0.0f;
        for (int64_t t = start[size_t(r)]; t < start[size_t(r)] + rows[size_t(r)]; ++t)
          acc += score[size_t(h * n + t)] * values[t * kvd + kd];
        po[size_t(r)][0] = acc;
      }
      out[size_t(h * hd + d)] = allreduce_line_reference(s.allreduce, po)[0];
    }
  }
  return out;
}

}  // namespace wm::dist
