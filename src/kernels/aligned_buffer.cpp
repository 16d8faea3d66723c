#include "wafermesh/kernels/aligned_buffer.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "wafermesh/util/huge_alloc.hpp"

namespace wm::kernels {
namespace {

constexpr std::size_t kLine = 64, kHuge = wm::kHugePage;

thread_local HugePageArena* current_arena = nullptr;

// Live arenas, for aligned_buffer_free (a buffer may be freed on another thread than the one that
// allocated it). live_count lets the common case (no arena) skip the lock.
std::mutex live_mutex;
std::vector<const HugePageArena*> live_arenas;
std::atomic<int> live_count{0};

// Buffers of 2 MiB and more are mapped (wm::map_huge); their sizes, for the unmapping.
std::mutex mapped_mutex;
std::unordered_map<const void*, std::size_t> mapped;

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
  if (bytes >= kHuge) {
    void* p = map_huge(bytes);
    std::lock_guard<std::mutex> lock(mapped_mutex);
    mapped.emplace(p, bytes);
    return p;
  }
  const std::size_t size = (bytes + kLine - 1) / kLine * kLine;  // aligned_alloc needs a multiple
  void* p = std::aligned_alloc(kLine, size == 0 ? kLine : size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void aligned_buffer_free(void* p) noexcept {
  if (p == nullptr || in_live_arena(p)) return;
  {
    std::lock_guard<std::mutex> lock(mapped_mutex);
    const auto it = mapped.find(p);
    if (it != mapped.end()) {
      unmap_huge(p, it->second);
      mapped.erase(it);
      return;
    }
  }
  std::free(p);
}

HugePageArena::HugePageArena(std::size_t bytes) {
  size_ = huge_rounded(bytes);
  base_ = static_cast<char*>(map_huge(size_));
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
  unmap_huge(base_, size_);
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
