// Geometry and decomposition: ids, blocks, owners, rank grids.
#include <gtest/gtest.h>

#include "wafermesh/mesh/geometry.hpp"
#include "wafermesh/util/error.hpp"

using namespace wm;

TEST(Block1D, EvenAndUnevenSplits) {
  // 994 rows over 3 ranks: 994 = 3*331 + 1, so the first rank gets one more row.
  Block1D b(994, 3);
  EXPECT_EQ(b.size(0), 332);
  EXPECT_EQ(b.size(1), 331);
  EXPECT_EQ(b.size(2), 331);
  EXPECT_EQ(b.start(0), 0);
  EXPECT_EQ(b.start(1), 332);
  EXPECT_EQ(b.start(2), 663);
  // 10 over 4: 3,3,2,2 starting at 0,3,6,8.
  Block1D c(10, 4);
  const int64_t sizes[] = {3, 3, 2, 2}, starts[] = {0, 3, 6, 8};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(c.size(i), sizes[i]);
    EXPECT_EQ(c.start(i), starts[i]);
  }
}

TEST(Block1D, OwnerMatchesBlocksForManyShapes) {
  for (int64_t n = 1; n <= 40; ++n)
    for (int64_t p = 1; p <= n; ++p) {
      Block1D b(n, p);
      int64_t covered = 0;
      for (int64_t part = 0; part < p; ++part) {
        EXPECT_GE(b.size(part), 1);
        EXPECT_LE(b.size(part) - b.size(p - 1), 1) << "blocks differ by more than one";
        for (int64_t i = b.start(part); i < b.start(part) + b.size(part); ++i) EXPECT_EQ(b.owner(i), part);
        covered += b.size(part);
      }
      EXPECT_EQ(covered, n);
    }
}

TEST(MeshShape, IdsAndCoordsRoundTrip) {
  MeshShape m{750, 994};
  EXPECT_EQ(m.pe_count(), 745500);
  EXPECT_EQ(m.id(0, 0), 0);
  EXPECT_EQ(m.id(749, 0), 749);
  EXPECT_EQ(m.id(0, 1), 750);
  EXPECT_EQ(m.id(749, 993), 745499);
  for (int64_t id : {int64_t(0), int64_t(1), int64_t(749), int64_t(750), int64_t(123456), int64_t(745499)}) {
    const PeCoord c = m.coord(id);
    EXPECT_EQ(m.id(c.x, c.y), id);
  }
}

TEST(Decomposition, EveryPeHasExactlyTheOwnerWhoseBlockHoldsIt) {
  MeshShape m{13, 7};
  for (auto [px, py] : {std::pair{1, 1}, {2, 1}, {3, 2}, {4, 3}, {13, 7}, {5, 7}}) {
    Decomposition d(m, px, py);
    std::vector<int> count(size_t(m.pe_count()), 0);
    for (int r = 0; r < px * py; ++r) {
      const Region b = d.block(r);
      for (int32_t y = b.y0; y < b.y0 + b.h; ++y)
        for (int32_t x = b.x0; x < b.x0 + b.w; ++x) {
          ++count[size_t(m.id(x, y))];
          EXPECT_EQ(d.owner(x, y), r);
        }
    }
    for (int c : count) EXPECT_EQ(c, 1);
  }
}

TEST(RankGrid, PicksSmallHalfPerimeterAndHonoursForcedExtents) {
  // 750 x 994 on 4 ranks: 2x2 costs 375+497 = 872, 4x1 188+994, 1x4 750+249 = 999.
  RankGrid g = choose_rank_grid({750, 994}, 4);
  EXPECT_EQ(g.px, 2);
  EXPECT_EQ(g.py, 2);
  // 3 ranks: 1x3 costs 750+332 = 1082 < 3x1 250+994 = 1244.
  g = choose_rank_grid({750, 994}, 3);
  EXPECT_EQ(g.px, 1);
  EXPECT_EQ(g.py, 3);
  g = choose_rank_grid({750, 994}, 4, 4, 0);
  EXPECT_EQ(g.px, 4);
  EXPECT_EQ(g.py, 1);
}

TEST(RankGrid, TooManyRanksIsAUsageErrorNamingTheNumbers) {
  // 7 ranks on a 5 x 4 mesh: 7 is prime and larger than both extents.
  try {
    choose_rank_grid({5, 4}, 7);
    FAIL() << "expected UsageError";
  } catch (const UsageError& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find("7 MPI ranks"), std::string::npos) << w;
    EXPECT_NE(w.find("5 x 4"), std::string::npos) << w;
  }
  EXPECT_THROW(choose_rank_grid({3, 1}, 4), UsageError);
  EXPECT_THROW(choose_rank_grid({8, 8}, 4, 3, 0), UsageError);   // 3 does not divide 4
  EXPECT_THROW(choose_rank_grid({8, 8}, 4, 2, 3), UsageError);   // 2*3 != 4
  EXPECT_THROW(choose_rank_grid({2, 8}, 4, 4, 1), UsageError);   // 4 ranks along a 2-PE axis
}

TEST(Region, IntersectAndContains) {
  Region a{2, 3, 5, 4}, b{4, 0, 10, 5};
  const Region c = a.intersect(b);
  EXPECT_EQ(c, (Region{4, 3, 3, 2}));
  EXPECT_TRUE(a.contains(2, 3));
  EXPECT_FALSE(a.contains(7, 3));
  EXPECT_TRUE(a.intersect(Region{20, 20, 1, 1}).empty());
}
