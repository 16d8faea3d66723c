#pragma once
// Allocator for packed weights and tables: 64-byte aligned (one cache line, one AVX-512 vector);
// buffers of 2 MiB or more are 2 MiB aligned and advised as transparent huge pages, because a
// decode GEMV streams them once per token and 4 KiB pages cost a TLB miss (and a cold hardware
// prefetcher) every 4 KiB.
#include <cstddef>
#include <new>

namespace wm::kernels {

void* aligned_buffer_alloc(std::size_t bytes);
void aligned_buffer_free(void* p) noexcept;

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
