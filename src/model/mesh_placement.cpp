// Placement of a model on the mesh: which regions hold which layers and the classifier
// (MeshTransformer::plan), and the rank grid that keeps the most ranks busy during decode.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "mesh_layout.hpp"
#include "wafermesh/dist/kv_cache.hpp"
#include "wafermesh/model/mesh_transformer.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::model {

namespace {

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

std::string bytes_text(uint64_t b) { return std::to_string(b) + " bytes"; }

}  // namespace

MeshPlacement MeshTransformer::plan(const MeshShape& mesh, const MachineParams& mp, const ModelConfig& cfg,
                                    const MeshPlacementSpec& spec) {
  const int32_t P = spec.P;
  if (P < 1 || P > mesh.width || P > mesh.height)
    throw UsageError("region side " + std::to_string(P) + " PEs does not fit the " + std::to_string(mesh.width) +
                     " x " + std::to_string(mesh.height) + " mesh");
  const MeshDims d(cfg, P);
  if (spec.context < 1)
    throw UsageError("context " + std::to_string(spec.context) + " tokens: must be >= 1");
  MeshPlacement pl;
  const Region probe{0, 0, P, P};
  uint64_t weights = 0;
  const ProjectionSpecs projections(d, probe, spec.allreduce);  // named: all() points into it
  for (const dist::GemvSpec* s : projections.all())
    weights += dist::gemv_block_bytes(*s, cfg.ternary, mp);
  const bool relu2 = cfg.ffn == "relu2";
  const uint64_t fp = mp.wafer_fp_bytes();  // an fp element on the wafer (wafer.dtype)
  const uint64_t norms = fp * uint64_t(2 * d.dim_block + (relu2 ? d.query_block + d.hidden_block : 0));
  const int64_t cap = dist::KvCache::row_capacity(spec.kv_policy, P, spec.context);
  pl.kv_reserve_bytes_per_pe = uint64_t(cap) * 2 * uint64_t(d.kv_block) * fp;
  pl.layer_bytes_per_pe = weights + norms + pl.kv_reserve_bytes_per_pe;
  // Activation scratch live at once during a layer (an upper estimate; the fabric enforces the
  // real figure): vectors, int8 copies, a GEMV's partial sums, allreduce scratch, attention scores.
  // Counted at 4 bytes an element for a ternary model (its partial sums are int32), else at fp.
  const uint64_t act = cfg.ternary ? 4 : fp;
  const uint64_t widest = uint64_t(std::max({d.dim_block, d.hidden_block, d.query_block, d.heads * cap}));
  pl.scratch_bytes_per_pe = act * uint64_t(4 * d.dim_block + 3 * d.query_block + 2 * d.kv_block + 3 * d.hidden_block +
                                            d.heads * cap + 2 * d.heads) +
                            2 * act * widest + uint64_t(std::max({d.dim_block, d.hidden_block, d.query_block})) + 64;
  // A MeshGEMM prefill of n tokens (an upper estimate, as the scratch): the decode scratch for each
  // of the rb = ceil(n / P) tokens a PE's row holds, and the largest projection's weight block
  // and its partial sums (rb x its output block) travelling double-buffered.
  //   Example: BitNet 2B4T on 32 x 32 PEs, 5 tokens (rb = 1), 2bit weights: W_1's block 4,324
  //   bytes and 216 int32 sums: 7,240 + 2 x 4,324 + 2 x 864 = 17,616 bytes.
  if (spec.prefill_tokens > 1 && spec.prefill_reserve_bytes > 0) {
    pl.prefill_bytes_per_pe = spec.prefill_reserve_bytes;
  } else if (spec.prefill_tokens > 1) {
    const uint64_t rb = uint64_t(ceil_div(spec.prefill_tokens, P));
    uint64_t block = 0;
    for (const dist::GemvSpec* s : projections.all())
      block = std::max(block, dist::gemv_block_bytes(*s, cfg.ternary, mp));
    const uint64_t out = uint64_t(std::max({d.dim_block, d.hidden_block, d.query_block}));
    pl.prefill_bytes_per_pe = rb * pl.scratch_bytes_per_pe + 2 * block + 2 * rb * out * act;
  }
  const uint64_t reserve = std::max(pl.scratch_bytes_per_pe, pl.prefill_bytes_per_pe);
  const uint64_t sram = mp.sram_bytes;
  const std::string where = " on a " + std::to_string(P) + " x " + std::to_string(P) + " region";
  if (pl.layer_bytes_per_pe + reserve > sram)
    throw LimitError("model " + cfg.name + ": one layer needs " + bytes_text(pl.layer_bytes_per_pe + reserve) +
                     " per PE" + where + " (weights " + bytes_text(weights) + ", KV cache for " +
                     std::to_string(spec.context) + " tokens " + bytes_text(pl.kv_reserve_bytes_per_pe) + ", norms " +
                     bytes_text(norms) + ", scratch " + bytes_text(pl.scratch_bytes_per_pe) +
                     (pl.prefill_bytes_per_pe > pl.scratch_bytes_per_pe
                          ? ", or for the prefill of " + std::to_string(spec.prefill_tokens) + " tokens " +
                                bytes_text(pl.prefill_bytes_per_pe)
                          : std::string()) +
                     "), pe.sram_bytes = " + std::to_string(sram) + ": use a larger region (--region)" +
                     (pl.prefill_bytes_per_pe > pl.scratch_bytes_per_pe ? " or --prefill decode" : ""));
  pl.layers_per_region =
      int32_t(std::min<uint64_t>(uint64_t(cfg.layers), (sram - reserve) / pl.layer_bytes_per_pe));
  if (spec.max_layers_per_region > 0) pl.layers_per_region = std::min(pl.layers_per_region, spec.max_layers_per_region);
  const int64_t layer_regions = ceil_div(cfg.layers, pl.layers_per_region);
  pl.layers_per_region = int32_t(ceil_div(cfg.layers, layer_regions));  // spread evenly
  // Classifier: vocabulary rows per region, fp (rows/P x dim_block per PE) with its y and scratch.
  const uint64_t cls_fixed = fp * uint64_t(3 * d.dim_block) + 64;
  const uint64_t per_row_block = fp * uint64_t(d.dim_block) + 3 * fp;
  if (sram <= cls_fixed + per_row_block)
    throw LimitError("model " + cfg.name + ": the classifier needs more than " +
                     bytes_text(cls_fixed + per_row_block) + " per PE" + where + ", pe.sram_bytes = " + std::to_string(sram));
  const int64_t rows_per_pe = int64_t((sram - cls_fixed) / per_row_block);
  const int64_t cls_regions = ceil_div(cfg.vocab, rows_per_pe * P);
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
  const int64_t per = ceil_div(cfg.vocab, cls_regions);
  const auto [cls_order, cls_source] = classifier_order(bands, size_t(layer_regions));
  for (int64_t i = 0; i < cls_regions; ++i) {
    pl.classifier_regions.push_back(cls_order[size_t(i)]);
    pl.classifier_source.push_back(cls_source[size_t(i)]);
    pl.classifier_rows.push_back(std::min(per, cfg.vocab - i * per));
  }
  return pl;
}

void MeshTransformer::use_preferred_rank_grid(MachineParams& mp, int ranks) {
  if (mp.ranks_x != 0 || mp.ranks_y != 0 || ranks <= 1) return;
  const RankGrid g = preferred_rank_grid(MeshShape{int32_t(mp.width_pes), int32_t(mp.height_pes)}, ranks);
  mp.ranks_x = g.px;
  mp.ranks_y = g.py;
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

}  // namespace wm::model
