#include "wafermesh/kernels/aligned_buffer.hpp"

#include <sys/mman.h>

#include <cstdlib>

namespace wm::kernels {

void* aligned_buffer_alloc(std::size_t bytes) {
  constexpr std::size_t kLine = 64, kHuge = std::size_t{2} << 20;
  const std::size_t align = bytes >= kHuge ? kHuge : kLine;
  const std::size_t size = (bytes + align - 1) / align * align;  // aligned_alloc needs a multiple
  void* p = std::aligned_alloc(align, size == 0 ? align : size);
  if (p == nullptr) throw std::bad_alloc();
  // Advice only: without THP (or with THP "never") this is a no-op and small pages are used.
  if (align == kHuge) (void)madvise(p, size, MADV_HUGEPAGE);
  return p;
}

void aligned_buffer_free(void* p) noexcept { std::free(p); }

}  // namespace wm::kernels
