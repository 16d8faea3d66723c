#include "wafermesh/noc/reference_fabric.hpp"

#include <tuple>

namespace wm {

RefCosts reference_step_costs(const MachineParams& p, const MeshShape& m, const std::vector<Transfer>& t,
                              size_t tile_bytes) {
  const CostModel cost = CostModel::from(p);
  // Which streams use each directed link, and which streams touch each PE.
  std::map<std::tuple<int32_t, int32_t, int>, std::set<uint32_t>> link_streams;
  std::map<int64_t, std::set<uint32_t>> pe_streams;
  auto walk = [&](const Transfer& x, auto&& on_link, auto&& on_pe) {
    int32_t cx = x.src.x, cy = x.src.y;
    on_pe(cx, cy);
    while (cx != x.dst.x) {
      const int dir = x.dst.x > cx ? 0 : 1;
      on_link(cx, cy, dir);
      cx += x.dst.x > cx ? 1 : -1;
      on_pe(cx, cy);
    }
    while (cy != x.dst.y) {
      const int dir = x.dst.y > cy ? 2 : 3;
      on_link(cx, cy, dir);
      cy += x.dst.y > cy ? 1 : -1;
      on_pe(cx, cy);
    }
  };
  // The links each (source, stream) loads: a multicast's tree counts each link once.
  std::map<std::pair<int64_t, uint32_t>, std::set<std::tuple<int32_t, int32_t, int>>> stream_links;
  for (const Transfer& x : t) {
    if (x.src == x.dst) continue;
    auto& mine = stream_links[{m.id(x.src.x, x.src.y), x.stream}];
    walk(
        x,
        [&](int32_t a, int32_t b, int d) {
          link_streams[{a, b, d}].insert(x.stream);
          mine.insert({a, b, d});
        },
        [&](int32_t a, int32_t b) { pe_streams[m.id(a, b)].insert(x.stream); });
  }
  RefCosts k;
  for (const Transfer& x : t) {
    uint64_t load = 0;
    walk(
        x, [&](int32_t a, int32_t b, int d) { load = std::max<uint64_t>(load, link_streams[{a, b, d}].size()); },
        [](int32_t, int32_t) {});
    const uint64_t h = uint64_t(std::abs(x.src.x - x.dst.x) + std::abs(x.src.y - x.dst.y));
    k.hops.push_back(h);
    k.latency.push_back(h == 0                                 ? 0
                        : cost.stream_reductions && x.relays > 0 ? cost.stream_stage_cycles(h, x.relays)
                                                                 : cost.transfer_cycles(h, x.relays, tile_bytes, load));
  }
  for (const auto& [id, s] : pe_streams) k.routes[id] = s.size();
  for (const auto& [key, links] : stream_links) k.stream_links[key] = links.size();
  return k;
}

}  // namespace wm
