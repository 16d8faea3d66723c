#pragma once
// The one allocator of large host buffers: per-PE tiles (TileBuf), the fabric's per-PE arrays, packed
// weights and activation tables.
//
// Every block is 64-byte aligned (one cache line, one AVX-512 vector). A block of 256 KiB or more is
// a mapping of its own, never a block of the malloc heap; from 2 MiB on it is 2 MiB aligned and
// advised as transparent huge pages (committed on first touch). glibc raises its mmap threshold (up
// to 32 MiB) after a large block is freed, and blocks below the new threshold then come from the
// brk heap on 4 KiB pages, where a stream over them costs a TLB miss (and a cold hardware
// prefetcher) every 4 KiB, the huge-page advice cannot help pages already faulted in, and the heap
// gives its top back to the system whenever a large block at the top is freed. Mappings given back
// are kept, up to 1 GiB in all, for the next request of the same size (a kept mapping is not
// zeroed): tile buffers of one shape come and go every step (a decode step's scratch tiles over a
// 160 x 160 region are 100 KiB - 2 MiB), and a fresh mapping or a trimmed heap costs page faults
// and the kernel's zeroing of every page.
//
// Smaller buffers streamed one after another (a rank's per-PE weight blocks, the copies of `bench
// kernel`) can share a HugePageArena instead. A container created while an ArenaScope is alive on
// its thread keeps its allocator bound to that arena for its whole life: its blocks are carved out
// of the arena (64-byte aligned bump allocation; from the heap as above once the arena is full),
// giving one back is a no-op, and the arena's memory returns to the system when the arena is
// destroyed, so every container bound to an arena must be destroyed before it. A container created
// outside any scope, or with AlignedAllocator<T>(no_arena) (the PEs' tiles and the fabric's per-PE
// arrays: working memory, not weights), never takes from an arena, even if it grows while a scope
// is alive. A copy binds to the scope alive where it is made; assigning or moving between
// containers of different arenas copies the elements (the storage stays where its container lives).
//
// Elements are default-initialised: resize() and vector(n) leave trivial elements unwritten (no
// memset of buffers the caller overwrites); assign() and explicit values construct as usual.
#include <atomic>
#include <cstddef>
#include <limits>
#include <new>
#include <type_traits>
#include <utility>

namespace wm::kernels {

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

// Binds the containers this thread creates to `arena` until destroyed (scopes nest).
class ArenaScope {
 public:
  explicit ArenaScope(HugePageArena& arena) noexcept;
  ~ArenaScope();
  ArenaScope(const ArenaScope&) = delete;
  ArenaScope& operator=(const ArenaScope&) = delete;

  // The arena of this thread's innermost live scope, or nullptr.
  static HugePageArena* current() noexcept;

 private:
  HugePageArena* previous_;
};

// `bytes` from `arena` when it is given and has room, else from a mapping (2 MiB and more) or the
// heap; 64-byte aligned. Throws std::bad_alloc. Give it back with aligned_buffer_free and the same
// `bytes` and `arena`.
void* aligned_buffer_alloc(std::size_t bytes, HugePageArena* arena);
void aligned_buffer_free(void* p, std::size_t bytes, HugePageArena* arena) noexcept;

struct NoArena {};
inline constexpr NoArena no_arena{};

template <class T>
class AlignedAllocator {
 public:
  using value_type = T;
  using propagate_on_container_copy_assignment = std::false_type;
  using propagate_on_container_move_assignment = std::false_type;
  using propagate_on_container_swap = std::false_type;
  using is_always_equal = std::false_type;

  AlignedAllocator() noexcept : arena_(ArenaScope::current()) {}
  explicit AlignedAllocator(NoArena) noexcept : arena_(nullptr) {}
  template <class U>
  AlignedAllocator(const AlignedAllocator<U>& o) noexcept : arena_(o.arena()) {}
  // A copied container binds to the scope alive where the copy is made.
  AlignedAllocator select_on_container_copy_construction() const noexcept { return AlignedAllocator(); }

  T* allocate(std::size_t n) {
    if (n > std::numeric_limits<std::size_t>::max() / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(aligned_buffer_alloc(n * sizeof(T), arena_));
  }
  void deallocate(T* p, std::size_t n) noexcept { aligned_buffer_free(p, n * sizeof(T), arena_); }
  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... A>
  void construct(U* p, A&&... a) {
    ::new (static_cast<void*>(p)) U(std::forward<A>(a)...);
  }

  HugePageArena* arena() const noexcept { return arena_; }
  template <class U>
  bool operator==(const AlignedAllocator<U>& o) const noexcept { return arena_ == o.arena(); }

 private:
  HugePageArena* arena_;
};

}  // namespace wm::kernels
