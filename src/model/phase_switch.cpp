// The switch from the prefill placement to the decode placement (see phase_switch.hpp).
#include "wafermesh/model/phase_switch.hpp"

#include <chrono>
#include <map>
#include <utility>

#include "wafermesh/dist/host_io.hpp"
#include "wafermesh/model/weights.hpp"

namespace wm::model {

std::vector<dist::ReplaceItem> switch_items(const ModelConfig& cfg, const MachineParams& mp, const MeshPlacement& from,
                                            const MeshPlacement& to, dist::KvPolicy policy, int64_t tokens,
                                            std::vector<bool>* is_kv) {
  using dist::BlockTiling;
  // Layers by (source region, destination region): they move as copies of one tiling.
  std::map<std::pair<int32_t, int32_t>, int64_t> groups;
  for (int64_t l = 0; l < cfg.layers; ++l) ++groups[{from.region_of_layer[size_t(l)], to.region_of_layer[size_t(l)]}];
  const int64_t q = cfg.dim, kv = cfg.kv_dim();
  const uint64_t fp = mp.wafer_fp_bytes();
  std::function<uint64_t(int64_t)> wbytes;
  if (cfg.ternary) wbytes = [mp](int64_t e) { return mp.wafer_ternary_bytes(uint64_t(e)); };
  else wbytes = [fp](int64_t e) { return uint64_t(e) * fp; };
  const auto fbytes = [fp](int64_t e) { return uint64_t(e) * fp; };
  std::vector<dist::ReplaceItem> items;
  for (const auto& [pair, n] : groups) {
    const Region& A = from.layer_regions[size_t(pair.first)];
    const Region& B = to.layer_regions[size_t(pair.second)];
    if (A == B && from.layer_regions.front().w == to.layer_regions.front().w) continue;  // same PEs, same tiling
    // rows x cols, copies per layer
    const std::vector<std::tuple<int64_t, int64_t, int64_t>> shapes = {
        {q, cfg.dim, 1}, {kv, cfg.dim, 2}, {cfg.dim, q, 1}, {cfg.hidden_dim, cfg.dim, 2}, {cfg.dim, cfg.hidden_dim, 1}};
    for (const auto& [rows, cols, copies] : shapes)
      items.push_back({BlockTiling::even(A, rows, cols), BlockTiling::even(B, rows, cols), copies * n, wbytes});
    if (is_kv) is_kv->resize(items.size(), false);
    if (tokens > 0) {
      items.push_back({BlockTiling::with_rows(A, dist::KvCache::rows_after(policy, A.h, tokens), kv),
                       BlockTiling::with_rows(B, dist::KvCache::rows_after(policy, B.h, tokens), kv), 2 * n, fbytes});
      if (is_kv) is_kv->push_back(true);
    }
  }
  return items;
}

std::unique_ptr<MeshTransformer> switch_placement(Fabric& f, const WeightSource& source,
                                                  std::unique_ptr<MeshTransformer> from, const MeshPlacementSpec& to,
                                                  PhaseSwitchReport& report, const ProgressFn& progress) {
  const auto w0 = std::chrono::steady_clock::now();
  const ModelConfig& cfg = source.config();
  const MeshPlacement pa = from->placement();
  const int64_t n = from->kv_tokens();
  report.start_cycles = from->end_cycles();
  // The caches' values, layer by layer (none in a timing-only run).
  std::vector<std::vector<float>> keys(size_t(cfg.layers)), values(size_t(cfg.layers));
  for (int64_t l = 0; l < cfg.layers; ++l) from->read_kv(l, keys[size_t(l)], values[size_t(l)]);
  from.reset();  // the prefill placement's SRAM is released
  auto dec = std::make_unique<MeshTransformer>(f, source, to, progress);
  dec->load_kv(n, [&](int64_t layer, std::vector<float>& k, std::vector<float>& v) {
    k = std::move(keys[size_t(layer)]);
    v = std::move(values[size_t(layer)]);
  });
  const MeshPlacement& pb = dec->placement();
  std::vector<bool> is_kv;
  const std::vector<dist::ReplaceItem> items = switch_items(cfg, f.params(), pa, pb, to.kv_policy, n, &is_kv);
  dist::Replacement rep(f, items, "prefill -> decode placement");
  report.rounds = rep.rounds();
  for (size_t i = 0; i < items.size(); ++i) {
    uint64_t b = 0;
    for (const dist::ReplacePiece& p : dist::replace_pieces(items[i]))
      if (!(p.src == p.dst)) b += p.bytes;
    (is_kv[i] ? report.kv_bytes : report.weight_bytes) += b;
  }
  const WorkCounts before = f.work();
  rep.run_timing();
  report.work = f.work() - before;
  // The switch ends when every PE of both placements has its data.
  uint64_t end = report.start_cycles;
  for (const Region& R : pa.layer_regions) end = std::max(end, f.max_clock(R));
  for (const Region& R : pb.layer_regions) end = std::max(end, f.max_clock(R));
  report.end_cycles = end;
  dec->start_after(end);
  report.wall_s = dist::max_over_ranks(
      f, std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count());
  return dec;
}

}  // namespace wm::model
