// AlignedAllocator, HugePageArena and ArenaScope (aligned_buffer.hpp).
#include <gtest/gtest.h>

#include <cstdint>
#include <thread>
#include <vector>

#include "wafermesh/kernels/aligned_buffer.hpp"
#include "wafermesh/kernels/pack.hpp"

namespace wm::kernels {
namespace {

using Bytes = std::vector<std::uint8_t, AlignedAllocator<std::uint8_t>>;

bool aligned(const void* p, std::uintptr_t a) { return reinterpret_cast<std::uintptr_t>(p) % a == 0; }

TEST(AlignedBuffer, HeapBuffersAreLineAlignedAndLargeOnesHugePageAligned) {
  const Bytes small(1000, 1), large(std::size_t{3} << 20, 2);
  EXPECT_TRUE(aligned(small.data(), 64));
  EXPECT_TRUE(aligned(large.data(), std::uintptr_t{2} << 20));
}

TEST(AlignedBuffer, ScopeRoutesAllocationsIntoTheArenaUntilItEnds) {
  HugePageArena arena(std::size_t{4} << 20);
  EXPECT_EQ(arena.capacity(), std::size_t{4} << 20);
  EXPECT_TRUE(aligned(arena.take(0), std::uintptr_t{2} << 20));  // the first block starts the arena
  Bytes outside(100, 7);
  EXPECT_FALSE(arena.owns(outside.data()));
  {
    ArenaScope scope(arena);
    Bytes a(100, 1), b(5000, 2);
    EXPECT_TRUE(arena.owns(a.data()));
    EXPECT_TRUE(arena.owns(b.data()));
    EXPECT_TRUE(aligned(a.data(), 64));
    EXPECT_TRUE(aligned(b.data(), 64));
    EXPECT_GE(b.data() - a.data(), 128);  // 100 bytes round up to two lines; blocks never overlap
    EXPECT_EQ(arena.used(), 128u + 5056u);
    {
      HugePageArena inner(1);
      ArenaScope nested(inner);
      Bytes c(10, 3);
      EXPECT_TRUE(inner.owns(c.data()));
    }
    Bytes d(10, 4);  // back on the outer arena
    EXPECT_TRUE(arena.owns(d.data()));
  }
  Bytes after(100, 5);
  EXPECT_FALSE(arena.owns(after.data()));
}

TEST(AlignedBuffer, FullArenaFallsBackToTheHeap) {
  HugePageArena arena(1);  // one 2 MiB huge page
  ArenaScope scope(arena);
  Bytes fits((std::size_t{2} << 20) - 64, 1), spills(128, 2);
  EXPECT_TRUE(arena.owns(fits.data()));
  EXPECT_FALSE(arena.owns(spills.data()));
  EXPECT_EQ(spills[127], 2);
}

TEST(AlignedBuffer, ArenaBlocksMayBeFreedOnAnotherThread) {
  HugePageArena arena(1);
  std::vector<Bytes> made;
  {
    ArenaScope scope(arena);
    made.emplace_back(256, 9);
  }
  ASSERT_TRUE(arena.owns(made[0].data()));
  std::thread([&] { made.clear(); }).join();  // a no-op free, not std::free of arena memory
  EXPECT_TRUE(made.empty());
}

TEST(AlignedBuffer, ThreadsSharingAnArenaGetDisjointBlocks) {
  HugePageArena arena(1);
  std::vector<std::vector<Bytes>> made(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      ArenaScope scope(arena);
      for (int i = 0; i < 200; ++i) made[size_t(t)].emplace_back(100, std::uint8_t(t));
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(arena.used(), 4u * 200u * 128u);
  for (int t = 0; t < 4; ++t) {
    for (const Bytes& b : made[size_t(t)]) {
      ASSERT_TRUE(arena.owns(b.data()));
      for (std::uint8_t v : b) ASSERT_EQ(v, t);  // no block was handed out twice
    }
  }
}

TEST(AlignedBuffer, PackedMatrixCopiedIntoAnArenaIsEqual) {
  std::vector<std::int8_t> w(7 * 11);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<std::int8_t>(static_cast<int>(i % 3) - 1);
  const auto m = TernaryMatrixLut::from_int8(w.data(), 7, 11, 11);
  HugePageArena arena(1);
  std::vector<TernaryMatrixLut> copies;
  {
    ArenaScope scope(arena);
    copies.assign(3, m);
  }
  std::vector<std::int8_t> back(w.size());
  for (const auto& c : copies) {
    EXPECT_TRUE(arena.owns(c.tile(0)));
    c.unpack(back.data(), 11);
    EXPECT_EQ(back, w);
  }
}

}  // namespace
}  // namespace wm::kernels
