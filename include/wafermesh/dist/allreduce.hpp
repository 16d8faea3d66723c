#pragma once
// Allreduce along the lines of a region (rows for Axis::X, columns for Axis::Y), as a reusable
// collective with three algorithms (DESIGN.md §4):
//
//   pipeline  a chain from the far end into position 0 (one reduction stage per hop), then a
//             multicast back along the line: ~2P hops, P-1 relay stages.
//   ring      reduce-scatter then allgather around the interleaved ring (two-hop steps): chunk c
//             starts at logical PE c and is added PE by PE around the ring; 2(P-1) steps, each a
//             relay stage.
//   ktree     K levels. Level 1 cuts the line into groups of consecutive PEs; each group reduces into
//             its middle PE by two chains from its ends. Each further level does the same with the
//             previous level's roots as members, over pass-through routes (hops only between them,
//             one stage at each receiving root). The top level has one group; its root multicasts
//             the result back along the line. K = 2 with about sqrt(P) groups by default: about P
//             hops and K * P^(1/K) / 2 relay stages, O(K) route entries per PE.
//             Example, P = 9, K = 2, 3 groups: level 1 groups {0,1,2} {3,4,5} {6,7,8} reduce into
//             1, 4, 7 (chains 0->1<-2 ...); level 2 reduces 1 -> 4 <- 7 (3 hops each); 4 multicasts.
//
// Summation order is fixed by positions on the line (receiver adds incoming + own, chains as in
// reduce() of primitives.hpp), never by ranks: fp32 results are bit-identical for every rank count.
// Every pattern an algorithm uses stays configured until it finishes, so route entries per PE are
// what the algorithm needs at once, checked against noc.route_entries.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "wafermesh/noc/primitives.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::dist {

enum class AllreduceAlgo { pipeline, ring, ktree };
AllreduceAlgo allreduce_algo_from_name(const std::string& name);  // UsageError listing the names
const char* allreduce_algo_name(AllreduceAlgo a);

struct AllreduceSpec {
  AllreduceAlgo algo = AllreduceAlgo::ktree;
  int levels = 2;         // ktree: K
  int groups = 0;         // ktree, K = 2: groups of level 1 (0 = round(sqrt(P)))
  bool broadcast = true;  // leave the sum on every PE of the line (else only on the root)
};

// Structural figures of one allreduce: the steps run one after another, so the critical path
// crosses the longest transfer of every step.
struct AllreduceStats {
  uint64_t steps = 0;
  uint64_t critical_hops = 0;    // sum over steps of the longest hop count in the step
  uint64_t critical_stages = 0;  // sum over steps of relay stages (1 for a reducing step)
  int32_t root = 0;              // line position holding the result when !broadcast
};

// Member groups of one ktree level: members (line positions, ascending) cut into `groups`
// consecutive groups as even as possible (first ones one larger); root = middle member.
struct TreeGroup {
  std::vector<int32_t> members;
  size_t root = 0;  // index into members
};
std::vector<std::vector<TreeGroup>> ktree_levels(int32_t P, int levels, int groups);

namespace detail {

// Runs the chain reductions of `groups` (all lines, all groups at once, step by step), adding into
// buf in place; holds every step's plan in `held` so its routes stay configured.
template <class T>
void reduce_groups(Fabric& f, TileBuf<T>& buf, Axis axis, const std::vector<TreeGroup>& groups,
                   std::vector<TransferPlan>& held, AllreduceStats& st) {
  const Region& r = buf.region();
  const int32_t lines = line_count(r, axis);
  const size_t e = buf.elems();
  TileBuf<T> in_left(f, r, e, "allreduce: from the left"), in_right(f, r, e, "allreduce: from the right");
  auto add_into = [&](const TileBuf<T>& in, int32_t pos) {
    for (int32_t line = 0; line < lines; ++line) {
      const PeCoord c = line_pe(r, axis, line, pos);
      if (!buf.is_local(c.x, c.y)) continue;
      const T* a = in.tile(c.x, c.y);
      T* b = buf.tile(c.x, c.y);
      for (size_t k = 0; k < e; ++k) b[k] = a[k] + b[k];
      f.charge_compute(c.x, c.y, e);
    }
  };
  size_t steps = 0;
  for (const TreeGroup& g : groups) steps = std::max({steps, g.root, g.members.size() - 1 - g.root});
  const Region mine = r.intersect(f.block());
  const int32_t l0 = mine.empty() ? 0 : (axis == Axis::X ? mine.y0 - r.y0 : mine.x0 - r.x0);
  const int32_t l1 = mine.empty() ? 0 : l0 + (axis == Axis::X ? mine.h : mine.w);
  for (size_t s = 0; s < steps; ++s) {
    uint64_t step_hops = 0;  // both sides of a step run at the same time: one stage
    for (int side = 0; side < 2; ++side) {
      std::vector<Transfer> t;
      uint64_t hops = 0;
      std::vector<int32_t> adders;  // receivers that add now (roots add at the end)
      for (const TreeGroup& g : groups) {
        const size_t n = g.members.size();
        if (side == 0 && s >= g.root) continue;
        if (side == 1 && s >= n - 1 - g.root) continue;
        const int32_t from = side == 0 ? g.members[s] : g.members[n - 1 - s];
        const int32_t to = side == 0 ? g.members[s + 1] : g.members[n - 2 - s];
        hops = std::max<uint64_t>(hops, uint64_t(std::abs(to - from)));
        if (to != g.members[g.root]) adders.push_back(to);
        for (int32_t line = l0; line < l1; ++line)
          t.push_back({line_pe(r, axis, line, from), line_pe(r, axis, line, to), 0, 1});
      }
      if (hops == 0) continue;
      for (size_t i = 0; i < t.size(); ++i) t[i].stream = uint32_t(i);  // one stream per transfer
      TileBuf<T>& in = side == 0 ? in_left : in_right;
      held.push_back(f.plan(std::move(t), buf.bytes_per_pe(),
                            "allreduce chain step " + std::to_string(s) + (side ? " (right)" : " (left)") + " on " +
                                r.str()));
      f.execute(held.back(), buf.view(), in.view());
      step_hops = std::max(step_hops, hops);
      for (int32_t pos : adders) add_into(in, pos);
    }
    st.steps += 1;
    st.critical_hops += step_hops;
    st.critical_stages += 1;
  }
  // Roots: (left + own) then right + that.
  for (const TreeGroup& g : groups) {
    if (g.root > 0) add_into(in_left, g.members[g.root]);
  }
  for (const TreeGroup& g : groups) {
    if (g.root + 1 < g.members.size()) add_into(in_right, g.members[g.root]);
  }
}

}  // namespace detail

// Sums the tiles of every line of buf's region along `axis`. Collective.
template <class T>
AllreduceStats allreduce_lines(Fabric& f, TileBuf<T>& buf, Axis axis, const AllreduceSpec& spec) {
  const Region& r = buf.region();
  const int32_t P = line_length(r, axis);
  AllreduceStats st;
  std::vector<TransferPlan> held;
  if (P <= 1) return st;
  if (spec.algo == AllreduceAlgo::pipeline || spec.algo == AllreduceAlgo::ktree) {
    std::vector<std::vector<TreeGroup>> levels;
    if (spec.algo == AllreduceAlgo::pipeline) {
      TreeGroup g;
      for (int32_t i = 0; i < P; ++i) g.members.push_back(i);
      g.root = 0;
      levels.push_back({g});
    } else {
      levels = ktree_levels(P, spec.levels, spec.groups);
    }
    for (const auto& level : levels) detail::reduce_groups(f, buf, axis, level, held, st);
    const TreeGroup& top = levels.back().front();
    st.root = top.members[top.root];
    if (spec.broadcast) {
      held.push_back(plan_broadcast(f, r, axis, st.root, buf.bytes_per_pe()));
      f.execute(held.back(), buf.view(), buf.view());
      st.steps += 1;
      st.critical_hops += uint64_t(std::max(st.root, P - 1 - st.root));
    }
    return st;
  }
  // Ring: reduce-scatter, then allgather, in chunks of ceil(E / P) elements on the interleaved ring.
  const size_t E = buf.elems(), cs = (E + size_t(P) - 1) / size_t(P);
  const LinePerm perm = LinePerm::interleaved(P);
  TileBuf<T> out(f, r, cs, "allreduce ring: chunk out"), in(f, r, cs, "allreduce ring: chunk in");
  held.push_back(plan_shift(f, r, axis, +1, true, perm, out.bytes_per_pe()));
  TransferPlan& ring = held.back();
  const Region mine = r.intersect(f.block());
  auto chunk_range = [&](int64_t c) {
    const size_t b = std::min(E, size_t(c) * cs), e = std::min(E, b + cs);
    return std::pair{b, e};
  };
  for (int phase = 0; phase < 2; ++phase) {
    for (int32_t s = 0; s + 1 < P; ++s) {
      // Logical PE l sends chunk (l - s) mod P (reduce-scatter) or (l + 1 - s) mod P (allgather).
      buf.for_each_local([&](int32_t x, int32_t y, T* tile) {
        if (!mine.contains(x, y)) return;
        const int32_t pos = axis == Axis::X ? x - r.x0 : y - r.y0;
        const int32_t l = perm.logical(pos);
        const int64_t c = ((l - s + phase) % P + P) % P;
        const auto [b, e] = chunk_range(c);
        T* o = out.tile(x, y);
        std::fill(o, o + cs, T{});
        std::copy(tile + b, tile + e, o);
      });
      f.execute(ring, out.view(), in.view());
      st.steps += 1;
      st.critical_hops += ring.max_hops();
      st.critical_stages += 1;  // the core takes each chunk in and sends it on
      buf.for_each_local([&](int32_t x, int32_t y, T* tile) {
        const int32_t pos = axis == Axis::X ? x - r.x0 : y - r.y0;
        const int32_t l = perm.logical(pos);
        const int64_t c = ((l - 1 - s + phase) % P + P) % P;  // what the predecessor sent
        const auto [b, e] = chunk_range(c);
        const T* i = in.tile(x, y);
        if (phase == 0) {
          for (size_t k = b; k < e; ++k) tile[k] = i[k - b] + tile[k];
          f.charge_compute(x, y, cs);
        } else {
          std::copy(i, i + (e - b), tile + b);
        }
      });
    }
  }
  st.root = 0;
  return st;
}

// Serial reference: the sum every algorithm must produce for one line, in its own order.
// tiles: (P, E) in line order. Result: (E).
template <class T>
std::vector<T> allreduce_line_reference(const AllreduceSpec& spec, const std::vector<std::vector<T>>& tiles) {
  const int32_t P = int32_t(tiles.size());
  const size_t E = tiles.empty() ? 0 : tiles[0].size();
  if (P == 1) return tiles[0];
  if (spec.algo == AllreduceAlgo::ring) {
    const LinePerm perm = LinePerm::interleaved(P);
    const size_t cs = (E + size_t(P) - 1) / size_t(P);
    std::vector<T> out(E);
    for (int32_t c = 0; c < P; ++c) {
      // Chunk c starts at logical PE c and is added by c+1, c+2, ... (incoming + own).
      const size_t b = std::min(E, size_t(c) * cs), e = std::min(E, b + cs);
      for (size_t k = b; k < e; ++k) {
        T acc = tiles[size_t(perm.phys(c))][k];
        for (int32_t j = 1; j < P; ++j) acc = acc + tiles[size_t(perm.phys((c + j) % P))][k];
        out[k] = acc;
      }
    }
    return out;
  }
  std::vector<std::vector<TreeGroup>> levels;
  if (spec.algo == AllreduceAlgo::pipeline) {
    TreeGroup g;
    for (int32_t i = 0; i < P; ++i) g.members.push_back(i);
    levels.push_back({g});
  } else {
    levels = ktree_levels(P, spec.levels, spec.groups);
  }
  std::vector<std::vector<T>> v = tiles;  // value held at each position
  for (const auto& level : levels)
    for (const TreeGroup& g : level) {
      const size_t n = g.members.size();
      std::vector<T> left, right;
      for (size_t i = 0; i < g.root; ++i) {
        if (i == 0) left = v[size_t(g.members[0])];
        else for (size_t k = 0; k < E; ++k) left[k] = left[k] + v[size_t(g.members[i])][k];
      }
      for (size_t i = n - 1; i > g.root; --i) {
        if (i == n - 1) right = v[size_t(g.members[n - 1])];
        else for (size_t k = 0; k < E; ++k) right[k] = right[k] + v[size_t(g.members[i])][k];
      }
      std::vector<T>& root = v[size_t(g.members[g.root])];
      if (!left.empty()) for (size_t k = 0; k < E; ++k) root[k] = left[k] + root[k];
      if (!right.empty()) for (size_t k = 0; k < E; ++k) root[k] = right[k] + root[k];
    }
  const TreeGroup& top = levels.back().front();
  return v[size_t(top.members[top.root])];
}

}  // namespace wm::dist
