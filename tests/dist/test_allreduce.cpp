// Allreduce along lines: every algorithm equals its serial reference bit for bit on P = 1, 2, 3,
// 7, 16, 33, along X and Y, at 1, 2 and 4 ranks; the K-tree's critical path grows sub-linearly
// while the pipeline's grows linearly (cost counters).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>

#include "fabric_test_util.hpp"
#include "wafermesh/dist/allreduce.hpp"

using namespace wm;
using namespace wm::dist;
using namespace wm::test;

namespace {
uint64_t max_clock(Fabric& f, const Region& r) { return f.summarize(r).max_clock_cycles; }
}  // namespace

TEST(Allreduce, KtreeLevelsMatchTheWorkedExample) {
  // P = 9, K = 2, 3 groups: {0,1,2} {3,4,5} {6,7,8} -> roots 1, 4, 7 -> top group root 4.
  const auto lv = ktree_levels(9, 2, 3);
  ASSERT_EQ(lv.size(), 2u);
  ASSERT_EQ(lv[0].size(), 3u);
  EXPECT_EQ(lv[0][1].members, (std::vector<int32_t>{3, 4, 5}));
  EXPECT_EQ(lv[0][1].members[lv[0][1].root], 4);
  ASSERT_EQ(lv[1].size(), 1u);
  EXPECT_EQ(lv[1][0].members, (std::vector<int32_t>{1, 4, 7}));
  EXPECT_EQ(lv[1][0].members[lv[1][0].root], 4);
  // Default groups for P = 16: round(sqrt(16)) = 4.
  EXPECT_EQ(ktree_levels(16, 2, 0)[0].size(), 4u);
  EXPECT_THROW(ktree_levels(16, 0, 0), UsageError);
}

TEST(Allreduce, EveryAlgorithmMatchesItsReferenceOnEveryLine) {
  MachineParams mp = small_machine(35, 35);
  mp.route_entries = 64;
  Fabric f(MPI_COMM_WORLD, mp);
  for (int32_t P : {1, 2, 3, 7, 16, 33})
    for (Axis axis : {Axis::X, Axis::Y})
      for (AllreduceAlgo algo : {AllreduceAlgo::pipeline, AllreduceAlgo::ring, AllreduceAlgo::ktree})
        for (size_t E : {size_t(1), size_t(5), size_t(40)}) {
          if (E == 40 && P > 7) continue;
          AllreduceSpec spec;
          spec.algo = algo;
          // A 3-line region at an offset; lines of length P along `axis`.
          const Region r = axis == Axis::X ? Region{1, 2, P, 3} : Region{2, 1, 3, P};
          TileBuf<float> b(f, r, E, "t");
          b.for_each_local([&](int32_t x, int32_t y, float* t) {
            for (size_t k = 0; k < E; ++k) t[k] = fill_value(f.mesh().id(x, y), k);
          });
          allreduce_lines(f, b, axis, spec);
          const std::vector<float> got = b.gather();
          if (world_rank() != 0) continue;
          const std::string what = std::string(allreduce_algo_name(algo)) + " P=" + std::to_string(P) +
                                   (axis == Axis::X ? " X" : " Y") + " E=" + std::to_string(E);
          for (int32_t line = 0; line < 3; ++line) {
            std::vector<std::vector<float>> tiles;
            for (int32_t pos = 0; pos < P; ++pos) {
              const PeCoord c = line_pe(r, axis, line, pos);
              std::vector<float> t(E);
              for (size_t k = 0; k < E; ++k) t[k] = fill_value(f.mesh().id(c.x, c.y), k);
              tiles.push_back(t);
            }
            const std::vector<float> want = allreduce_line_reference(spec, tiles);
            for (int32_t pos = 0; pos < P; ++pos) {
              const PeCoord c = line_pe(r, axis, line, pos);
              const float* g = got.data() + (size_t(c.y - r.y0) * size_t(r.w) + size_t(c.x - r.x0)) * E;
              EXPECT_EQ(std::memcmp(g, want.data(), E * sizeof(float)), 0) << what << " line " << line << " pos " << pos;
            }
            // The reference is a real sum: compare with a double-precision sum.
            for (size_t k = 0; k < E; ++k) {
              double s = 0, mag = 0;
              for (const auto& t : tiles) {
                s += t[k];
                mag += std::fabs(t[k]);
              }
              EXPECT_NEAR(want[k], s, mag * P * 1.2e-7 + 1e-30) << what;
            }
          }
        }
}

TEST(Allreduce, KtreeCriticalPathGrowsSublinearlyPipelineLinearly) {
  MachineParams mp = small_machine(64, 1);
  Fabric f(MPI_COMM_WORLD, mp);
  std::map<std::pair<int, int32_t>, std::pair<AllreduceStats, uint64_t>> res;
  auto at = [&](AllreduceAlgo a, int32_t P) { return res[std::make_pair(int(a), P)]; };
  for (AllreduceAlgo algo : {AllreduceAlgo::pipeline, AllreduceAlgo::ktree})
    for (int32_t P : {16, 64}) {
      const Region r{0, 0, P, 1};
      f.barrier_clocks(f.mesh().full());
      const uint64_t t0 = max_clock(f, r);
      TileBuf<float> b(f, r, 8, "t");
      AllreduceSpec spec;
      spec.algo = algo;
      const AllreduceStats st = allreduce_lines(f, b, Axis::X, spec);
      res[std::make_pair(int(algo), P)] = {st, max_clock(f, r) - t0};
    }
  // Pipeline: P - 1 stages; from P = 16 to 64 (x4) its stages and cycles grow about x4.
  EXPECT_EQ(at(AllreduceAlgo::pipeline, 16).first.critical_stages, 15u);
  EXPECT_EQ(at(AllreduceAlgo::pipeline, 64).first.critical_stages, 63u);
  const double pipe = double(at(AllreduceAlgo::pipeline, 64).second) /
                      double(at(AllreduceAlgo::pipeline, 16).second);
  EXPECT_GT(pipe, 3.5);
  // K-tree, K = 2, sqrt(P) groups: stages ~ 2 * sqrt(P) / 2 per level: 16 -> 4 groups of 4: 2 + 2 = 4;
  // 64 -> 8 groups of 8: 4 + 4 = 8: x2 for x4 PEs.
  EXPECT_EQ(at(AllreduceAlgo::ktree, 16).first.critical_stages, 4u);
  EXPECT_EQ(at(AllreduceAlgo::ktree, 64).first.critical_stages, 8u);
  const double tree = double(at(AllreduceAlgo::ktree, 64).second) /
                      double(at(AllreduceAlgo::ktree, 16).second);
  EXPECT_LT(tree, 3.0) << "sub-linear";
  EXPECT_LT(at(AllreduceAlgo::ktree, 64).second, at(AllreduceAlgo::pipeline, 64).second);
}
