// Re-placement of a tiled matrix onto another region and tiling (dist/replace.hpp): the data lands
// where the destination tiling says, and every PE's clock and counters equal the plain
// reference's, at every rank count.
#include <gtest/gtest.h>

#include "fabric_test_util.hpp"
#include "wafermesh/dist/replace.hpp"

namespace wm {
namespace {

using dist::BlockTiling;
using dist::ReplaceItem;

float element(int64_t r, int64_t c) { return test::fill_value(r * 1000 + c, size_t(r + c)); }

// Fills the tiles of tiling T with element(r, c) of the matrix (padding: a marker).
void fill_matrix(const BlockTiling& T, TileBuf<float>& b, RefBuf<float>& ref) {
  auto tile = [&](int32_t x, int32_t y, float* t) {
    const int64_t i = y - T.R.y0, j = x - T.R.x0, w = T.tile_cols();
    std::fill(t, t + T.tile_elems(), -7.0f);
    for (int64_t r = T.row_starts[size_t(i)]; r < T.row_starts[size_t(i) + 1]; ++r)
      for (int64_t c = T.col_starts[size_t(j)]; c < T.col_starts[size_t(j) + 1]; ++c)
        t[(r - T.row_starts[size_t(i)]) * w + (c - T.col_starts[size_t(j)])] = element(r, c);
  };
  b.for_each_local(tile);
  for (int32_t y = T.R.y0; y < T.R.y0 + T.R.h; ++y)
    for (int32_t x = T.R.x0; x < T.R.x0 + T.R.w; ++x) tile(x, y, ref.at({x, y}).data());
}

// Every element of the destination tiles holds element(r, c) of its place in the matrix.
void expect_matrix(const BlockTiling& T, const TileBuf<float>& b, const std::string& what) {
  const std::vector<float> got = b.gather();
  if (test::world_rank() != 0) return;
  size_t bad = 0;
  for (int32_t y = T.R.y0; y < T.R.y0 + T.R.h; ++y)
    for (int32_t x = T.R.x0; x < T.R.x0 + T.R.w; ++x) {
      const int64_t i = y - T.R.y0, j = x - T.R.x0, w = T.tile_cols();
      const float* t = got.data() + size_t(i * T.R.w + j) * T.tile_elems();
      for (int64_t r = T.row_starts[size_t(i)]; r < T.row_starts[size_t(i) + 1]; ++r)
        for (int64_t c = T.col_starts[size_t(j)]; c < T.col_starts[size_t(j) + 1]; ++c)
          if (t[(r - T.row_starts[size_t(i)]) * w + (c - T.col_starts[size_t(j)])] != element(r, c) && bad++ < 5)
            ADD_FAILURE() << what << ": element (" << r << ", " << c << ") wrong on PE (" << x << ", " << y << ")";
    }
  EXPECT_EQ(bad, 0u) << what;
}

struct Case {
  const char* name;
  BlockTiling from, to;
};

std::vector<Case> cases() {
  return {
      // 13 x 7 from 3 x 3 PEs onto 4 x 4 elsewhere, rows split unevenly (an empty row of PEs)
      {"3x3 -> 4x4 uneven rows", BlockTiling::even({1, 2, 3, 3}, 13, 7),
       BlockTiling::with_rows({6, 0, 4, 4}, {5, 0, 3, 5}, 7)},
      // onto fewer PEs, overlapping the source region
      {"4x4 -> 2x2 overlapping", BlockTiling::even({0, 0, 4, 4}, 13, 7), BlockTiling::even({2, 1, 2, 2}, 13, 7)},
      // the same region, another tiling (a prime side, a 1-column matrix)
      {"5x5 -> 5x5 retiled", BlockTiling::with_rows({3, 3, 5, 5}, {1, 4, 0, 2, 4}, 1), BlockTiling::even({3, 3, 5, 5}, 11, 1)},
      // everything onto one PE
      {"2x2 -> 1x1", BlockTiling::even({0, 0, 2, 2}, 4, 4), BlockTiling::even({9, 7, 1, 1}, 4, 4)},
  };
}

ReplaceItem item_of(const Case& c, const MachineParams& mp) {
  ReplaceItem it{c.from, c.to, 1, [fp = mp.wafer_fp_bytes()](int64_t e) { return uint64_t(e) * fp; }};
  return it;
}

TEST(Replace, DataAndEveryCounterMatchTheReference) {
  for (const Case& c : cases()) {
    for (const char* dtype : {"fp32", "fp16"}) {
      MachineParams mp = test::small_machine(11, 9);
      mp.wafer_dtype = dtype;
      Fabric f(MPI_COMM_WORLD, mp);
      ReferenceFabric ref(mp);
      // Uneven clocks before the move: the pieces leave at their senders' clocks.
      for (int32_t y = 0; y < 9; ++y)
        for (int32_t x = 0; x < 11; ++x)
          if ((x * 7 + y * 3) % 5 == 0) {
            if (f.is_local(x, y)) f.charge_compute(x, y, uint64_t(10 + x + y));
            ref.charge_compute({x, y}, uint64_t(10 + x + y));
          }
      const ReplaceItem it = item_of(c, mp);
      TileBuf<float> src(f, c.from.R, c.from.tile_elems(), "source");
      TileBuf<float> dst(f, c.to.R, c.to.tile_elems(), "destination");
      RefBuf<float> rsrc = ref.alloc<float>(c.from.R, c.from.tile_elems());
      RefBuf<float> rdst = ref.alloc<float>(c.to.R, c.to.tile_elems());
      fill_matrix(c.from, src, rsrc);
      dist::Replacement rep(f, {it}, c.name);
      rep.run(src, dst);
      dist::replace_ref(ref, it, int32_t(mp.route_entries / 4), rsrc, rdst);
      const std::string what = std::string(c.name) + " " + dtype;
      expect_matrix(c.to, dst, what);
      test::expect_tiles_equal(dst, rdst, what);
      test::expect_counters_equal(f, ref, what);
      EXPECT_GT(rep.rounds(), 0u) << what;
    }
  }
}

TEST(Replace, TimingOnlyRunChargesExactlyWhatTheDataRunDoes) {
  for (const Case& c : cases()) {
    const MachineParams mp = test::small_machine(11, 9);
    const ReplaceItem it = item_of(c, mp);
    std::vector<PeCounters> with_data, timing;
    {
      Fabric f(MPI_COMM_WORLD, mp);
      TileBuf<float> src(f, c.from.R, c.from.tile_elems(), "source");
      TileBuf<float> dst(f, c.to.R, c.to.tile_elems(), "destination");
      dist::Replacement rep(f, {it}, c.name);
      rep.run(src, dst);
      with_data = f.gather_counters(f.mesh().full());
    }
    {
      Fabric f(MPI_COMM_WORLD, mp);
      TileBuf<float> src(f, c.from.R, c.from.tile_elems(), "source");
      TileBuf<float> dst(f, c.to.R, c.to.tile_elems(), "destination");
      dist::Replacement rep(f, {it}, c.name);
      rep.run_timing();
      timing = f.gather_counters(f.mesh().full());
    }
    if (test::world_rank() == 0) {
      EXPECT_TRUE(with_data == timing) << c.name;
    }
  }
}

// 4 x 4 floats on 2 x 2 PEs at the origin onto PE (3, 0): four pieces of 4 floats (16 bytes,
// 4 cycles of wire at 4 bytes per cycle), one per step, from sources 3, 2, 4 and 3 hops away, all
// leaving at clock 0: the destination's clock is the farthest arrival, 4 + 4 = 8 cycles.
TEST(Replace, WorkedExampleFourPiecesIntoOnePe) {
  const MachineParams mp = test::small_machine(4, 2);
  Fabric f(MPI_COMM_WORLD, mp);
  const ReplaceItem it{BlockTiling::even({0, 0, 2, 2}, 4, 4), BlockTiling::even({3, 0, 1, 1}, 4, 4), 1,
                       [](int64_t e) { return uint64_t(e) * 4; }};
  const std::vector<dist::ReplacePiece> pieces = dist::replace_pieces(it);
  ASSERT_EQ(pieces.size(), 4u);
  for (const dist::ReplacePiece& p : pieces) EXPECT_EQ(p.bytes, 16u);
  EXPECT_EQ(dist::replace_schedule(pieces).size(), 4u);
  dist::Replacement rep(f, {it}, "worked example");
  rep.run_timing();
  EXPECT_EQ(rep.bytes_moved(), 64u);
  if (f.is_local(3, 0)) {
    EXPECT_EQ(f.clock_cycles(3, 0), 8u);
    EXPECT_EQ(f.pe(3, 0).bytes_received, 64u);
  }
  if (f.is_local(1, 1)) {
    EXPECT_EQ(f.pe(1, 1).bytes_sent, 16u);
  }
}

// Copies multiply a piece's bytes; several items share the steps.
TEST(Replace, CopiesAndItemsShareTheSteps) {
  const MachineParams mp = test::small_machine(11, 9);
  const BlockTiling a = BlockTiling::even({0, 0, 3, 3}, 9, 9), b = BlockTiling::even({5, 2, 3, 3}, 9, 9);
  auto bytes = [](int64_t e) { return uint64_t(e) * 2; };
  Fabric f(MPI_COMM_WORLD, mp);
  dist::Replacement one(f, {ReplaceItem{a, b, 3, bytes}}, "three copies");
  EXPECT_EQ(one.bytes_moved(), 9u * 9u * 2u * 3u);
  dist::Replacement two(f, {ReplaceItem{a, b, 1, bytes}, ReplaceItem{a, b, 2, bytes}}, "two items");
  EXPECT_EQ(two.bytes_moved(), 9u * 9u * 2u * 3u);
}

}  // namespace
}  // namespace wm
