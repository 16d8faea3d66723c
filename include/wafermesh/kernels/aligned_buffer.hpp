#pragma once
// Allocator for packed weights and tables: 64-byte aligned (one cache line, one AVX-512 vector);
// buffers of 2 MiB or more are mapped on their own, 2 MiB aligned and advised as transparent huge
// pages (wm::map_huge, never the malloc heap), because a decode GEMV streams them once per token
// and 4 KiB pages cost a TLB miss (and a cold hardware prefetcher) every 4 KiB.
//
// Smaller buffers can be placed in a HugePageArena instead: while an ArenaScope is alive on a
// thread, that thread's aligned_buffer_alloc calls are carved out of the arena (64-byte aligned,
// bump allocation; falls back to the heap when the arena is full). Freeing a buffer that lies in
// a live arena is a no-op; the arena's memory goes back to the system when the arena is destroyed,
// so every buffer carved from it must be freed (or never touched again) before that.
// Why: many separate sub-2 MiB buffers streamed one after another (the DRAM copies of
// `bench kernel`, a rank's PE weight blocks) sit on 4 KiB pages; on the development VM that
// produced episodes of ~0.2 s and longer in which such a stream ran 5-15x slower (2 GB/s instead of
// 30), which never happened once the same bytes sat on huge pages.
#include <atomic>
#include <cstddef>
#include <new>

namespace wm::kernels {

void* aligned_buffer_alloc(std::size_t bytes);
void aligned_buffer_free(void* p) noexcept;

class HugePageArena {
 public:
  // Reserves `bytes` (rounded up to 2 MiB) of address space, 2 MiB aligned, advised as huge pages;
  // pages are committed on first touch. Throws std::bad_alloc when the reservation fails.
  explicit HugePageArena(std::size_t bytes);
  ~HugePageArena();
  HugePageArena(const HugePageArena&) = delete;
  HugePageArena& operator=(const HugePageArena&) = delete;

  // 64-byte aligned block of `bytes`, or nullptr when the arena has no room left. Thread-safe
  // (scopes on several threads may share one arena).
  void* take(std::size_t bytes) noexcept;
  bool owns(const void* p) const noexcept;
  std::size_t capacity() const noexcept { return size_; }
  std::size_t used() const noexcept { return used_.load(std::memory_order_relaxed); }

 private:
  char* base_ = nullptr;
  std::size_t size_ = 0;
  std::atomic<std::size_t> used_{0};
};

// Routes this thread's aligned_buffer_alloc calls to `arena` until destroyed (scopes nest).
class ArenaScope {
 public:
  explicit ArenaScope(HugePageArena& arena) noexcept;
  ~ArenaScope();
  ArenaScope(const ArenaScope&) = delete;
  ArenaScope& operator=(const ArenaScope&) = delete;

 private:
  HugePageArena* previous_;
};

template <class T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(aligned_buffer_alloc(n * sizeof(T))); }
  void deallocate(T* p, std::size_t) noexcept { aligned_buffer_free(p); }
  template <class U>
  bool operator==(const AlignedAllocator<U>&) const noexcept { return true; }
};

}  // namespace wm::kernels
