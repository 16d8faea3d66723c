#include "wafermesh/kernels/aligned_buffer.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <vector>

namespace wm::kernels {
namespace {

constexpr std::size_t kLine = 64, kHuge = std::size_t{2} << 20;

thread_local HugePageArena* current_arena = nullptr;

// Live arenas, for aligned_buffer_free (a buffer may be freed on another thread than the one that
// allocated it). live_count lets the common case (no arena) skip the lock.
std::mutex live_mutex;
std::vector<const HugePageArena*> live_arenas;
std::atomic<int> live_count{0};

bool in_live_arena(const void* p) {
  if (live_count.load(std::memory_order_acquire) == 0) return false;
  std::lock_guard<std::mutex> lock(live_mutex);
  return std::any_of(live_arenas.begin(), live_arenas.end(),
                     [p](const HugePageArena* a) { return a->owns(p); });
}

}  // namespace

void* aligned_buffer_alloc(std::size_t bytes) {
  if (current_arena != nullptr) {
    if (void* p = current_arena->take(bytes == 0 ? 1 : bytes)) return p;
  }
  const std::size_t align = bytes >= kHuge ? kHuge : kLine;
  const std::size_t size = (bytes + align - 1) / align * align;  // aligned_alloc needs a multiple
  void* p = std::aligned_alloc(align, size == 0 ? align : size);
  if (p == nullptr) throw std::bad_alloc();
  // Advice only: without THP (or with THP "never") this is a no-op and small pages are used.
  if (align == kHuge) (void)madvise(p, size, MADV_HUGEPAGE);
  return p;
}

void aligned_buffer_free(void* p) noexcept {
  if (p == nullptr || in_live_arena(p)) return;
  std::free(p);
}

HugePageArena::HugePageArena(std::size_t bytes) {
  size_ = std::max<std::size_t>(1, (bytes + kHuge - 1) / kHuge) * kHuge;
  // Over-reserve by 2 MiB and trim, so the arena starts on a huge-page boundary.
  const std::size_t reserve = size_ + kHuge;
  void* raw = mmap(nullptr, reserve, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = (start + kHuge - 1) / kHuge * kHuge;
  if (aligned > start) munmap(raw, aligned - start);
  const std::uintptr_t end = start + reserve, aligned_end = aligned + size_;
  if (end > aligned_end) munmap(reinterpret_cast<void*>(aligned_end), end - aligned_end);
  base_ = reinterpret_cast<char*>(aligned);
  (void)madvise(base_, size_, MADV_HUGEPAGE);
  std::lock_guard<std::mutex> lock(live_mutex);
  live_arenas.push_back(this);
  live_count.fetch_add(1, std::memory_order_release);
}

HugePageArena::~HugePageArena() {
  {
    std::lock_guard<std::mutex> lock(live_mutex);
    live_arenas.erase(std::remove(live_arenas.begin(), live_arenas.end(), this), live_arenas.end());
    live_count.fetch_sub(1, std::memory_order_release);
  }
  munmap(base_, size_);
}

void* HugePageArena::take(std::size_t bytes) noexcept {
  const std::size_t need = (bytes + kLine - 1) / kLine * kLine;
  std::size_t at = used_.load(std::memory_order_relaxed);
  do {
    if (need > size_ - at) return nullptr;
  } while (!used_.compare_exchange_weak(at, at + need, std::memory_order_relaxed));
  return base_ + at;
}

bool HugePageArena::owns(const void* p) const noexcept {
  const char* c = static_cast<const char*>(p);
  return c >= base_ && c < base_ + size_;
}

ArenaScope::ArenaScope(HugePageArena& arena) noexcept : previous_(current_arena) { current_arena = &arena; }
ArenaScope::~ArenaScope() { current_arena = previous_; }

}  // namespace wm::kernels
