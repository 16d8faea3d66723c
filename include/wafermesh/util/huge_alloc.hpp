#pragma once
// Huge-page mappings for large buffers, and an allocator for the per-rank arrays built on them.
#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <utility>

namespace wm {

inline constexpr std::size_t kHugePage = std::size_t(2) << 20;

// `bytes` rounded up to whole huge pages, mapped privately at a 2 MiB boundary and advised as
// transparent huge pages; pages are committed on first touch. Straight from mmap, never from the
// malloc heap: glibc raises its mmap threshold (up to 32 MiB) after freeing a large block, and
// later blocks below it then come from the brk heap on 4 KiB pages (the advice cannot help pages
// already faulted in there). On the development VM such blocks streamed once per token showed
// episodes several times slower; the decode of BitNet 2B4T had tokens at 3-6x the usual time.
// Throws std::bad_alloc when the system refuses the mapping (as malloc would fail). Release with
// unmap_huge(p, bytes) with the same `bytes`. A mapping may come from one given back earlier: its
// contents are then not zero.
inline std::size_t huge_rounded(std::size_t bytes) {
  return (std::max<std::size_t>(bytes, 1) + kHugePage - 1) / kHugePage * kHugePage;
}

namespace detail {
// Mappings given back, kept for the next request of the same size (up to kKeptBytes in all): tile
// buffers of the same shape come and go every step, and a fresh mapping costs page faults and the
// kernel's zeroing of every page on first touch.
struct KeptMappings {
  static constexpr std::size_t kKeptBytes = std::size_t(256) << 20;
  std::mutex m;
  std::multimap<std::size_t, void*> kept;  // rounded size -> mapping
  std::size_t bytes = 0;
  ~KeptMappings() {
    for (auto& [size, p] : kept) munmap(p, size);
  }
};
inline KeptMappings& kept_mappings() {
  static KeptMappings k;
  return k;
}
}  // namespace detail

inline void* map_huge(std::size_t bytes) {
  const std::size_t size = huge_rounded(bytes), reserve = size + kHugePage;
  {
    detail::KeptMappings& k = detail::kept_mappings();
    std::lock_guard<std::mutex> lock(k.m);
    const auto it = k.kept.find(size);
    if (it != k.kept.end()) {
      void* p = it->second;
      k.kept.erase(it);
      k.bytes -= size;
      return p;
    }
  }
  void* raw = mmap(nullptr, reserve, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const std::uintptr_t start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > start) munmap(raw, aligned - start);
  const std::uintptr_t end = start + reserve, aligned_end = aligned + size;
  if (end > aligned_end) munmap(reinterpret_cast<void*>(aligned_end), end - aligned_end);
  void* p = reinterpret_cast<void*>(aligned);
  (void)madvise(p, size, MADV_HUGEPAGE);  // advice only: without THP, small pages are used
  return p;
}
inline void unmap_huge(void* p, std::size_t bytes) noexcept {
  if (p == nullptr) return;
  const std::size_t size = huge_rounded(bytes);
  detail::KeptMappings& k = detail::kept_mappings();
  {
    std::lock_guard<std::mutex> lock(k.m);
    if (k.bytes + size <= detail::KeptMappings::kKeptBytes) {
      try {
        k.kept.emplace(size, p);
        k.bytes += size;
        return;
      } catch (...) {  // no room to remember it: give it back
      }
    }
  }
  munmap(p, size);
}

// Allocator for the large per-rank arrays of tiles and per-PE figures: blocks of 4 MiB and more
// come from map_huge (first touch faults in 2 MiB at a time instead of 4 KiB, and streams stay on
// huge pages); smaller ones from malloc.
template <class T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() noexcept = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}

  static constexpr std::size_t kMapped = 2 * kHugePage;
  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    if (bytes >= kMapped) return static_cast<T*>(map_huge(bytes));
    void* p = std::malloc(bytes ? bytes : 1);
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (n * sizeof(T) >= kMapped) unmap_huge(p, n * sizeof(T));
    else std::free(p);
  }
  // resize() default-initialises (trivial types stay unwritten: no memset of tiles that the
  // caller overwrites); assign()/explicit values construct as usual.
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... A>
  void construct(U* p, A&&... a) {
    ::new (static_cast<void*>(p)) U(std::forward<A>(a)...);
  }
  template <class U>
  bool operator==(const HugePageAllocator<U>&) const noexcept { return true; }
};

}  // namespace wm
