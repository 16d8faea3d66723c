#include "wafermesh/noc/line_plans.hpp"

#include <map>

#include <algorithm>
#include <stdexcept>

namespace wm {

LinePerm LinePerm::from(std::vector<int32_t> phys_of_logical, std::string name) {
  LinePerm p;
  const size_t n = phys_of_logical.size();
  p.logical_.assign(n, -1);
  for (size_t l = 0; l < n; ++l) {
    const int32_t ph = phys_of_logical[l];
    if (ph < 0 || size_t(ph) >= n || p.logical_[size_t(ph)] != -1)
      throw std::invalid_argument("LinePerm '" + name + "' is not a permutation");
    p.logical_[size_t(ph)] = int32_t(l);
  }
  p.phys_ = std::move(phys_of_logical);
  p.name_ = std::move(name);
  return p;
}

LinePerm LinePerm::natural(int32_t n) {
  std::vector<int32_t> v(size_t(std::max(n, 0)));
  for (int32_t i = 0; i < n; ++i) v[size_t(i)] = i;
  return from(std::move(v), "natural");
}

LinePerm LinePerm::interleaved(int32_t n) {
  std::vector<int32_t> v(size_t(std::max(n, 0)));
  for (int32_t i = 0; i < n; ++i) {
    const int32_t logical = (i % 2 == 0) ? i / 2 : n - 1 - (i - 1) / 2;
    v[size_t(logical)] = i;
  }
  return from(std::move(v), "interleaved");
}

int32_t line_length(const Region& r, Axis axis) { return axis == Axis::X ? r.w : r.h; }
int32_t line_count(const Region& r, Axis axis) { return axis == Axis::X ? r.h : r.w; }

PeCoord line_pe(const Region& r, Axis axis, int32_t line, int32_t pos) {
  return axis == Axis::X ? PeCoord{r.x0 + pos, r.y0 + line} : PeCoord{r.x0 + line, r.y0 + pos};
}

namespace {
const char* axis_name(Axis a) { return a == Axis::X ? "X" : "Y"; }
}  // namespace

TransferPlan plan_shift_lines(Fabric& f, const Region& r, Axis axis, const std::vector<int64_t>& d_of_line, bool wrap,
                              const LinePerm& perm, size_t tile_bytes, const std::string& name) {
  const int32_t n = line_length(r, axis);
  if (perm.size() != n)
    throw std::invalid_argument("line permutation of size " + std::to_string(perm.size()) + " on lines of " +
                                std::to_string(n));
  if (d_of_line.size() != size_t(line_count(r, axis))) throw std::invalid_argument("one distance per line needed");
  // One template per distinct distance; stream l is the tile of logical position l.
  LinePattern lp{r, axis, {}, std::vector<int32_t>(d_of_line.size(), -1)};
  std::vector<int64_t> dist_of_template;
  for (size_t line = 0; line < d_of_line.size(); ++line) {
    const int64_t d = d_of_line[line];
    if (d == 0) continue;
    const auto it = std::find(dist_of_template.begin(), dist_of_template.end(), d);
    if (it != dist_of_template.end()) {
      lp.template_of_line[line] = int32_t(it - dist_of_template.begin());
      continue;
    }
    std::vector<LineTransfer> t;
    t.reserve(size_t(n));
    for (int32_t l = 0; l < n; ++l) {
      int64_t to = l + d;
      if (wrap) {
        to %= n;
        if (to < 0) to += n;
      } else if (to < 0 || to >= n) {
        continue;
      }
      t.push_back({perm.phys(l), perm.phys(int32_t(to)), uint32_t(l), 0});
    }
    lp.template_of_line[line] = int32_t(lp.templates.size());
    lp.templates.push_back(std::move(t));
    dist_of_template.push_back(d);
  }
  return f.plan(std::move(lp), tile_bytes, name);
}

TransferPlan plan_shift(Fabric& f, const Region& r, Axis axis, int64_t d, bool wrap, const LinePerm& perm,
                        size_t tile_bytes) {
  return plan_shift_lines(f, r, axis, std::vector<int64_t>(size_t(line_count(r, axis)), d), wrap, perm, tile_bytes,
                          std::string("shift ") + axis_name(axis) + " by " + std::to_string(d) +
                              (wrap ? " (ring, " : " (chain, ") + perm.name() + ") on " + r.str());
}

TransferPlan plan_broadcast(Fabric& f, const Region& r, Axis axis, int32_t root, size_t tile_bytes,
                            bool include_root) {
  const int32_t n = line_length(r, axis);
  if (root < 0 || root >= n)
    throw std::invalid_argument("broadcast root " + std::to_string(root) + " outside a line of " + std::to_string(n));
  std::vector<LineTransfer> t;
  for (int32_t pos = 0; pos < n; ++pos)
    if (pos != root || include_root) t.push_back({root, pos, 0, 0});
  LinePattern lp{r, axis, {std::move(t)}, std::vector<int32_t>(size_t(line_count(r, axis)), 0)};
  return f.plan(std::move(lp), tile_bytes,
                std::string("broadcast along ") + axis_name(axis) + " from position " + std::to_string(root) + " on " +
                    r.str());
}

TransferPlan plan_pairs(Fabric& f, const std::vector<std::pair<PeCoord, PeCoord>>& pairs, size_t tile_bytes,
                        std::string name) {
  std::vector<Transfer> t;
  t.reserve(pairs.size());
  for (size_t i = 0; i < pairs.size(); ++i) t.push_back({pairs[i].first, pairs[i].second, uint32_t(i), 0});
  return f.plan(std::move(t), tile_bytes, std::move(name));
}

TransferPlan plan_chain_step(Fabric& f, const Region& r, Axis axis, int32_t from, int32_t root, size_t tile_bytes) {
  const int32_t to = from < root ? from + 1 : from - 1;
  LinePattern lp{r, axis, {{LineTransfer{from, to, 0, 1}}}, std::vector<int32_t>(size_t(line_count(r, axis)), 0)};
  return f.plan(std::move(lp), tile_bytes,
                std::string("chain reduction step along ") + axis_name(axis) + " " + std::to_string(from) + "->" +
                    std::to_string(to) + " on " + r.str());
}

namespace {

// Greedy packing: each item goes to the first round where every PE it touches still has room.
template <class T, class Touches>
std::vector<std::vector<T>> pack_rounds(const std::vector<T>& items, int32_t budget, Touches&& touches) {
  std::vector<std::vector<T>> rounds;
  std::vector<std::map<int64_t, int32_t>> use;  // per round: streams touching each PE
  for (const T& t : items) {
    const std::vector<int64_t> pes = touches(t);
    size_t r = 0;
    for (; r < rounds.size(); ++r)
      if (std::all_of(pes.begin(), pes.end(), [&](int64_t pe) {
            const auto it = use[r].find(pe);
            return it == use[r].end() || it->second < budget;
          }))
        break;
    if (r == rounds.size()) {
      rounds.emplace_back();
      use.emplace_back();
    }
    rounds[r].push_back(t);
    for (int64_t pe : pes) ++use[r][pe];
  }
  for (auto& round : rounds)  // stream ids numbered afresh per round
    for (size_t i = 0; i < round.size(); ++i) round[i].stream = uint32_t(i);
  return rounds;
}

}  // namespace

std::vector<std::vector<Transfer>> route_rounds(const std::vector<Transfer>& transfers, int32_t budget) {
  if (transfers.empty() || budget < 1 || budget > 65535) return route_rounds_ref(transfers, budget);
  // route_rounds_ref's first fit, with each round's use of the PEs in a flat array over the box the
  // transfers span (the same rounds, without a map lookup per PE).
  int32_t x0 = transfers[0].src.x, x1 = x0, y0 = transfers[0].src.y, y1 = y0;
  for (const Transfer& t : transfers)
    for (const PeCoord& c : {t.src, t.dst}) x0 = std::min(x0, c.x), x1 = std::max(x1, c.x), y0 = std::min(y0, c.y), y1 = std::max(y1, c.y);
  const size_t w = size_t(x1 - x0 + 1), cells = w * size_t(y1 - y0 + 1);
  std::vector<std::vector<Transfer>> rounds;
  std::vector<std::vector<uint16_t>> use;  // per round: streams touching each PE of the box
  // Calls f(index) for every PE of t's route (the order of route_rounds_ref) until f is false.
  auto walk = [&](const Transfer& t, auto&& f) {
    if (t.src == t.dst) return true;
    const int32_t stepx = t.dst.x >= t.src.x ? 1 : -1, stepy = t.dst.y >= t.src.y ? 1 : -1;
    auto at = [&](int32_t x, int32_t y) { return size_t(y - y0) * w + size_t(x - x0); };
    for (int32_t x = t.src.x; x != t.dst.x; x += stepx)
      if (!f(at(x, t.src.y))) return false;
    for (int32_t y = t.src.y; y != t.dst.y; y += stepy)
      if (!f(at(t.dst.x, y))) return false;
    return f(at(t.dst.x, t.dst.y));
  };
  const uint16_t b = uint16_t(budget);
  for (const Transfer& t : transfers) {
    size_t r = 0;
    for (; r < rounds.size(); ++r)
      if (walk(t, [&](size_t i) { return use[r][i] < b; })) break;
    if (r == rounds.size()) {
      // Rounds are kept open to the end: beyond 256 MiB of them, the plain version's maps (the
      // same rounds, memory in proportion to the routes) take over.
      if ((rounds.size() + 1) * cells * sizeof(uint16_t) > (size_t(256) << 20)) return route_rounds_ref(transfers, budget);
      rounds.emplace_back();
      use.emplace_back(cells, uint16_t(0));
    }
    rounds[r].push_back(t);
    walk(t, [&](size_t i) {
      ++use[r][i];
      return true;
    });
  }
  for (auto& round : rounds)  // stream ids numbered afresh per round
    for (size_t i = 0; i < round.size(); ++i) round[i].stream = uint32_t(i);
  return rounds;
}

std::vector<std::vector<Transfer>> route_rounds_ref(const std::vector<Transfer>& transfers, int32_t budget) {
  return pack_rounds(transfers, budget, [](const Transfer& t) {
    std::vector<int64_t> pes;  // PE (x, y) as y * 2^32 + x; along X first, then along Y
    if (t.src == t.dst) return pes;  // no route
    auto id = [](int32_t x, int32_t y) { return (int64_t(y) << 32) + x; };
    const int32_t stepx = t.dst.x >= t.src.x ? 1 : -1, stepy = t.dst.y >= t.src.y ? 1 : -1;
    for (int32_t x = t.src.x; x != t.dst.x; x += stepx) pes.push_back(id(x, t.src.y));
    for (int32_t y = t.src.y; y != t.dst.y; y += stepy) pes.push_back(id(t.dst.x, y));
    pes.push_back(id(t.dst.x, t.dst.y));
    return pes;
  });
}

std::vector<std::vector<LineTransfer>> route_rounds(const std::vector<LineTransfer>& transfers, int32_t budget) {
  return pack_rounds(transfers, budget, [](const LineTransfer& t) {
    std::vector<int64_t> pes;
    for (int32_t p = std::min(t.from, t.to); p <= std::max(t.from, t.to); ++p) pes.push_back(p);
    return pes;
  });
}

}  // namespace wm
