// AlignedAllocator, HugePageArena and ArenaScope (aligned_buffer.hpp): alignment, large blocks
// outside the malloc heap, kept mappings, and which containers take their blocks from an arena.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <thread>
#include <vector>

#include "wafermesh/kernels/aligned_buffer.hpp"
#include "wafermesh/kernels/pack.hpp"

extern char end;  // the end of the program's data: the brk heap lies above it

namespace wm::kernels {
namespace {

using Bytes = std::vector<std::uint8_t, AlignedAllocator<std::uint8_t>>;

bool aligned(const void* p, std::uintptr_t a) { return reinterpret_cast<std::uintptr_t>(p) % a == 0; }

TEST(AlignedBuffer, HeapBuffersAreLineAlignedAndLargeOnesHugePageAligned) {
  const Bytes small(1000, 1), large(std::size_t{3} << 20, 2);
  EXPECT_TRUE(aligned(small.data(), 64));
  EXPECT_TRUE(aligned(large.data(), std::uintptr_t{2} << 20));
}

// Large buffers never come from the brk heap, even after glibc has raised its mmap threshold (it
// does so when a large mmapped block is freed; blocks below the new threshold then come from the
// heap, on 4 KiB pages): every block of 256 KiB and more is a mapping of its own.
TEST(AlignedBuffer, LargeBuffersAreMappedOutsideTheMallocHeap) {
  void* big = std::malloc(std::size_t{24} << 20);  // mmapped; freeing it raises the threshold to 24 MiB
  ASSERT_NE(big, nullptr);
  static_cast<volatile char*>(big)[0] = 1;
  std::free(big);
  auto in_heap = [](const void* p) {
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    return a >= reinterpret_cast<std::uintptr_t>(&end) && a < reinterpret_cast<std::uintptr_t>(sbrk(0));
  };
  void* probe = std::malloc(std::size_t{3} << 20);  // what the threshold does to a plain 3 MiB block
  const bool threshold_raised = in_heap(probe);
  std::free(probe);
  const Bytes a(std::size_t{3} << 20, 1);
  std::vector<float, AlignedAllocator<float>> b(std::size_t{5} << 20 >> 2, 1.0f);
  EXPECT_FALSE(in_heap(a.data()));
  EXPECT_FALSE(in_heap(b.data()));
  EXPECT_TRUE(aligned(a.data(), std::uintptr_t{2} << 20));
  EXPECT_TRUE(aligned(b.data(), std::uintptr_t{2} << 20));
  // From 256 KiB on, smaller blocks are mappings of their own too (page aligned): a decode step's
  // scratch tiles of this size come and go every step, and the heap would give its top back.
  const Bytes mid(std::size_t{1536} << 10, 3), low(std::size_t{256} << 10, 4);
  EXPECT_FALSE(in_heap(mid.data()));
  EXPECT_FALSE(in_heap(low.data()));
  EXPECT_TRUE(aligned(mid.data(), 4096));
  EXPECT_TRUE(aligned(low.data(), 4096));
  std::printf("a plain 3 MiB malloc after freeing 24 MiB came from the heap: %s\n", threshold_raised ? "yes" : "no");
}

// A mapping given back serves the next request of its size (here a size no other test uses).
TEST(AlignedBuffer, MappingsGivenBackAreReusedForTheSameSize) {
  const std::size_t bytes = (std::size_t{13} << 20) + 5;
  void* first = aligned_buffer_alloc(bytes, nullptr);
  static_cast<volatile char*>(first)[0] = 1;
  aligned_buffer_free(first, bytes, nullptr);
  void* again = aligned_buffer_alloc(bytes, nullptr);
  EXPECT_EQ(again, first);
  aligned_buffer_free(again, bytes, nullptr);
  // Below 2 MiB as well (a size no other test uses), and the kept block keeps its bytes.
  const std::size_t mid = (std::size_t{700} << 10) + 3;
  auto* m1 = static_cast<volatile char*>(aligned_buffer_alloc(mid, nullptr));
  m1[mid - 1] = 7;
  aligned_buffer_free(const_cast<char*>(m1), mid, nullptr);
  auto* m2 = static_cast<volatile char*>(aligned_buffer_alloc(mid, nullptr));
  EXPECT_EQ(m2, m1);
  EXPECT_EQ(m2[mid - 1], 7);
  aligned_buffer_free(const_cast<char*>(m2), mid, nullptr);
}

// A full cache makes room by giving back the mappings given back longest ago: a placement's
// temporaries cannot keep a decode step's buffers out of it for good. 600 mappings of 2 MiB (address
// space only, never touched) fill the 1 GiB cache to within 2 MiB; a buffer given back after them is
// still kept, with its bytes.
TEST(AlignedBuffer, AFullCacheGivesBackItsOldestMappings) {
  const std::size_t two = std::size_t{2} << 20;
  std::vector<void*> olds;
  for (int i = 0; i < 600; ++i) olds.push_back(aligned_buffer_alloc(two, nullptr));
  for (void* p : olds) aligned_buffer_free(p, two, nullptr);
  const std::size_t bytes = (std::size_t{9} << 20) + 11;  // a size no other test uses: not in the cache
  auto* p = static_cast<volatile char*>(aligned_buffer_alloc(bytes, nullptr));
  p[0] = 5;
  p[bytes - 1] = 6;
  aligned_buffer_free(const_cast<char*>(p), bytes, nullptr);
  auto* q = static_cast<volatile char*>(aligned_buffer_alloc(bytes, nullptr));
  EXPECT_EQ(q[0], 5);
  EXPECT_EQ(q[bytes - 1], 6);
  aligned_buffer_free(const_cast<char*>(q), bytes, nullptr);
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

// A container made outside any scope (the fabric's per-PE arrays, made with the fabric) never takes
// from an arena, even when it grows while a scope is alive: its blocks outlive the arena.
TEST(AlignedBuffer, ContainerMadeOutsideAScopeNeverTakesFromTheArena) {
  HugePageArena arena(1);
  Bytes outside;
  {
    ArenaScope scope(arena);
    outside.assign(1000, 3);
    outside.resize(5000);
  }
  EXPECT_FALSE(arena.owns(outside.data()));
  EXPECT_EQ(arena.used(), 0u);
  EXPECT_EQ(outside[999], 3);
}

// A container made with no_arena (tiles, per-PE arrays) ignores a live scope.
TEST(AlignedBuffer, ContainerMadeWithNoArenaIgnoresTheScope) {
  HugePageArena arena(1);
  ArenaScope scope(arena);
  Bytes own{AlignedAllocator<std::uint8_t>(no_arena)};
  own.assign(1000, 6);
  EXPECT_FALSE(arena.owns(own.data()));
  Bytes copy(own);  // a copy binds to the live scope
  EXPECT_TRUE(arena.owns(copy.data()));
  EXPECT_EQ(copy[999], 6);
}

// A container made inside a scope stays bound to its arena after the scope ends, and moving it into
// a container of the heap copies the elements there.
TEST(AlignedBuffer, ContainerMadeInAScopeKeepsItsArena) {
  HugePageArena arena(1);
  std::optional<Bytes> inside;
  {
    ArenaScope scope(arena);
    inside.emplace();
  }
  inside->assign(300, 5);
  EXPECT_TRUE(arena.owns(inside->data()));
  Bytes heap(10, 1);
  heap = std::move(*inside);
  EXPECT_FALSE(arena.owns(heap.data()));
  EXPECT_EQ(heap.size(), 300u);
  EXPECT_EQ(heap[299], 5);
  inside.reset();
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
