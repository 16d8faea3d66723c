// A plan built from a LinePattern (line templates, compiled per template, executed as affine runs)
// must act exactly like the plan built from the same transfers listed one by one (the transfer-list
// builder, which walks every route link by link) and like the serial reference: the same tiles,
// clocks and counters on every PE, for random patterns (several templates, idle lines, multicasts,
// relay stages, PEs keeping their own tile; each PE receives at most one tile per step), both axes,
// deferred arrivals, departures before a compute task, software relays when routes run out, and
// every rank count and layout.
#include <gtest/gtest.h>

#include <random>

#include "fabric_test_util.hpp"
#include "wafermesh/mesh/mpi_handles.hpp"

using namespace wm;
using namespace wm::test;

namespace {

// A random step along the lines of a random region of a 13 x 11 mesh.
struct RandomStep {
  LinePattern pattern;
  std::vector<Transfer> all;  // the same transfers, line by line, streams numbered per step
};

RandomStep random_step(std::mt19937& g, const MeshShape& m) {
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(g); };
  RandomStep s;
  LinePattern& lp = s.pattern;
  lp.axis = uni(0, 1) ? Axis::X : Axis::Y;
  const int32_t w = uni(1, m.width), h = uni(1, m.height);
  lp.region = Region{uni(0, m.width - w), uni(0, m.height - h), w, h};
  const int32_t n = lp.axis == Axis::X ? w : h, lines = lp.axis == Axis::X ? h : w;
  const int ntemplates = uni(1, 3);
  for (int t = 0; t < ntemplates; ++t) {
    std::vector<LineTransfer> tr;
    const int kind = uni(0, 2);
    if (kind == 0) {  // a shift by d on a random ring or chain order
      std::vector<int32_t> order(static_cast<size_t>(n));
      for (int32_t i = 0; i < n; ++i) order[size_t(i)] = i;
      std::shuffle(order.begin(), order.end(), g);
      const int d = uni(-2, 2);
      const bool wrap = uni(0, 1);
      for (int32_t l = 0; l < n; ++l) {
        int32_t to = l + d;
        if (wrap) to = ((to % n) + n) % n;
        else if (to < 0 || to >= n) continue;
        tr.push_back({order[size_t(l)], order[size_t(to)], uint32_t(l), uint32_t(uni(0, 1))});
      }
    } else if (kind == 1) {  // multicasts from a few roots to some positions (a root may keep its tile)
      const int roots = uni(1, 2);
      std::vector<int32_t> root_of(static_cast<size_t>(n), -1);  // each position receives once
      for (int32_t p = 0; p < n; ++p)
        if (uni(0, 2) > 0) root_of[size_t(p)] = uni(0, roots - 1);
      std::vector<int32_t> root_pos;
      for (int r = 0; r < roots; ++r) root_pos.push_back(uni(0, n - 1));
      for (int r = 0; r < roots; ++r)
        for (int32_t p = 0; p < n; ++p)
          if (root_of[size_t(p)] == r) tr.push_back({root_pos[size_t(r)], p, uint32_t(100 + r), 0});
    } else {  // random pairs to distinct targets, each its own stream, some with relay stages
      std::vector<int32_t> targets(static_cast<size_t>(n));
      for (int32_t i = 0; i < n; ++i) targets[size_t(i)] = i;
      std::shuffle(targets.begin(), targets.end(), g);
      const int k = uni(1, n);
      for (int i = 0; i < k; ++i) tr.push_back({uni(0, n - 1), targets[size_t(i)], uint32_t(200 + i), uint32_t(uni(0, 2))});
    }
    lp.templates.push_back(std::move(tr));
  }
  lp.template_of_line.resize(size_t(lines));
  for (auto& t : lp.template_of_line) t = uni(-1, ntemplates - 1);
  uint32_t stream_base = 0;
  for (int32_t line = 0; line < lines; ++line) {
    const int32_t t = lp.template_of_line[size_t(line)];
    if (t < 0) continue;
    for (const LineTransfer& x : lp.templates[size_t(t)])
      s.all.push_back({line_pe(lp.region, lp.axis, line, x.from), line_pe(lp.region, lp.axis, line, x.to),
                       stream_base + x.stream, x.relays});
    stream_base += 1000;
  }
  return s;
}

struct Outcome {
  std::vector<float> tiles;
  std::vector<PeCounters> pes;
};

// Runs `steps` on a fresh fabric: each step once on a buffer over the whole mesh (in place) and,
// every other step, posted into a second buffer before a compute task and carried out after it.
Outcome run(MPI_Comm comm, const MachineParams& mp, const std::vector<RandomStep>& steps, bool lines) {
  Fabric f(comm, mp);
  const MeshShape& m = f.mesh();
  TileBuf<float> a(f, m.full(), 3, "a"), b(f, m.full(), 3, "b");
  a.for_each_local([&](int32_t x, int32_t y, float* t) { for (size_t k = 0; k < 3; ++k) t[k] = fill_value(m.id(x, y), k); });
  // A step's plan lives for the step only, as the reference configures and releases its routes.
  auto make = [&](size_t i) {
    return lines ? f.plan(steps[i].pattern, a.bytes_per_pe(), "lines") : f.plan(steps[i].all, a.bytes_per_pe(), "list");
  };
  for (size_t i = 0; i < steps.size(); ++i) {
    if (i % 2 == 0) {
      TransferPlan p = make(i);
      f.execute(p, a.view(), a.view());
      continue;
    }
    {
      // Posted before a compute task of 7 MACs on every PE, carried out after it.
      TransferPlan p = make(i);
      f.charge_compute(m.full(), 7);
      f.execute(p, a.view(), b.view(), Sync::defer, Depart::before(f.cost().compute_cycles(7)));
    }
    f.wait_arrivals();  // the plan is gone: its arrivals were kept for this
    TransferPlan q = make(i);
    f.execute(q, b.view(), a.view());
  }
  return {a.gather(), f.gather_counters(m.full())};
}

Outcome run_reference(const MachineParams& mp, const std::vector<RandomStep>& steps) {
  ReferenceFabric f(mp);
  const MeshShape m{int32_t(mp.width_pes), int32_t(mp.height_pes)};
  RefBuf<float> a = f.alloc<float>(m.full(), 3), b = f.alloc<float>(m.full(), 3);
  for (int32_t y = 0; y < m.height; ++y)
    for (int32_t x = 0; x < m.width; ++x)
      for (size_t k = 0; k < 3; ++k) a.at({x, y})[k] = fill_value(m.id(x, y), k);
  for (size_t i = 0; i < steps.size(); ++i) {
    if (i % 2 == 0) {
      f.step(steps[i].all, a, a);
    } else {
      // The reference departs at the step: its compute comes after, as Depart::before says.
      f.step(steps[i].all, a, b, /*defer=*/true);
      for (int32_t y = 0; y < m.height; ++y)
        for (int32_t x = 0; x < m.width; ++x) f.charge_compute({x, y}, 7);
      f.wait_arrivals();
      f.step(steps[i].all, b, a);
    }
  }
  Outcome o;
  for (auto& t : a.tiles) o.tiles.insert(o.tiles.end(), t.begin(), t.end());
  o.pes = f.pes();
  return o;
}

void expect_same(const Outcome& got, const Outcome& want, const std::string& what) {
  ASSERT_EQ(got.tiles.size(), want.tiles.size()) << what;
  EXPECT_EQ(std::memcmp(got.tiles.data(), want.tiles.data(), got.tiles.size() * sizeof(float)), 0)
      << what << ": tiles differ";
  ASSERT_EQ(got.pes.size(), want.pes.size()) << what;
  size_t bad = 0;
  for (size_t i = 0; i < got.pes.size(); ++i)
    if (!(got.pes[i] == want.pes[i]) && bad++ < 3)
      ADD_FAILURE() << what << ": PE " << i << " clock " << got.pes[i].clock_cycles << " vs "
                    << want.pes[i].clock_cycles << ", routes " << got.pes[i].route_peak_entries << " vs "
                    << want.pes[i].route_peak_entries << ", recv " << got.pes[i].bytes_received << " vs "
                    << want.pes[i].bytes_received << ", hops " << got.pes[i].max_hops << " vs " << want.pes[i].max_hops;
  EXPECT_EQ(bad, 0u) << what;
}

}  // namespace

TEST(LinePlans, RandomPatternsActLikeTheirTransferListsAndTheReferenceForEveryRankCount) {
  int world = 1, rank = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MachineParams mp = small_machine(13, 11);
  const MeshShape m{13, 11};
  for (uint32_t seed = 1; seed <= 12; ++seed) {
    std::mt19937 g(seed);
    std::vector<RandomStep> steps;
    for (int i = 0; i < 6; ++i) steps.push_back(random_step(g, m));
    const Outcome want = run_reference(mp, steps);
    for (int k = 1; k <= world; ++k) {
      std::vector<std::pair<int, int>> layouts = {{0, 0}};
      for (int px = 1; px <= k; ++px)
        if (k % px == 0) layouts.push_back({px, k / px});
      for (auto [px, py] : layouts) {
        const MpiComm sub = split_comm(MPI_COMM_WORLD, rank < k ? 0 : MPI_UNDEFINED, rank);
        if (!sub) continue;
        MachineParams q = mp;
        q.ranks_x = px;
        q.ranks_y = py;
        const Outcome from_lines = run(sub.get(), q, steps, true);
        const Outcome from_list = run(sub.get(), q, steps, false);
        if (rank != 0) continue;
        const std::string what = "seed " + std::to_string(seed) + ", " + std::to_string(k) + " rank(s) " +
                                 std::to_string(px) + "x" + std::to_string(py);
        expect_same(from_lines, want, what + ", line plans vs reference");
        expect_same(from_list, want, what + ", transfer lists vs reference");
      }
    }
  }
}

// With few route entries, line plans fall back to software relays exactly as transfer lists do.
TEST(LinePlans, RelayFallbackMatchesTheTransferList) {
  MachineParams mp = small_machine(13, 11);
  mp.route_entries = 2;
  mp.route_fallback = "relay";
  const MeshShape m{13, 11};
  std::mt19937 g(99);
  std::vector<RandomStep> steps;
  for (int i = 0; i < 8; ++i) steps.push_back(random_step(g, m));
  const Outcome from_lines = run(MPI_COMM_WORLD, mp, steps, true);
  const Outcome from_list = run(MPI_COMM_WORLD, mp, steps, false);
  if (world_rank() != 0) return;
  expect_same(from_lines, from_list, "relays");
  bool relayed = false;
  for (const PeCounters& c : from_list.pes) relayed |= c.clock_cycles > 0;
  EXPECT_TRUE(relayed);
}

// route_rounds (flat arrays over the transfers' box) gives exactly route_rounds_ref's rounds: the
// same transfers in the same rounds and order, streams renumbered alike; budgets 1, 2 and 6, long
// crossing routes, transfers that stay on their PE, and a PE sending several.
TEST(LinePlans, RouteRoundsEqualTheirReference) {
  std::mt19937 g(7);
  for (int trial = 0; trial < 30; ++trial) {
    const int32_t w = 3 + int32_t(g() % 40), h = 2 + int32_t(g() % 30);
    const int32_t x0 = int32_t(g() % 9), y0 = int32_t(g() % 9);
    std::vector<Transfer> t;
    const int n = 1 + int(g() % 400);
    for (int i = 0; i < n; ++i) {
      const PeCoord s{x0 + int32_t(g() % uint32_t(w)), y0 + int32_t(g() % uint32_t(h))};
      const PeCoord d = g() % 10 == 0 ? s : PeCoord{x0 + int32_t(g() % uint32_t(w)), y0 + int32_t(g() % uint32_t(h))};
      t.push_back({s, d, uint32_t(i), uint32_t(g() % 2)});
    }
    for (int32_t budget : {1, 2, 6}) {
      const auto a = route_rounds(t, budget), b = route_rounds_ref(t, budget);
      ASSERT_EQ(a.size(), b.size()) << "trial " << trial << ", budget " << budget;
      for (size_t r = 0; r < a.size(); ++r) {
        ASSERT_EQ(a[r].size(), b[r].size()) << "trial " << trial << ", round " << r;
        for (size_t k = 0; k < a[r].size(); ++k) {
          EXPECT_TRUE(a[r][k].src == b[r][k].src && a[r][k].dst == b[r][k].dst && a[r][k].stream == b[r][k].stream &&
                      a[r][k].relays == b[r][k].relays)
              << "trial " << trial << ", round " << r << ", transfer " << k;
        }
      }
    }
  }
}
