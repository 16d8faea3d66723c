#include "wafermesh/model/mesh_transformer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "wafermesh/dist/gemm.hpp"
#include "wafermesh/dist/gemv.hpp"
#include "wafermesh/dist/kv_cache.hpp"
#include "wafermesh/dist/host_io.hpp"
#include "wafermesh/kernels/aligned_buffer.hpp"
#include "wafermesh/kernels/quantize.hpp"
#include "wafermesh/model/mesh_order_reference.hpp"
#include "wafermesh/noc/line_plans.hpp"
#include "wafermesh/noc/tile_buf.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::model {

using dist::AllreduceSpec;
using dist::GemvSpec;
using dist::LineAllreduce;
using dist::MaxFloat;

namespace {

int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Block sizes of one model on P x P regions.
struct Dims {
  int32_t P;
  int64_t dim, hidden, kvd, hd, H, G;
  int64_t mtD, mtH, mtk, mq;  // blocks: dim, hidden, kv_dim, and the (g, mtk) query/output tile
  Dims(const ModelConfig& c, int32_t p)
      : P(p), dim(c.dim), hidden(c.hidden_dim), kvd(c.kv_dim()), hd(c.head_dim()), H(c.heads),
        G(c.heads / c.kv_heads), mtD(cdiv(c.dim, p)), mtH(cdiv(c.hidden_dim, p)), mtk(cdiv(c.kv_dim(), p)),
        mq(cdiv(c.kv_dim(), p) * (c.heads / c.kv_heads)) {}
  // Query/output element i of the (c, j, e) layout (i = c*mq + j*mtk + e) -> index in the model's
  // q vector, or -1 for padding.
  int64_t q_index(int64_t i) const {
    const int64_t c = i / mq, j = (i % mq) / mtk, e = i % mtk, kd = c * mtk + e;
    return kd < kvd ? ((kd / hd) * G + j) * hd + kd % hd : -1;
  }
};

GemvSpec gemv_spec(const Region& R, int64_t M, int64_t K, Axis axis, const AllreduceSpec& ar) {
  GemvSpec s;
  s.P = R.w;
  s.origin = {R.x0, R.y0};
  s.M = M;
  s.K = K;
  s.reduce_axis = axis;
  s.allreduce = ar;
  s.report = false;  // the transformer reads the clocks itself
  return s;
}

// The seven projections' specs of a layer on region R (see the header for the layout).
struct LayerSpecs {
  GemvSpec wq, wk, wv, wo, w1, w2, w3;
  LayerSpecs(const Dims& d, const Region& R, const AllreduceSpec& ar)
      : wq(gemv_spec(R, d.P * d.mq, d.dim, Axis::Y, ar)), wk(gemv_spec(R, d.kvd, d.dim, Axis::Y, ar)),
        wv(gemv_spec(R, d.kvd, d.dim, Axis::Y, ar)), wo(gemv_spec(R, d.dim, d.P * d.mq, Axis::X, ar)),
        w1(gemv_spec(R, d.hidden, d.dim, Axis::Y, ar)), w2(gemv_spec(R, d.dim, d.hidden, Axis::X, ar)),
        w3(gemv_spec(R, d.hidden, d.dim, Axis::Y, ar)) {}
};

// Regions of P x P for the layers, in snake order, starting with the band of regions across the
// middle of the mesh, then bands taken alternately on either side of it. Bands run along the
// mesh's longer axis (rows of regions on a wide mesh, columns on a tall one), so the middle band
// holds as many regions as possible. Decode works on one region at a time, so a region split
// between ranks keeps them all busy: with the rank grid generate picks (preferred_rank_grid) the
// middle band straddles the boundary between rank blocks. The placement depends on nothing but the
// mesh and P, so the virtual figures are the same for every rank count.
struct Bands {
  bool columns = false;
  int32_t b0 = 0;                // offset of the middle band across the bands
  std::vector<Region> regions;   // snake order
  // -1, 0, +1: the region lies before, in, or after the middle band.
  int side(const Region& r) const {
    const int32_t at = columns ? r.x0 : r.y0;
    return at < b0 ? -1 : at > b0 ? 1 : 0;
  }
};

Bands snake_regions(const MeshShape& m, int32_t P) {
  Bands bands;
  bands.columns = m.height > m.width;
  const int32_t across = bands.columns ? m.width : m.height, along = bands.columns ? m.height : m.width;
  bands.b0 = std::max(0, (across - P) / 2);
  const int32_t b0 = bands.b0;
  std::vector<int32_t> starts{b0};
  for (int32_t k = 1; b0 + k * P + P <= across || b0 - k * P >= 0; ++k) {
    if (b0 + k * P + P <= across) starts.push_back(b0 + k * P);
    if (b0 - k * P >= 0) starts.push_back(b0 - k * P);
  }
  const int32_t per_band = along / P;
  for (size_t b = 0; b < starts.size(); ++b)
    for (int32_t i = 0; i < per_band; ++i) {
      const int32_t a = (b % 2 == 0 ? i : per_band - 1 - i) * P;
      bands.regions.push_back(bands.columns ? Region{starts[b], a, P, P} : Region{a, starts[b], P, P});
    }
  return bands;
}

// The classifier's regions compute at once (each a slice of the vocabulary), so they are spread
// over both sides of the middle band: after what is left of the middle band (one chain), regions
// are taken alternately from either side, each side a chain in snake order fed from the end of the
// middle band's. Returns the regions and, per region, the index of the one feeding it (-1: the last
// layer region).
std::pair<std::vector<Region>, std::vector<int32_t>> classifier_order(const Bands& bands, size_t first) {
  std::vector<Region> mid, before, after, out;
  for (size_t i = first; i < bands.regions.size(); ++i) {
    const Region& r = bands.regions[i];
    (bands.side(r) == 0 ? mid : bands.side(r) > 0 ? after : before).push_back(r);
  }
  std::vector<int32_t> source;
  for (const Region& r : mid) {
    source.push_back(int32_t(out.size()) - 1);
    out.push_back(r);
  }
  const int32_t mid_end = int32_t(out.size()) - 1;
  int32_t last_after = mid_end, last_before = mid_end;
  for (size_t i = 0; i < std::max(before.size(), after.size()); ++i) {
    if (i < after.size()) {
      source.push_back(last_after);
      last_after = int32_t(out.size());
      out.push_back(after[i]);
    }
    if (i < before.size()) {
      source.push_back(last_before);
      last_before = int32_t(out.size());
      out.push_back(before[i]);
    }
  }
  return {out, source};
}

std::string kib(uint64_t b) { return std::to_string(b) + " bytes"; }

}  // namespace

// ------------------------------------------------------------------------------------ placement
MeshPlacement MeshTransformer::plan(const MeshShape& mesh, const MachineParams& mp, const ModelConfig& cfg,
                                    const MeshPlacementSpec& spec) {
  const int32_t P = spec.P;
  if (P < 1 || P > mesh.width || P > mesh.height)
    throw UsageError("region side " + std::to_string(P) + " PEs does not fit the " + std::to_string(mesh.width) +
                     " x " + std::to_string(mesh.height) + " mesh");
  const Dims d(cfg, P);
  if (P > 1 && d.mtk % 2 != 0)
    throw UsageError("region side " + std::to_string(P) + " cuts kv_dim " + std::to_string(d.kvd) +
                     " into blocks of " + std::to_string(d.mtk) +
                     " (odd), so RoPE pairs would straddle PEs; choose a region side whose kv block ceil(kv_dim/P) is even");
  if (spec.context < 1)
    throw UsageError("context " + std::to_string(spec.context) + " tokens: must be >= 1");
  MeshPlacement pl;
  const Region probe{0, 0, P, P};
  const LayerSpecs ls(d, probe, spec.allreduce);
  uint64_t weights = 0;
  for (const GemvSpec* s : {&ls.wq, &ls.wk, &ls.wv, &ls.wo, &ls.w1, &ls.w2, &ls.w3})
    weights += dist::gemv_block_bytes(*s, cfg.ternary);
  const bool relu2 = cfg.ffn == "relu2";
  const uint64_t norms = 4 * uint64_t(2 * d.mtD + (relu2 ? d.mq + d.mtH : 0));
  const int64_t cap = dist::KvCache::row_capacity(spec.kv_policy, P, spec.context);
  pl.kv_reserve_bytes_per_pe = uint64_t(cap) * 2 * uint64_t(d.mtk) * 4;
  pl.layer_bytes_per_pe = weights + norms + pl.kv_reserve_bytes_per_pe;
  // Activation scratch live at once during a layer (an upper estimate; the fabric enforces the
  // real figure): vectors, int8 copies, a GEMV's partial sums, allreduce scratch, attention scores.
  const uint64_t widest = uint64_t(std::max({d.mtD, d.mtH, d.mq, d.H * cap}));
  pl.scratch_bytes_per_pe = 4 * uint64_t(4 * d.mtD + 3 * d.mq + 2 * d.mtk + 3 * d.mtH + d.H * cap + 2 * d.H) +
                            2 * 4 * widest + uint64_t(std::max({d.mtD, d.mtH, d.mq})) + 64;
  const uint64_t sram = mp.sram_bytes;
  const std::string where = " on a " + std::to_string(P) + " x " + std::to_string(P) + " region";
  if (pl.layer_bytes_per_pe + pl.scratch_bytes_per_pe > sram)
    throw LimitError("model " + cfg.name + ": one layer needs " + kib(pl.layer_bytes_per_pe + pl.scratch_bytes_per_pe) +
                     " per PE" + where + " (weights " + kib(weights) + ", KV cache for " +
                     std::to_string(spec.context) + " tokens " + kib(pl.kv_reserve_bytes_per_pe) + ", norms " +
                     kib(norms) + ", scratch " + kib(pl.scratch_bytes_per_pe) + "), pe.sram_bytes = " +
                     std::to_string(sram) + ": use a larger region (--region)");
  pl.layers_per_region = int32_t(std::min<uint64_t>(uint64_t(cfg.layers),
                                                    (sram - pl.scratch_bytes_per_pe) / pl.layer_bytes_per_pe));
  const int64_t layer_regions = cdiv(cfg.layers, pl.layers_per_region);
  pl.layers_per_region = int32_t(cdiv(cfg.layers, layer_regions));  // spread evenly
  // Classifier: vocabulary rows per region, fp32 (rows/P x mtD per PE) with its y and scratch.
  const uint64_t cls_fixed = 4 * uint64_t(3 * d.mtD) + 64;
  const uint64_t per_row_block = 4 * uint64_t(d.mtD) + 3 * 4;
  if (sram <= cls_fixed + per_row_block)
    throw LimitError("model " + cfg.name + ": the classifier needs more than " + kib(cls_fixed + per_row_block) +
                     " per PE" + where + ", pe.sram_bytes = " + std::to_string(sram));
  const int64_t rows_per_pe = int64_t((sram - cls_fixed) / per_row_block);
  const int64_t cls_regions = cdiv(cfg.vocab, rows_per_pe * P);
  const Bands bands = snake_regions(mesh, P);
  const std::vector<Region>& all = bands.regions;
  const int64_t need = layer_regions + cls_regions;
  if (need > int64_t(all.size()))
    throw LimitError("model " + cfg.name + " needs " + std::to_string(need) + " regions of " + std::to_string(P) +
                     " x " + std::to_string(P) + " PEs (" + std::to_string(layer_regions) + " for " +
                     std::to_string(cfg.layers) + " layers at " + std::to_string(pl.layers_per_region) +
                     " per region, " + std::to_string(cls_regions) + " for the classifier); the " +
                     std::to_string(mesh.width) + " x " + std::to_string(mesh.height) + " mesh holds " +
                     std::to_string(all.size()));
  for (int64_t i = 0; i < layer_regions; ++i) pl.layer_regions.push_back(all[size_t(i)]);
  for (int64_t l = 0; l < cfg.layers; ++l) pl.region_of_layer.push_back(int32_t(l / pl.layers_per_region));
  const int64_t per = cdiv(cfg.vocab, cls_regions);
  const auto [cls_order, cls_source] = classifier_order(bands, size_t(layer_regions));
  for (int64_t i = 0; i < cls_regions; ++i) {
    pl.classifier_regions.push_back(cls_order[size_t(i)]);
    pl.classifier_source.push_back(cls_source[size_t(i)]);
    pl.classifier_rows.push_back(std::min(per, cfg.vocab - i * per));
  }
  return pl;
}

RankGrid MeshTransformer::preferred_rank_grid(const MeshShape& mesh, int ranks) {
  const bool columns = mesh.height > mesh.width;
  const RankGrid g = choose_rank_grid(mesh, ranks);
  if ((columns ? g.px : g.py) >= 2) return g;
  // The default grid stacks every block along the bands: take the fewest blocks across that fit.
  for (int d = 2; d <= ranks; ++d) {
    if (ranks % d) continue;
    try {
      return columns ? choose_rank_grid(mesh, ranks, d, 0) : choose_rank_grid(mesh, ranks, 0, d);
    } catch (const UsageError&) {
      // d blocks do not fit across the mesh: try more ranks across, or keep the default
    }
  }
  return g;
}

// ------------------------------------------------------------------------------------ the model
namespace {

struct Proj {
  GemvSpec spec;
  std::unique_ptr<dist::MeshGemvTernary> tern;
  std::unique_ptr<dist::MeshGemvF32> fp;
  float gamma = 1.0f;
};

struct Layer {
  int32_t region = 0;
  Proj wq, wk, wv, wo, w1, w2, w3;
  std::unique_ptr<TileBuf<float>> rms_att, rms_ffn, attn_sub, ffn_sub;
  std::unique_ptr<dist::KvCache> kv;
};

// Moving a vector split along Y (block r on every PE of row r) from region A to the next region B
// of the snake: row r sends its block once, from the PE nearest B (A's east column to B's west
// column when B is east of A, mirrored when west, down column r when B is below), and the PE that
// receives it multicasts it along its row. No two transfers share a link or a pass-through PE.
struct Handoff {
  TransferPlan move, bcast;
  int32_t P = 1;
  Handoff(Fabric& f, const Region& A, const Region& B, size_t tile_bytes, const std::string& what) : P(A.w) {
    const bool east = B.y0 == A.y0 && B.x0 == A.x0 + P, west = B.y0 == A.y0 && B.x0 + P == A.x0;
    std::vector<Transfer> mv, bc;
    for (int32_t r = 0; r < P; ++r) {
      const int32_t cs = east ? P - 1 : west ? 0 : r, cd = east ? 0 : west ? P - 1 : r;
      mv.push_back({{A.x0 + cs, A.y0 + r}, {B.x0 + cd, B.y0 + r}, uint32_t(r), 0});
      for (int32_t c = 0; c < P; ++c)
        if (c != cd) bc.push_back({{B.x0 + cd, B.y0 + r}, {B.x0 + c, B.y0 + r}, uint32_t(r), 0});
    }
    move = f.plan(std::move(mv), tile_bytes, what);
    bcast = f.plan(std::move(bc), tile_bytes, what + ": along the rows");
  }
  // The same steps for their clocks only (a vector whose values travel otherwise). Collective.
  void run_timing(Fabric& f) {
    f.execute_timing(move);
    if (P > 1) f.execute_timing(bcast);
  }
  // x (on A) -> into (on B). Collective.
  void run(Fabric& f, const TileBuf<float>& x, TileBuf<float>& into) {
    f.execute(move, x.view(), into.view());
    if (into.region().w > 1) f.execute(bcast, into.view(), into.view());
  }
};

// Round half to even of a float with |v| < 2^22, exactly as std::nearbyint in the default rounding
// mode, without the libm call (the baseline x86-64 ISA has no rounding instruction).
inline float round_even_small(float v) { return (v + 0x1.8p23f) - 0x1.8p23f; }

Axis other(Axis a) { return a == Axis::X ? Axis::Y : Axis::X; }

// The FFN's gate applied to the up projection b: relu(a)^2 * b (BitNet) or silu(a) * b (Llama),
// in ReferenceTransformer's operation order.
inline float gated(float a, float b, bool relu2) {
  if (relu2) a = a > 0.0f ? a * a : 0.0f;
  else a *= 1.0f / (1.0f + std::exp(-a));
  return a * b;
}

// Elementwise work on a vector replicated along `rep` (every PE of a line along `rep` holds the
// same tile): fn(x, y, tile) runs on the first local PE of each such line and the others copy its
// tile. The copies hold the values every PE would compute (same inputs, same code); the caller
// still charges every PE its own work.
template <class T, class Fn>
void per_replica(TileBuf<T>& out, Axis rep, Fn&& fn) {
  const Region& l = out.local();
  if (l.empty()) return;
  const size_t E = out.elems();
  if (rep == Axis::X) {
    for (int32_t y = l.y0; y < l.y0 + l.h; ++y) {
      T* first = out.tile(l.x0, y);
      fn(l.x0, y, first);
      for (int32_t x = l.x0 + 1; x < l.x0 + l.w; ++x) std::copy(first, first + E, out.tile(x, y));
    }
  } else {
    for (int32_t x = l.x0; x < l.x0 + l.w; ++x) fn(x, l.y0, out.tile(x, l.y0));
    for (int32_t y = l.y0 + 1; y < l.y0 + l.h; ++y)
      for (int32_t x = l.x0; x < l.x0 + l.w; ++x) std::copy(out.tile(x, l.y0), out.tile(x, l.y0) + E, out.tile(x, y));
  }
}

// The one-element allreduces of a region (norm sums, absmax scales).
struct RegionOps {
  Region R;
  std::unique_ptr<LineAllreduce<float>> sum_x, sum_y;
  std::unique_ptr<LineAllreduce<MaxFloat>> max_x, max_y;
  RegionOps(Fabric& f, const Region& r, const AllreduceSpec& ar)
      : R(r), sum_x(std::make_unique<LineAllreduce<float>>(f, r, Axis::X, 1, ar)),
        sum_y(std::make_unique<LineAllreduce<float>>(f, r, Axis::Y, 1, ar)),
        max_x(std::make_unique<LineAllreduce<MaxFloat>>(f, r, Axis::X, 1, ar)),
        max_y(std::make_unique<LineAllreduce<MaxFloat>>(f, r, Axis::Y, 1, ar)) {}
};

}  // namespace

struct MeshTransformer::Impl {
  Fabric& f;
  const WeightSource& src;
  ModelConfig cfg;
  MeshPlacementSpec spec;
  MeshPlacement pl;
  Dims d;
  std::vector<RegionOps> ops;  // per layer region
  // This rank's packed ternary weights, one block after another on huge pages (declared before the
  // layers, so it outlives them). Each projection's block is below 2 MiB, so each would otherwise
  // be a separate malloc block on 4 KiB pages, streamed once per token.
  std::unique_ptr<kernels::HugePageArena> weights_arena;
  std::vector<Layer> layers;
  std::unique_ptr<TileBuf<float>> rms_final;  // on the last layer region, split along Y
  std::vector<std::unique_ptr<dist::MeshGemvF32>> classifier;
  std::vector<Handoff> handoffs;      // layer region i -> i + 1
  std::vector<Handoff> cls_handoffs;  // into classifier region i from pl.classifier_source[i]
  std::vector<float> logits;
  TokenCycles last;
  uint64_t prev_end = 0;  // virtual time the previous token's logits were ready
  uint64_t peak_sram = 0, peak_routes = 0;

  Impl(Fabric& fab, const WeightSource& s, const MeshPlacementSpec& sp)
      : f(fab), src(s), cfg(s.config()), spec(sp), pl(plan(fab.mesh(), fab.params(), s.config(), sp)), d(cfg, sp.P) {}

  uint64_t now(const Region& R) {
    const Fabric::Summary s = f.summarize(R);
    peak_sram = std::max(peak_sram, s.max_sram_peak_bytes);
    peak_routes = std::max(peak_routes, s.max_route_peak_entries);
    return s.max_clock_cycles;
  }

  // ---- a position's virtual-time figures, settled once at its end
  // A stamp is a region's latest clock at one point of the position: this rank's maximum over its
  // PEs of the region when taken, the maximum over the ranks once the position settles. A decoded
  // token takes some twenty stamps per layer; one collective for all of them replaces one each,
  // which cost a rendezvous of the ranks every phase. Laps (differences of stamps added to the
  // figures) are recorded meanwhile and applied by settle(), so nothing may read them earlier.
  using Stamp = int32_t;
  enum class LapKind : uint8_t { add, add_positive, gemv };
  struct Lap {
    LapKind kind;
    Stamp from, to;
    uint64_t* bucket;
    uint64_t* rest;     // gemv: the cycles beyond `cap` go here
    uint64_t cap = 0;
  };
  std::vector<uint64_t> stamps;  // local maxima until settle()
  std::vector<Lap> laps;
  uint64_t local_sram_peak = 0, local_route_peak = 0;

  Stamp stamp(const Region& R) {
    const auto [sram, routes] = region_peaks(R);
    local_sram_peak = std::max(local_sram_peak, sram);
    local_route_peak = std::max(local_route_peak, routes);
    stamps.push_back(f.max_clock_local(R));
    return Stamp(stamps.size() - 1);
  }
  // This rank's peak SRAM and routes over R, read again only when some peak has changed.
  struct PeakCache {
    Region R;
    uint64_t version = 0;
    std::pair<uint64_t, uint64_t> peaks;
  };
  std::vector<PeakCache> peak_cache;
  std::pair<uint64_t, uint64_t> region_peaks(const Region& R) {
    for (PeakCache& c : peak_cache)
      if (c.R == R) {
        if (c.version != f.peaks_version()) c = {R, f.peaks_version(), f.peaks_local(R)};
        return c.peaks;
      }
    peak_cache.push_back({R, f.peaks_version(), f.peaks_local(R)});
    return peak_cache.back().peaks;
  }
  // bucket += clock(to) - clock(from) (add_positive: 0 if negative); from becomes to.
  void lap(uint64_t& bucket, Stamp& from, Stamp to, LapKind kind = LapKind::add) {
    laps.push_back({kind, from, to, &bucket, nullptr, 0});
    from = to;
  }
  // A GEMV's lap: its block's multiply-accumulates (`compute` cycles at most) are compute, the
  // rest (its allreduce, adds included) is allreduce.
  void lap_gemv(LayerCycles& lc, Stamp& from, Stamp to, uint64_t compute) {
    laps.push_back({LapKind::gemv, from, to, &lc.compute, &lc.allreduce, compute});
    from = to;
  }
  // Reduces the stamps over the ranks, applies the laps and the peaks, and returns the stamps'
  // clocks. Collective.
  std::vector<uint64_t> settle() {
    const size_t n = stamps.size();
    stamps.push_back(local_sram_peak);
    stamps.push_back(local_route_peak);
    MPI_Allreduce(MPI_IN_PLACE, stamps.data(), int(stamps.size()), MPI_UINT64_T, MPI_MAX, f.comm());
    peak_sram = std::max(peak_sram, stamps[n]);
    peak_routes = std::max(peak_routes, stamps[n + 1]);
    stamps.resize(n);
    for (const Lap& l : laps) {
      const uint64_t a = stamps[size_t(l.from)], b = stamps[size_t(l.to)];
      switch (l.kind) {
        case LapKind::add: *l.bucket += b - a; break;
        case LapKind::add_positive: *l.bucket += b > a ? b - a : 0; break;
        case LapKind::gemv: {
          const uint64_t dt = b - a, comp = std::min(dt, l.cap);
          *l.bucket += comp;
          *l.rest += dt - comp;
          break;
        }
      }
    }
    std::vector<uint64_t> clocks = std::move(stamps);
    discard_stamps();
    return clocks;
  }
  // Forgets the stamps and laps of a position that did not finish (an error thrown mid-way).
  void discard_stamps() {
    stamps.clear();
    laps.clear();
    local_sram_peak = local_route_peak = 0;
  }

  // ---- construction helpers
  // Scratch for one tensor at a time, kept between tensors (no fresh pages per tensor).
  std::vector<float> wbuf, wperm;
  std::vector<int8_t> cbuf, cperm;
  // The weights of projection t of layer l as the GEMVs and GEMMs hold them: (s.M, s.K), ternary
  // codes (with gamma) or floats. kind 0: plain; 1: W_q rows in the (c, j, e) query layout; 2: W_o
  // columns in that layout. The result stays valid until the next call.
  const int8_t* codes = nullptr;
  const float* floats = nullptr;
  void weight_matrix(Tensor t, int64_t l, int kind, int64_t M, int64_t K, float* gamma) {
    GemvSpec s;
    s.M = M;
    s.K = K;
    Proj scratch;
    prepare(scratch, s, t, l, kind);
    if (gamma) *gamma = scratch.gamma;
  }
  void make_proj(Proj& p, const GemvSpec& s, Tensor t, int64_t l, int kind) {
    prepare(p, s, t, l, kind);
    if (cfg.ternary) p.tern = std::make_unique<dist::MeshGemvTernary>(f, s, codes);
    else p.fp = std::make_unique<dist::MeshGemvF32>(f, s, floats);
  }
  void prepare(Proj& p, const GemvSpec& s, Tensor t, int64_t l, int kind) {
    p.spec = s;
    const TensorShape sh = tensor_shape(cfg, t);
    wbuf.resize(size_t(sh.size()));
    if (cfg.ternary) {  // BitLinear: the file's own codes and scale, else one absmean scale for the whole tensor
      cbuf.resize(size_t(sh.size()));
      if (!src.read_ternary(t, l, cbuf.data(), &p.gamma)) {
        src.read_rows(t, l, 0, sh.rows, wbuf.data());
        p.gamma = kernels::quantize_weights_absmean(wbuf.data(), sh.rows, sh.cols, sh.cols, cbuf.data(), sh.cols);
      }
    } else {
      src.read_rows(t, l, 0, sh.rows, wbuf.data());
    }
    auto permute = [&](const auto& in, auto& out) -> const auto& {
      if (kind == 0) return in;
      out.assign(static_cast<size_t>(s.M * s.K), 0);
      if (kind == 1) {
        for (int64_t i = 0; i < s.M; ++i) {
          const int64_t qi = d.q_index(i);
          if (qi >= 0) std::copy(in.begin() + qi * sh.cols, in.begin() + (qi + 1) * sh.cols, out.begin() + i * s.K);
        }
      } else {
        for (int64_t i = 0; i < s.K; ++i) {
          const int64_t qi = d.q_index(i);
          if (qi < 0) continue;
          for (int64_t r = 0; r < s.M; ++r) out[size_t(r * s.K + i)] = in[size_t(r * sh.cols + qi)];
        }
      }
      return out;
    };
    if (cfg.ternary) codes = permute(cbuf, cperm).data();
    else floats = permute(wbuf, wperm).data();
  }
  // A norm weight vector as tiles: split along Y (block r), along X (block c), or in the query
  // layout (c, j, e) along X.
  enum class Lay { y, x, q };
  std::unique_ptr<TileBuf<float>> vector_tiles(const Region& R, const std::vector<float>& v, int64_t block, Lay lay,
                                               const std::string& name) {
    auto t = std::make_unique<TileBuf<float>>(f, R, size_t(block), name);
    t->for_each_local([&](int32_t x, int32_t y, float* o) {
      const int64_t b = lay == Lay::y ? y - R.y0 : x - R.x0;
      for (int64_t e = 0; e < block; ++e) {
        const int64_t i = lay == Lay::q ? d.q_index(b * block + e) : b * block + e;
        o[e] = i >= 0 && i < int64_t(v.size()) ? v[size_t(i)] : 0.0f;
      }
    });
    return t;
  }

  // ---- forward helpers (collective)
  // rmsnorm of v (split along `split`: the sum runs along that axis) times weight w, into out.
  void rmsnorm(TileBuf<float>& out, const TileBuf<float>& v, const TileBuf<float>& w, int64_t n, Axis split,
               RegionOps& o) {
    TileBuf<float> ss(f, v.region(), 1, "rmsnorm sum");
    const size_t E = v.elems();
    const Axis rep = other(split);
    per_replica(ss, rep, [&](int32_t x, int32_t y, float* s) {
      const float* a = v.tile(x, y);
      float acc = 0.0f;
      for (size_t j = 0; j < E; ++j) acc += a[j] * a[j];
      s[0] = acc;
    });
    f.charge_compute(v.region(), E);
    (split == Axis::X ? *o.sum_x : *o.sum_y).run(ss);
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
    f.charge_compute(v.region(), E);
  }

  // BitLinear input: the absmax of the whole vector (a max allreduce along the axis it is split
  // along) and its int8 codes, made once and fed to every projection that reads the vector
  // (W_q, W_k, W_v share one; W_1, W_3 another). Empty for fp32 models.
  struct Quant {
    std::unique_ptr<TileBuf<MaxFloat>> mx;
    std::unique_ptr<TileBuf<int8_t>> q;
  };
  Quant quantize(const TileBuf<float>& x, Axis split, RegionOps& o, LayerCycles& lc, Stamp& t) {
    Quant r;
    if (!cfg.ternary) return r;
    const Region& R = x.region();
    const size_t E = x.elems();
    const Axis rep_in = other(split);  // x is replicated across the axis it is split along
    r.mx = std::make_unique<TileBuf<MaxFloat>>(f, R, 1, "absmax");
    per_replica(*r.mx, rep_in, [&](int32_t px, int32_t py, MaxFloat* m) {
      const float* a = x.tile(px, py);
      float v = 0.0f;
      for (size_t j = 0; j < E; ++j) v = std::max(v, std::fabs(a[j]));
      m[0] = {v};
    });
    f.charge_compute(R, E);
    (split == Axis::X ? *o.max_x : *o.max_y).run(*r.mx);
    r.q = std::make_unique<TileBuf<int8_t>>(f, R, E, "int8 activations", TileBuf<int8_t>::NoInit{});
    per_replica(*r.q, rep_in, [&](int32_t px, int32_t py, int8_t* c) {
      const float s = 127.0f / std::max(r.mx->tile(px, py)[0].v, kernels_floor());
      const float* a = x.tile(px, py);
      for (size_t j = 0; j < E; ++j) c[j] = static_cast<int8_t>(std::clamp(round_even_small(a[j] * s), -127.0f, 127.0f));
    });
    f.charge_compute(R, E);
    lap(lc.allreduce, t, stamp(R));
    return r;
  }

  // ---- prefill (all prompt tokens at once; see the header)
  // Sum of squares of v over blocks of `block` (block b: slots b*block .. of `order`, -1 padding),
  // each block in index order, blocks combined by the allreduce tree: the decode path's norm sums.
  float block_sum_squares(const float* v, const std::vector<int64_t>& order, int64_t block) const {
    std::vector<std::vector<float>> parts(size_t(d.P), std::vector<float>(1, 0.0f));
    for (int32_t b = 0; b < d.P; ++b) {
      float acc = 0.0f;
      for (int64_t e = 0; e < block; ++e) {
        const int64_t i = order[size_t(b * block + e)];
        const float x = i >= 0 ? v[i] : 0.0f;
        acc += x * x;
      }
      parts[size_t(b)][0] = acc;
    }
    return dist::allreduce_line_reference(spec.allreduce, parts)[0];
  }
  // Rows of X (n, cols) normed with weight w (cols), the decode path's expression; the mean of the
  // squares is over `count` elements (the model's width, not the padded one).
  void prefill_rmsnorm(std::vector<float>& out, const std::vector<float>& X, int64_t n, int64_t cols, int64_t count,
                       const float* w, const std::vector<int64_t>& order, int64_t block) const {
    const float eps = static_cast<float>(cfg.norm_eps);
    for (int64_t t = 0; t < n; ++t) {
      float s = block_sum_squares(X.data() + t * cols, order, block);
      s /= static_cast<float>(count);
      s += eps;
      s = 1.0f / std::sqrt(s);
      for (int64_t j = 0; j < cols; ++j) out[size_t(t * cols + j)] = w[j] * (s * X[size_t(t * cols + j)]);
    }
  }
  // A MeshGEMM C (M, N) = A (M, K) . B (or B^T with tb) on region R.
  dist::GemmSpec gemm_spec(const Region& R, int64_t M, int64_t K, int64_t N, bool tb) const {
    dist::GemmSpec gs;
    gs.algo = dist::GemmAlgo::meshgemm;
    gs.P = d.P;
    gs.origin = {R.x0, R.y0};
    gs.M = M;
    gs.K = K;
    gs.N = N;
    gs.transpose_b = tb;
    return gs;
  }
  // Y (n, M) = X (n, K) . W^T for projection t of layer l as a MeshGEMM on region R (transposed
  // variant: W is never transposed); ternary: BitLinear per token, exactly the decode path's values.
  std::vector<float> prefill_project(const Region& R, Tensor t, int64_t l, int kind, int64_t M, int64_t K,
                                     const std::vector<float>& X, int64_t n, LayerCycles& lc, Stamp& clk) {
    float gamma = 1.0f;
    weight_matrix(t, l, kind, M, K, &gamma);
    const dist::GemmSpec gs = gemm_spec(R, n, K, M, true);
    std::vector<float> Y(static_cast<size_t>(n * M));
    dist::GemmReport rep;
    if (cfg.ternary) {
      std::vector<int8_t> A(static_cast<size_t>(n * K));
      std::vector<float> s(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) {
        float amax = 0.0f;
        for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(X[size_t(i * K + k)]));
        s[size_t(i)] = 127.0f / std::max(amax, kernels_floor());
        for (int64_t k = 0; k < K; ++k)
          A[size_t(i * K + k)] = static_cast<int8_t>(std::clamp(round_even_small(X[size_t(i * K + k)] * s[size_t(i)]), -127.0f, 127.0f));
      }
      std::vector<int32_t> C(static_cast<size_t>(n * M));
      rep = dist::gemm_ternary(f, gs, A.data(), codes, C.data());
      dist::broadcast_from_rank0(f, C);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < M; ++j) Y[size_t(i * M + j)] = static_cast<float>(C[size_t(i * M + j)]) / s[size_t(i)] * gamma;
    } else {
      rep = dist::gemm_f32(f, gs, X.data(), floats, Y.data());
      dist::broadcast_from_rank0(f, Y);
    }
    lap_gemv(lc, clk, stamp(R), rep.compute_cycles);
    return Y;
  }

  // y = W x for projection p; x split along p's reduce axis (xq: its BitLinear codes). Adds cycles
  // to the layer figures.
  TileBuf<float> project(Proj& p, const TileBuf<float>& x, const Quant& xq, LayerCycles& lc, Stamp& t) {
    const Region& R = x.region();
    if (!cfg.ternary) {
      TileBuf<float> y = p.fp->run_tiles(x, nullptr);
      account_gemv(R, p.spec, lc, t);
      return y;
    }
    TileBuf<int32_t> yi = p.tern->run_tiles(*xq.q, nullptr);
    account_gemv(R, p.spec, lc, t);
    TileBuf<float> y(f, R, yi.elems(), "projection output", TileBuf<float>::NoInit{});
    const size_t M = yi.elems();
    per_replica(y, p.spec.reduce_axis, [&](int32_t px, int32_t py, float* r) {  // y replicated along it
      const float s = 127.0f / std::max(xq.mx->tile(px, py)[0].v, kernels_floor());
      const int32_t* a = yi.tile(px, py);
      for (size_t j = 0; j < M; ++j) r[j] = static_cast<float>(a[j]) / s * p.gamma;
    });
    f.charge_compute(R, M);
    return y;
  }
  static float kernels_floor() { return 1e-5f; }  // kernels::kQuantScaleFloor
  void account_gemv(const Region& R, const GemvSpec& g, LayerCycles& lc, Stamp& t) {
    lap_gemv(lc, t, stamp(R), f.cost().compute_cycles(uint64_t(cdiv(g.M, g.P) * cdiv(g.K, g.P))));
  }

  void layer_forward(Layer& L, TileBuf<float>& x, int pos, LayerCycles& lc) {
    RegionOps& o = ops[size_t(L.region)];
    const Region& R = o.R;
    const bool relu2 = cfg.ffn == "relu2";
    Stamp t = stamp(R);
    auto lap = [&](uint64_t& bucket) { this->lap(bucket, t, stamp(R)); };
    // ---- attention
    TileBuf<float> xb(f, R, size_t(d.mtD), "normed x");
    rmsnorm(xb, x, *L.rms_att, d.dim, Axis::Y, o);
    lap(lc.allreduce);
    auto xq = std::make_unique<Quant>(quantize(xb, Axis::Y, o, lc, t));
    TileBuf<float> q = project(L.wq, xb, *xq, lc, t);
    TileBuf<float> k = project(L.wk, xb, *xq, lc, t);
    TileBuf<float> v = project(L.wv, xb, *xq, lc, t);
    xq.reset();
    // RoPE on the (g, mtk) query tiles and the key tiles: pairs (kd, kd + 1), kd even, of kv dims.
    const float theta = static_cast<float>(cfg.rope_theta);
    auto rope = [&](int32_t px, float* t, int64_t vectors) {  // `vectors` consecutive blocks of mtk
      const int64_t c = px - R.x0;
      for (int64_t e = 0; e + 1 < d.mtk; e += 2) {
        const int64_t kd = c * d.mtk + e;
        if (kd >= d.kvd) break;
        const int64_t hdi = kd % d.hd;
        const float freq = 1.0f / std::pow(theta, static_cast<float>(hdi) / static_cast<float>(d.hd));
        const float val = static_cast<float>(pos) * freq;
        const float fcr = std::cos(val), fci = std::sin(val);
        for (int64_t j = 0; j < vectors; ++j) {
          float* vec = t + j * d.mtk;
          const float v0 = vec[e], v1 = vec[e + 1];
          vec[e] = v0 * fcr - v1 * fci;
          vec[e + 1] = v0 * fci + v1 * fcr;
        }
      }
    };
    per_replica(q, Axis::Y, [&](int32_t px, int32_t, float* t) { rope(px, t, d.G); });
    per_replica(k, Axis::Y, [&](int32_t px, int32_t, float* t) { rope(px, t, 1); });
    f.charge_compute(R, uint64_t(4 * (d.G + 1) * d.mtk));
    lap(lc.compute);
    L.kv->append(k, v);
    TileBuf<float> att = L.kv->attention(q);
    lap(lc.kv);
    if (relu2) {
      rmsnorm(att, att, *L.attn_sub, d.dim, Axis::X, o);
      lap(lc.allreduce);
    }
    {
      TileBuf<float> y = project(L.wo, att, quantize(att, Axis::X, o, lc, t), lc, t);
      add_into(x, y);
      lap(lc.compute);
    }
    // ---- feed-forward
    rmsnorm(xb, x, *L.rms_ffn, d.dim, Axis::Y, o);
    lap(lc.allreduce);
    xq = std::make_unique<Quant>(quantize(xb, Axis::Y, o, lc, t));
    TileBuf<float> h = project(L.w1, xb, *xq, lc, t);
    {
      TileBuf<float> h3 = project(L.w3, xb, *xq, lc, t);
      xq.reset();
      const size_t E = h.elems();
      per_replica(h, Axis::Y, [&](int32_t px, int32_t py, float* a) {
        const float* b = h3.tile(px, py);
        for (size_t j = 0; j < E; ++j) a[j] = gated(a[j], b[j], relu2);
      });
      f.charge_compute(R, 3 * E);
      lap(lc.compute);
    }
    if (relu2) {
      rmsnorm(h, h, *L.ffn_sub, d.hidden, Axis::X, o);
      lap(lc.allreduce);
    }
    TileBuf<float> y = project(L.w2, h, quantize(h, Axis::X, o, lc, t), lc, t);
    add_into(x, y);
    lap(lc.compute);
  }
  // Final norm of x (split along Y on the last layer region) and the logits of every classifier
  // region into `logits`; sets tc.classifier and prev_end. Collective.
  void classify(std::unique_ptr<TileBuf<float>>& x, TokenCycles& tc) {
    const Region& RL = pl.layer_regions.back();
    const Stamp t = stamp(RL);
    TileBuf<float> xn(f, RL, size_t(d.mtD), "final norm");
    rmsnorm(xn, *x, *rms_final, cfg.dim, Axis::Y, ops.back());
    x.reset();
    std::vector<std::unique_ptr<TileBuf<float>>> in;
    for (const Region& c : pl.classifier_regions)
      in.push_back(std::make_unique<TileBuf<float>>(f, c, size_t(d.mtD), "classifier input"));
    for (size_t i = 0; i < in.size(); ++i) {
      const int32_t src = pl.classifier_source[i];
      cls_handoffs[i].run(f, src < 0 ? xn : *in[size_t(src)], *in[i]);
    }
    // Every region's GEMV first, then the collectives that read the logits and clocks: a region
    // inside one rank's block involves no other rank, so the ranks work on their regions at once.
    std::vector<TileBuf<float>> ys;
    ys.reserve(in.size());
    for (size_t i = 0; i < in.size(); ++i) ys.push_back(classifier[i]->run_tiles(*in[i], nullptr));
    std::vector<Stamp> ends;
    std::vector<const TileBuf<float>*> outs;
    for (size_t i = 0; i < in.size(); ++i) {
      ends.push_back(stamp(pl.classifier_regions[i]));
      outs.push_back(&ys[i]);
    }
    // Each region's logits are the first classifier_rows[i] values of its row 0.
    const std::vector<float> rows = dist::read_rows_everywhere(f, outs, 0);
    int64_t row0 = 0;
    size_t at = 0;
    for (size_t i = 0; i < in.size(); ++i) {
      std::copy(rows.begin() + std::ptrdiff_t(at), rows.begin() + std::ptrdiff_t(at) + pl.classifier_rows[i],
                logits.begin() + row0);
      row0 += pl.classifier_rows[i];
      at += size_t(ys[i].region().w) * ys[i].elems();
    }
    const std::vector<uint64_t> clocks = settle();
    uint64_t end = 0;
    for (Stamp e : ends) end = std::max(end, clocks[size_t(e)]);
    tc.classifier = end - clocks[size_t(t)];
    prev_end = end;
  }

  void check_token(int tok) const {
    if (tok < 0 || tok >= cfg.vocab)
      throw UsageError("token " + std::to_string(tok) + " outside the vocabulary [0, " + std::to_string(cfg.vocab) + ")");
  }
  // A token (or a prompt) enters the first region from the host once the previous logits are out
  // (sampling happens off the wafer): the region's clocks start there. Returns that start.
  uint64_t begin_token() {
    discard_stamps();
    dist::sync_ranks(f);
    const Region& R0 = pl.layer_regions.front();
    f.advance_clocks(R0, prev_end);
    const uint64_t start = std::max(prev_end, now(R0));
    f.advance_clocks(R0, start);
    return start;
  }
  // The residual stream v (dim), split along Y, as tiles on region R.
  std::unique_ptr<TileBuf<float>> residual_tiles(const Region& R, const float* v) {
    auto x = std::make_unique<TileBuf<float>>(f, R, size_t(d.mtD), "residual stream");
    x->for_each_local([&](int32_t, int32_t py, float* o) {
      for (int64_t e = 0; e < d.mtD; ++e) {
        const int64_t i = (py - R.y0) * d.mtD + e;
        o[e] = i < d.dim ? v[i] : 0.0f;
      }
    });
    return x;
  }
  // The logits of x's token (classify), the token's figures, and the emulation's wall time.
  const float* end_token(std::unique_ptr<TileBuf<float>>& x, TokenCycles& tc, uint64_t start,
                         std::chrono::steady_clock::time_point w0) {
    classify(x, tc);
    tc.total = prev_end - start;
    tc.wall_s = dist::max_over_ranks(f, std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count());
    last = std::move(tc);
    return logits.data();
  }

  void add_into(TileBuf<float>& x, const TileBuf<float>& y) {
    const size_t E = x.elems();
    per_replica(x, Axis::X, [&](int32_t px, int32_t py, float* a) {  // x is split along Y
      const float* b = y.tile(px, py);
      for (size_t j = 0; j < E; ++j) a[j] += b[j];
    });
    f.charge_compute(x.region(), E);
  }
};

MeshTransformer::MeshTransformer(Fabric& f, const WeightSource& source, const MeshPlacementSpec& spec,
                                 const ProgressFn& progress)
    : impl_(std::make_unique<Impl>(f, source, spec)) {
  Impl& m = *impl_;
  const ModelConfig& cfg = m.cfg;
  const Dims& d = m.d;
  const bool relu2 = cfg.ffn == "relu2";
  f.hold_peaks(true);
  for (const Region& R : m.pl.layer_regions) m.ops.emplace_back(f, R, spec.allreduce);
  m.layers.resize(size_t(cfg.layers));
  if (cfg.ternary) {
    // Room for every local PE's packed block (the rank's fused matrices take about as much), with
    // a margin; only what is touched is committed, and a full arena falls back to the heap.
    uint64_t bytes = 0;
    for (int64_t l = 0; l < cfg.layers; ++l) {
      const Region& R = m.pl.layer_regions[size_t(m.pl.region_of_layer[size_t(l)])];
      const LayerSpecs ls(d, R, spec.allreduce);
      for (const GemvSpec* s : {&ls.wq, &ls.wk, &ls.wv, &ls.wo, &ls.w1, &ls.w2, &ls.w3})
        bytes += dist::gemv_block_bytes(*s, true) * uint64_t(R.intersect(f.block()).size());
    }
    m.weights_arena = std::make_unique<kernels::HugePageArena>(bytes + bytes / 4 + (uint64_t(4) << 20));
  }
  for (int64_t l = 0; l < cfg.layers; ++l) {
    if (progress) progress("placing layer " + std::to_string(l + 1) + "/" + std::to_string(cfg.layers));
    Layer& L = m.layers[size_t(l)];
    L.region = m.pl.region_of_layer[size_t(l)];
    const Region& R = m.pl.layer_regions[size_t(L.region)];
    const LayerSpecs ls(d, R, spec.allreduce);
    {
      std::optional<kernels::ArenaScope> scope;
      if (m.weights_arena) scope.emplace(*m.weights_arena);
      m.make_proj(L.wq, ls.wq, Tensor::wq, l, 1);
      m.make_proj(L.wk, ls.wk, Tensor::wk, l, 0);
      m.make_proj(L.wv, ls.wv, Tensor::wv, l, 0);
      m.make_proj(L.wo, ls.wo, Tensor::wo, l, 2);
      m.make_proj(L.w1, ls.w1, Tensor::w1, l, 0);
      m.make_proj(L.w2, ls.w2, Tensor::w2, l, 0);
      m.make_proj(L.w3, ls.w3, Tensor::w3, l, 0);
    }
    using Lay = Impl::Lay;
    L.rms_att = m.vector_tiles(R, source.read_tensor(Tensor::rms_att, l), d.mtD, Lay::y, "rms_att weights");
    L.rms_ffn = m.vector_tiles(R, source.read_tensor(Tensor::rms_ffn, l), d.mtD, Lay::y, "rms_ffn weights");
    if (relu2) {
      L.attn_sub = m.vector_tiles(R, source.read_tensor(Tensor::attn_sub_norm, l), d.mq, Lay::q, "attn_sub_norm");
      L.ffn_sub = m.vector_tiles(R, source.read_tensor(Tensor::ffn_sub_norm, l), d.mtH, Lay::x, "ffn_sub_norm");
    }
    dist::KvSpec gs;
    gs.policy = spec.kv_policy;
    gs.P = spec.P;
    gs.origin = {R.x0, R.y0};
    gs.heads = cfg.heads;
    gs.kv_heads = cfg.kv_heads;
    gs.head_dim = d.hd;
    gs.allreduce = spec.allreduce;
    L.kv = std::make_unique<dist::KvCache>(f, gs);
  }
  const Region& last = m.pl.layer_regions.back();
  m.rms_final = m.vector_tiles(last, source.read_tensor(Tensor::rms_final, 0), d.mtD, Impl::Lay::y, "rms_final");
  // Classifier regions: rows of the tied embedding, fp32.
  int64_t row0 = 0;
  for (size_t i = 0; i < m.pl.classifier_regions.size(); ++i) {
    if (progress)
      progress("placing classifier " + std::to_string(i + 1) + "/" + std::to_string(m.pl.classifier_regions.size()));
    const int64_t rows = m.pl.classifier_rows[i];
    std::vector<float>& e = m.wbuf;  // the layers' scratch: no fresh, zeroed pages per region
    e.resize(static_cast<size_t>(rows * cfg.dim));
    source.read_rows(Tensor::token_embedding, 0, row0, rows, e.data());
    m.classifier.push_back(std::make_unique<dist::MeshGemvF32>(
        f, gemv_spec(m.pl.classifier_regions[i], rows, cfg.dim, Axis::Y, spec.allreduce), e.data()));
    row0 += rows;
  }
  // Hand-offs between consecutive regions of the snake; the classifier regions form chains.
  const size_t tb = size_t(d.mtD) * sizeof(float);
  for (size_t i = 0; i + 1 < m.pl.layer_regions.size(); ++i)
    m.handoffs.emplace_back(f, m.pl.layer_regions[i], m.pl.layer_regions[i + 1], tb,
                            "hand-off to layer region " + std::to_string(i + 1));
  for (size_t i = 0; i < m.pl.classifier_regions.size(); ++i) {
    const int32_t src = m.pl.classifier_source[i];
    m.cls_handoffs.emplace_back(f, src < 0 ? last : m.pl.classifier_regions[size_t(src)], m.pl.classifier_regions[i],
                                tb, "hand-off to classifier region " + std::to_string(i));
  }
  m.logits.resize(size_t(cfg.vocab));
  for (const Region& R : m.pl.layer_regions) m.now(R);
  for (const Region& R : m.pl.classifier_regions) m.now(R);
}

MeshTransformer::~MeshTransformer() {
  if (impl_) impl_->f.hold_peaks(false);
}

const float* MeshTransformer::forward(int token, int pos) {
  Impl& m = *impl_;
  Fabric& f = m.f;
  const ModelConfig& cfg = m.cfg;
  const Dims& d = m.d;
  m.check_token(token);
  if (pos != m.layers.front().kv->tokens())
    throw std::logic_error("MeshTransformer::forward: positions must come in order");
  const uint64_t start = m.begin_token();
  const auto w0 = std::chrono::steady_clock::now();
  TokenCycles tc;
  tc.layers.resize(size_t(cfg.layers));
  std::vector<float> emb(static_cast<size_t>(cfg.dim));
  m.src.read_rows(Tensor::token_embedding, 0, token, 1, emb.data());
  auto x = m.residual_tiles(m.pl.layer_regions.front(), emb.data());
  int32_t cur = 0;
  for (int64_t l = 0; l < cfg.layers; ++l) {
    Layer& L = m.layers[size_t(l)];
    if (L.region != cur) {  // move x to the next region: one column, then along the rows
      const Region& Rn = m.pl.layer_regions[size_t(L.region)];
      Impl::Stamp t0 = m.stamp(x->region());
      auto nx = std::make_unique<TileBuf<float>>(f, Rn, size_t(d.mtD), "residual stream");
      m.handoffs[size_t(cur)].run(f, *x, *nx);
      x = std::move(nx);
      m.lap(tc.handoff, t0, m.stamp(Rn), Impl::LapKind::add_positive);
      cur = L.region;
    }
    m.layer_forward(L, *x, pos, tc.layers[size_t(l)]);
  }
  return m.end_token(x, tc, start, w0);
}

const float* MeshTransformer::prefill(const std::vector<int>& tokens) {
  Impl& m = *impl_;
  Fabric& f = m.f;
  const ModelConfig& cfg = m.cfg;
  const Dims& d = m.d;
  const int64_t n = int64_t(tokens.size());
  if (n == 0) throw std::logic_error("MeshTransformer::prefill: no tokens");
  if (m.layers.front().kv->tokens() != 0) throw std::logic_error("MeshTransformer::prefill: the KV caches are not empty");
  if (n == 1) return forward(tokens[0], 0);
  for (int tok : tokens) m.check_token(tok);
  const uint64_t start = m.begin_token();
  const auto w0 = std::chrono::steady_clock::now();
  TokenCycles tc;
  tc.layers.resize(size_t(cfg.layers));
  const int64_t dim = d.dim, hid = d.hidden, kvd = d.kvd, hd = d.hd, G = d.G, Pq = int64_t(d.P) * d.mq;
  const int64_t nb = (n + d.P - 1) / d.P;  // tokens per row block of the prefill layout
  const bool relu2 = cfg.ffn == "relu2";
  const float theta = static_cast<float>(cfg.rope_theta);
  // Slot orders of the blocks the decode path sums over (norms): dims, hidden, the query layout.
  std::vector<int64_t> dlay(size_t(d.P * d.mtD), -1), hlay(size_t(d.P * d.mtH), -1), qlay(size_t(Pq), -1);
  for (int64_t i = 0; i < dim; ++i) dlay[size_t(i)] = i;
  for (int64_t i = 0; i < hid; ++i) hlay[size_t(i)] = i;
  for (int64_t i = 0; i < Pq; ++i) qlay[size_t(i)] = d.q_index(i);
  std::vector<float> X(static_cast<size_t>(n * dim)), XB(X.size());
  for (int64_t t = 0; t < n; ++t) m.src.read_rows(Tensor::token_embedding, 0, tokens[size_t(t)], 1, X.data() + t * dim);
  int32_t cur = 0;
  for (int64_t l = 0; l < cfg.layers; ++l) {
    Layer& L = m.layers[size_t(l)];
    LayerCycles& lc = tc.layers[size_t(l)];
    if (L.region != cur) {  // the tokens' vectors move to the next region one after another
      Impl::Stamp t0 = m.stamp(m.pl.layer_regions[size_t(cur)]);
      for (int64_t t = 0; t < n; ++t) m.handoffs[size_t(cur)].run_timing(f);
      m.lap(tc.handoff, t0, m.stamp(m.pl.layer_regions[size_t(L.region)]), Impl::LapKind::add_positive);
      cur = L.region;
    }
    const Region& R = m.pl.layer_regions[size_t(L.region)];
    Impl::Stamp clk = m.stamp(R);
    auto lap = [&](uint64_t& bucket) { m.lap(bucket, clk, m.stamp(R)); };
    // Norm sums and absmax scales of the prefill layout (tokens along Y, features along X) are
    // row allreduces of one value per token of the row block; their values are computed here in
    // the decode path's order, the allreduces run for their clocks.
    dist::LineAllreduce<float> norm_ar(f, R, Axis::X, size_t(nb), m.spec.allreduce);
    dist::LineAllreduce<MaxFloat> max_ar(f, R, Axis::X, size_t(nb), m.spec.allreduce);
    auto charge_norm = [&](int64_t block) {
      f.charge_compute(R, uint64_t(nb * block));
      norm_ar.run_timing();
      f.charge_compute(R, uint64_t(nb * block));
      if (cfg.ternary) max_ar.run_timing();
      lap(lc.allreduce);
    };
    const std::vector<float> rms_att = m.src.read_tensor(Tensor::rms_att, l), rms_ffn = m.src.read_tensor(Tensor::rms_ffn, l);
    m.prefill_rmsnorm(XB, X, n, dim, dim, rms_att.data(), dlay, d.mtD);
    charge_norm(d.mtD);
    std::vector<float> Qp = m.prefill_project(R, Tensor::wq, l, 1, Pq, dim, XB, n, lc, clk);
    std::vector<float> K = m.prefill_project(R, Tensor::wk, l, 0, kvd, dim, XB, n, lc, clk);
    std::vector<float> V = m.prefill_project(R, Tensor::wv, l, 0, kvd, dim, XB, n, lc, clk);
    // RoPE on every token's query and key, as the decode path.
    for (int64_t t = 0; t < n; ++t) {
      float* q = Qp.data() + t * Pq;
      float* k = K.data() + t * kvd;
      for (int64_t kd = 0; kd + 1 < kvd; kd += 2) {
        const float freq = 1.0f / std::pow(theta, static_cast<float>(kd % hd) / static_cast<float>(hd));
        const float val = static_cast<float>(t) * freq;
        const float fcr = std::cos(val), fci = std::sin(val);
        auto rot = [&](float* v0p, float* v1p) {
          const float v0 = *v0p, v1 = *v1p;
          *v0p = v0 * fcr - v1 * fci;
          *v1p = v0 * fci + v1 * fcr;
        };
        rot(k + kd, k + kd + 1);
        const int64_t c = kd / d.mtk, e = kd % d.mtk;
        for (int64_t j = 0; j < G; ++j) rot(q + c * d.mq + j * d.mtk + e, q + c * d.mq + j * d.mtk + e + 1);
      }
    }
    f.charge_compute(R, uint64_t(4 * (G + 1) * d.mtk * nb));
    lap(lc.compute);
    // The layout switch to decode: the prompt's keys and values enter the decode KV cache.
    for (int64_t t = 0; t < n; ++t) {
      TileBuf<float> kt(f, R, size_t(d.mtk), "prefill k"), vt(f, R, size_t(d.mtk), "prefill v");
      auto fill_kv = [&](TileBuf<float>& tb, const float* src) {
        tb.for_each_local([&](int32_t px, int32_t, float* o) {
          for (int64_t e = 0; e < d.mtk; ++e) {
            const int64_t kd = (px - R.x0) * d.mtk + e;
            o[e] = kd < kvd ? src[kd] : 0.0f;
          }
        });
      };
      fill_kv(kt, K.data() + t * kvd);
      fill_kv(vt, V.data() + t * kvd);
      L.kv->append(kt, vt);
    }
    lap(lc.kv);
    // Attention per query head as two MeshGEMMs: S = Q_h K_kvh^T (transposed variant), the causal
    // softmax with row allreduces (max, sum), O_h = A V_kvh.
    std::vector<float> O(static_cast<size_t>(n * Pq), 0.0f);  // (n, P * mq) in the query layout
    {
      dist::LineAllreduce<float> row_ar(f, R, Axis::X, size_t(nb), m.spec.allreduce);
      auto slot = [&](int64_t kd, int64_t j) { return (kd / d.mtk) * d.mq + j * d.mtk + kd % d.mtk; };
      auto gemm = [&](int64_t M, int64_t Kd, int64_t N, bool tb, const std::vector<float>& A,
                      const std::vector<float>& B) {
        std::vector<float> C(static_cast<size_t>(M * N));
        dist::gemm_f32(f, m.gemm_spec(R, M, Kd, N, tb), A.data(), B.data(), C.data());
        dist::broadcast_from_rank0(f, C);
        return C;
      };
      std::vector<float> Qh(static_cast<size_t>(n * hd)), Kh(Qh.size()), Vh(Qh.size());
      for (int64_t kvh = 0; kvh < cfg.kv_heads; ++kvh) {
        for (int64_t t = 0; t < n; ++t)
          for (int64_t dd = 0; dd < hd; ++dd) {
            Kh[size_t(t * hd + dd)] = K[size_t(t * kvd + kvh * hd + dd)];
            Vh[size_t(t * hd + dd)] = V[size_t(t * kvd + kvh * hd + dd)];
          }
        for (int64_t j = 0; j < G; ++j) {
          for (int64_t t = 0; t < n; ++t)
            for (int64_t dd = 0; dd < hd; ++dd) Qh[size_t(t * hd + dd)] = Qp[size_t(t * Pq + slot(kvh * hd + dd, j))];
          std::vector<float> S = gemm(n, hd, n, true, Qh, Kh);
          causal_softmax_mesh_order(S, n, hd, d.P, m.spec.allreduce);
          f.charge_compute(R, uint64_t(3 * nb * nb));
          row_ar.run_timing();  // row max
          row_ar.run_timing();  // row sum
          const std::vector<float> Oh = gemm(n, n, hd, false, S, Vh);
          for (int64_t t = 0; t < n; ++t)
            for (int64_t dd = 0; dd < hd; ++dd) O[size_t(t * Pq + slot(kvh * hd + dd, j))] = Oh[size_t(t * hd + dd)];
        }
      }
    }
    lap(lc.kv);
    if (relu2) {
      const std::vector<float> sub = m.src.read_tensor(Tensor::attn_sub_norm, l);
      std::vector<float> subp(static_cast<size_t>(Pq), 0.0f);
      std::vector<int64_t> ident(static_cast<size_t>(Pq));
      for (int64_t i = 0; i < Pq; ++i) {
        ident[size_t(i)] = i;
        if (qlay[size_t(i)] >= 0) subp[size_t(i)] = sub[size_t(qlay[size_t(i)])];
      }
      m.prefill_rmsnorm(O, O, n, Pq, dim, subp.data(), ident, d.mq);
      charge_norm(d.mq);
    }
    {
      const std::vector<float> Y = m.prefill_project(R, Tensor::wo, l, 2, dim, Pq, O, n, lc, clk);
      for (size_t i = 0; i < X.size(); ++i) X[i] += Y[i];
      f.charge_compute(R, uint64_t(nb * d.mtD));
      lap(lc.compute);
    }
    m.prefill_rmsnorm(XB, X, n, dim, dim, rms_ffn.data(), dlay, d.mtD);
    charge_norm(d.mtD);
    std::vector<float> H1 = m.prefill_project(R, Tensor::w1, l, 0, hid, dim, XB, n, lc, clk);
    {
      const std::vector<float> H3 = m.prefill_project(R, Tensor::w3, l, 0, hid, dim, XB, n, lc, clk);
      for (size_t i = 0; i < H1.size(); ++i) H1[i] = gated(H1[i], H3[i], relu2);
      f.charge_compute(R, uint64_t(3 * nb * d.mtH));
      lap(lc.compute);
    }
    if (relu2) {
      const std::vector<float> sub = m.src.read_tensor(Tensor::ffn_sub_norm, l);
      m.prefill_rmsnorm(H1, H1, n, hid, hid, sub.data(), hlay, d.mtH);
      charge_norm(d.mtH);
    }
    const std::vector<float> Y = m.prefill_project(R, Tensor::w2, l, 0, dim, hid, H1, n, lc, clk);
    for (size_t i = 0; i < X.size(); ++i) X[i] += Y[i];
    f.charge_compute(R, uint64_t(nb * d.mtD));
    lap(lc.compute);
  }
  // The last token's vector, split along Y on the last layer region, to the classifier.
  auto x = m.residual_tiles(m.pl.layer_regions.back(), X.data() + (n - 1) * dim);
  return m.end_token(x, tc, start, w0);
}

const TokenCycles& MeshTransformer::last_token() const { return impl_->last; }
const MeshPlacement& MeshTransformer::placement() const { return impl_->pl; }
const ModelConfig& MeshTransformer::config() const { return impl_->cfg; }
uint64_t MeshTransformer::peak_sram_bytes() const { return impl_->peak_sram; }
uint64_t MeshTransformer::peak_route_entries() const { return impl_->peak_routes; }
bool MeshTransformer::classifier_host_bf16() const {
  return std::all_of(impl_->classifier.begin(), impl_->classifier.end(), [](const auto& c) { return c->host_bf16(); });
}

}  // namespace wm::model
