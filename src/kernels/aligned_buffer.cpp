#include "wafermesh/kernels/aligned_buffer.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
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

// Mappings given back, kept for the next request of the same size (up to kKeptBytes in all).
struct KeptMappings {
  static constexpr std::size_t kKeptBytes = std::size_t(1) << 30;
  std::mutex m;
  std::multimap<std::size_t, void*> kept;  // rounded size -> mapping
  std::size_t bytes = 0;
  ~KeptMappings() {
    for (auto& [size, p] : kept) munmap(p, size);
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
    const auto it = k.kept.find(size);
    if (it != k.kept.end()) {
      void* p = it->second;
      k.kept.erase(it);
      k.bytes -= size;
      return p;
    }
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
    if (k.bytes + size <= KeptMappings::kKeptBytes) {
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
