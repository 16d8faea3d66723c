// The PLMR cost formula, routes and line permutations, on hand-computed cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "wafermesh/noc/cost_model.hpp"
#include "wafermesh/noc/line_plans.hpp"

using namespace wm;

namespace {
CostModel model() {
  CostModel c;
  c.alpha_cycles = 2;
  c.beta_cycles = 30;
  c.link_bytes_per_cycle = 4;
  c.macs_per_cycle = 4;
  c.task_overhead_cycles = 10;
  return c;
}
}  // namespace

TEST(CostModel, TransferFormulaHandComputed) {
  const CostModel c = model();
  // 3 hops, no relay, 10 bytes alone on its links: 2*3 + 0 + ceil(10/4)=3 * 1 = 9
  EXPECT_EQ(c.transfer_cycles(3, 0, 10, 1), 9u);
  // the same sharing its busiest link with two other messages (load 3): 6 + 3*3 = 15
  EXPECT_EQ(c.transfer_cycles(3, 0, 10, 3), 15u);
  // two relay stages: 6 + 30*2 + 3 = 69
  EXPECT_EQ(c.transfer_cycles(3, 2, 10, 1), 69u);
  // exact multiple of the link width: 1 hop, 16 bytes: 2 + 4 = 6
  EXPECT_EQ(c.transfer_cycles(1, 0, 16, 1), 6u);
  // WSE-2 defaults, 1 KiB over 749 hops (natural-ring wrap of a 750-PE row): 749 + 256 = 1005
  EXPECT_EQ(CostModel{}.transfer_cycles(749, 0, 1024, 1), 1005u);
}

TEST(CostModel, ComputeFormulaHandComputed) {
  const CostModel c = model();
  EXPECT_EQ(c.compute_cycles(0), 0u);   // no task, no overhead
  EXPECT_EQ(c.compute_cycles(1), 11u);  // 10 + ceil(1/4) = 11
  EXPECT_EQ(c.compute_cycles(9), 13u);  // 10 + ceil(9/4) = 13
  EXPECT_EQ(c.compute_cycles(8), 12u);  // 10 + 2
  EXPECT_EQ(c.wire_cycles(0), 0u);
  EXPECT_EQ(c.wire_cycles(1), 1u);
}

TEST(Routes, DimensionOrderedXThenY) {
  const MeshShape m{5, 4};
  std::vector<uint64_t> links;
  // (1,1) -> (3,3): east at (1,1), (2,1), then south at (3,1), (3,2).
  for_each_route_link(m, {1, 1}, {3, 3}, [&](uint64_t l) { links.push_back(l); });
  const std::vector<uint64_t> want = {uint64_t(m.id(1, 1)) * 4 + kLinkEast, uint64_t(m.id(2, 1)) * 4 + kLinkEast,
                                      uint64_t(m.id(3, 1)) * 4 + kLinkSouth, uint64_t(m.id(3, 2)) * 4 + kLinkSouth};
  EXPECT_EQ(links, want);
  // (4,3) -> (0,2): west four times along row 3, then north once at (0,3).
  links.clear();
  for_each_route_link(m, {4, 3}, {0, 2}, [&](uint64_t l) { links.push_back(l); });
  ASSERT_EQ(links.size(), 5u);
  EXPECT_EQ(links[0], uint64_t(m.id(4, 3)) * 4 + kLinkWest);
  EXPECT_EQ(links[4], uint64_t(m.id(0, 3)) * 4 + kLinkNorth);
  EXPECT_EQ(hop_count({4, 3}, {0, 2}), 5u);
}

TEST(Routes, ReverseWalkIsTheRouteBackwardsAndStopsWhenAsked) {
  const MeshShape m{6, 5};
  for (auto [a, b] : {std::pair{PeCoord{1, 1}, PeCoord{3, 3}}, {PeCoord{4, 3}, PeCoord{0, 2}},
                      {PeCoord{2, 4}, PeCoord{2, 0}}, {PeCoord{5, 0}, PeCoord{0, 0}}, {PeCoord{3, 3}, PeCoord{3, 3}}}) {
    std::vector<uint64_t> fwd, rev;
    for_each_route_link(m, a, b, [&](uint64_t l) { fwd.push_back(l); });
    for_each_route_link_reverse(m, a, b, [&](uint64_t l) {
      rev.push_back(l);
      return true;
    });
    std::reverse(rev.begin(), rev.end());
    EXPECT_EQ(rev, fwd);
  }
  // Stopping after two links visits exactly the last two links of the route.
  std::vector<uint64_t> fwd, rev;
  for_each_route_link(m, {0, 0}, {3, 2}, [&](uint64_t l) { fwd.push_back(l); });
  for_each_route_link_reverse(m, {0, 0}, {3, 2}, [&](uint64_t l) {
    rev.push_back(l);
    return rev.size() < 2;
  });
  ASSERT_EQ(rev.size(), 2u);
  EXPECT_EQ(rev[0], fwd[4]);
  EXPECT_EQ(rev[1], fwd[3]);
}

TEST(LinePerm, InterleavedMatchesDesignExample) {
  // P = 6: logical 0..5 at physical 0 2 4 5 3 1.
  const LinePerm p = LinePerm::interleaved(6);
  const int32_t want[] = {0, 2, 4, 5, 3, 1};
  for (int l = 0; l < 6; ++l) EXPECT_EQ(p.phys(l), want[l]) << l;
  // P = 5: physical i holds i/2 (even) or 4-(i-1)/2 (odd): 0,4,1,3,2 -> logical 0..4 at 0,2,4,3,1.
  const LinePerm q = LinePerm::interleaved(5);
  const int32_t want5[] = {0, 2, 4, 3, 1};
  for (int l = 0; l < 5; ++l) EXPECT_EQ(q.phys(l), want5[l]) << l;
}

TEST(LinePerm, InterleavedRingIsOneCycleWithStepsOfAtMostTwoHops) {
  for (int32_t n = 3; n <= 64; ++n) {
    const LinePerm p = LinePerm::interleaved(n);
    std::set<int32_t> seen;
    int32_t phys = p.phys(0);
    for (int32_t step = 0; step < n; ++step) {
      seen.insert(phys);
      const int32_t next = p.phys((p.logical(phys) + 1) % n);
      EXPECT_LE(std::abs(next - phys), 2) << "n=" << n << " at physical " << phys;
      EXPECT_GE(std::abs(next - phys), 1) << "n=" << n;
      phys = next;
    }
    EXPECT_EQ(phys, p.phys(0)) << "n=" << n << ": walking n steps must return to the start";
    EXPECT_EQ(seen.size(), size_t(n)) << "n=" << n << ": the ring must visit every PE once";
  }
}

TEST(LinePerm, RejectsNonPermutations) {
  EXPECT_THROW(LinePerm::from({0, 0, 1}, "dup"), std::invalid_argument);
  EXPECT_THROW(LinePerm::from({0, 3}, "range"), std::invalid_argument);
}
