#include "wafermesh/kernels/aligned_buffer.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <list>
#include <map>
#include <mutex>

namespace wm::kernels {
namespace {

constexpr std::size_t kLine = 64;
constexpr std::size_t kHugePage = std::size_t(2) << 20;
constexpr std::size_t kMapped = std::size_t(256) << 10;  // smallest block with a mapping of its own
constexpr std::size_t kMidUnit = std::size_t(64) << 10;  // such blocks below kHugePage: rounded to this

thread_local HugePageArena* current_arena = nullptr;

std::size_t huge_rounded(std::size_t bytes) {
  return (std::max<std::size_t>(bytes, 1) + kHugePage - 1) / kHugePage * kHugePage;
}
// The size of the mapping that holds a block of `bytes` (>= kMapped): whole huge pages from
// kHugePage on, whole kMidUnit below.
std::size_t mapped_size(std::size_t bytes) {
  return bytes >= kHugePage ? huge_rounded(bytes) : (bytes + kMidUnit - 1) / kMidUnit * kMidUnit;
}

// Mappings given back, kept for the next request of the same size: up to kKeptBytes in all, the
// ones given back longest ago returned to the system first (a placement's temporaries would
// otherwise fill the cache for good, and every decode step's scratch tiles would fault their pages
// in again).
struct KeptMappings {
  static constexpr std::size_t kKeptBytes = std::size_t(1) << 30;
  struct Entry {
    std::size_t size;
    void* p;
  };
  std::mutex m;
  std::list<Entry> order;                                          // oldest first
  std::multimap<std::size_t, std::list<Entry>::iterator> by_size;  // rounded size -> entry
  std::size_t bytes = 0;
  // A kept mapping of `size` (taken out of the cache), or nullptr.
  void* take(std::size_t size) {
    const auto it = by_size.find(size);
    if (it == by_size.end()) return nullptr;
    void* p = it->second->p;
    order.erase(it->second);
    by_size.erase(it);
    bytes -= size;
    return p;
  }
  // Keeps p, giving back the oldest mappings while the cache would exceed kKeptBytes. False when
  // p alone exceeds it (the caller gives it back).
  bool keep(std::size_t size, void* p) {
    if (size > kKeptBytes) return false;
    while (bytes + size > kKeptBytes) {
      const Entry old = order.front();
      auto [lo, hi] = by_size.equal_range(old.size);
      while (lo != hi && lo->second != order.begin()) ++lo;
      by_size.erase(lo);
      order.pop_front();
      bytes -= old.size;
      munmap(old.p, old.size);
    }
    order.push_back({size, p});
    by_size.emplace(size, std::prev(order.end()));
    bytes += size;
    return true;
  }
  ~KeptMappings() {
    for (const Entry& e : order) munmap(e.p, e.size);
  }
};
KeptMappings& kept_mappings() {
  static KeptMappings k;
  return k;
}

// A kept mapping of mapped_size(bytes), else a new one: from kHugePage on, whole huge pages mapped
// privately at a 2 MiB boundary (a larger reservation trimmed at both ends) and advised as
// transparent huge pages; below, a plain private mapping (page aligned). Throws std::bad_alloc when
// the system refuses the mapping.
void* map_block(std::size_t bytes) {
  const std::size_t size = mapped_size(bytes), reserve = size + kHugePage;
  {
    KeptMappings& k = kept_mappings();
    std::lock_guard<std::mutex> lock(k.m);
    if (void* p = k.take(size)) return p;
  }
  if (size < kHugePage) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    return p;
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

// Gives back a map_block mapping of the same `bytes`: kept for reuse while the cache has room.
void unmap_block(void* p, std::size_t bytes) noexcept {
  const std::size_t size = mapped_size(bytes);
  KeptMappings& k = kept_mappings();
  {
    std::lock_guard<std::mutex> lock(k.m);
    try {
      if (k.keep(size, p)) return;
    } catch (...) {  // no room to remember it: give it back
    }
  }
  munmap(p, size);
}

}  // namespace

void* aligned_buffer_alloc(std::size_t bytes, HugePageArena* arena) {
  if (arena != nullptr) {
    if (void* p = arena->take(bytes == 0 ? 1 : bytes)) return p;
  }
  if (bytes >= kMapped) return map_block(bytes);
  const std::size_t size = (bytes + kLine - 1) / kLine * kLine;  // aligned_alloc needs a multiple
  void* p = std::aligned_alloc(kLine, size == 0 ? kLine : size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void aligned_buffer_free(void* p, std::size_t bytes, HugePageArena* arena) noexcept {
  if (p == nullptr || (arena != nullptr && arena->owns(p))) return;
  if (bytes >= kMapped) unmap_block(p, bytes);
  else std::free(p);
}

HugePageArena::HugePageArena(std::size_t bytes)
    : base_(static_cast<char*>(map_block(std::max(bytes, kHugePage)))), size_(huge_rounded(bytes)) {}

HugePageArena::~HugePageArena() { unmap_block(base_, size_); }

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
HugePageArena* ArenaScope::current() noexcept { return current_arena; }

}  // namespace wm::kernels
