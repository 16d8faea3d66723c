// Reading results off the wafer to every rank (dist/host_io.hpp) at 1, 2 and 4 ranks.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "fabric_test_util.hpp"
#include "wafermesh/dist/host_io.hpp"

using namespace wm;
using namespace wm::test;

// RowsReader::read (one collective for several buffers) gives, on every rank, exactly the rows
// read_row_everywhere gives buffer by buffer: regions inside one rank's block and across blocks,
// rows other than the first, tiles of several elements.
TEST(HostIo, RowsOfSeveralBuffersInOneCollective) {
  Fabric f(MPI_COMM_WORLD, small_machine(9, 7));
  const std::vector<Region> regions = {{0, 0, 3, 2}, {2, 3, 7, 4}, {5, 1, 4, 3}, {8, 6, 1, 1}};
  std::vector<std::unique_ptr<TileBuf<float>>> bufs;
  for (size_t b = 0; b < regions.size(); ++b) {
    bufs.push_back(std::make_unique<TileBuf<float>>(f, regions[b], b + 1, "rows " + std::to_string(b)));
    bufs.back()->for_each_local([&](int32_t x, int32_t y, float* t) {
      for (size_t e = 0; e <= b; ++e) t[e] = float(1000 * b + 100 * size_t(y) + 10 * size_t(x) + e);
    });
  }
  // One reader kept across reads (as the decode keeps it), its buffers growing and shrinking: rows
  // 0, 1, 0 and then the first buffer alone.
  dist::RowsReader<float> reader;
  for (int32_t row : {0, 1, 0, -1}) {
    std::vector<const TileBuf<float>*> ptrs;
    std::vector<float> want;
    for (const auto& b : bufs) {
      if (row < 0 && b != bufs.front()) continue;
      const int32_t r0 = std::max(row, 0);
      if (r0 >= b->region().h) continue;
      ptrs.push_back(b.get());
      const std::vector<float> r = dist::read_row_everywhere(f, *b, r0);
      want.insert(want.end(), r.begin(), r.end());
    }
    const int32_t r0 = std::max(row, 0);
    dist::RowsReader<float> fresh;
    EXPECT_EQ(fresh.read(f, ptrs, r0), want) << "row " << row << ", rank " << world_rank();
    EXPECT_EQ(reader.read(f, ptrs, r0), want) << "kept reader, row " << row << ", rank " << world_rank();
  }
}
