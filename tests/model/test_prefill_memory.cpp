// Prefill keeps the prompt's activations on the PEs: a rank holds the tiles of its own PEs and
// nothing of the prompt beyond them but O(dim) scratch. Run at 2 and 4 ranks.
//
// A rank's tiles live in TileBufs (only its own PEs' tiles, by construction), whose storage
// comes from aligned_alloc or mmap (kernels/aligned_buffer.hpp); every other host allocation of
// the process goes through operator new, which this test counts (live bytes and their peak). What prefill()
// holds at its peak beyond what stays live after it (the KV caches it fills) must not depend on
// the prompt's length beyond O(dim): a prompt of n1 and one of n2 tokens are prefilled by fresh
// transformers on one fabric, whose buffers for moving tiles (the rank's own tiles in flight)
// were sized by a first prefill of n2 tokens. A host copy of the prompt's activations (one
// n x dim matrix already) fails.
#include <gtest/gtest.h>
#include <malloc.h>
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <vector>

#include "fabric_test_util.hpp"
#include "stories260K.hpp"
#include "wafermesh/model/checkpoint.hpp"
#include "wafermesh/model/mesh_transformer.hpp"

namespace {

std::atomic<int64_t> g_live{0}, g_peak{0};

void note_alloc(void* p) {
  if (!p) return;
  const int64_t live = g_live.fetch_add(int64_t(malloc_usable_size(p))) + int64_t(malloc_usable_size(p));
  int64_t peak = g_peak.load();
  while (live > peak && !g_peak.compare_exchange_weak(peak, live)) {
  }
}
void* counted_alloc(std::size_t n) {
  void* p = std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  note_alloc(p);
  return p;
}
void* counted_alloc_aligned(std::size_t n, std::size_t align) {
  void* p = nullptr;
  if (posix_memalign(&p, std::max(align, sizeof(void*)), n ? n : 1) != 0) throw std::bad_alloc();
  note_alloc(p);
  return p;
}
void counted_free(void* p) {
  if (!p) return;
  g_live.fetch_sub(int64_t(malloc_usable_size(p)));
  std::free(p);
}

}  // namespace

void* operator new(std::size_t n) { return counted_alloc(n); }
void* operator new[](std::size_t n) { return counted_alloc(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void* operator new(std::size_t n, std::align_val_t a) { return counted_alloc_aligned(n, std::size_t(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_alloc_aligned(n, std::size_t(a)); }
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t) noexcept { counted_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { counted_free(p); }

using namespace wm;
using namespace wm::model;
using namespace wm::model::testing_support;

namespace {

int world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

// Live operator-new bytes around prefill() of an n-token prompt by a fresh transformer on the
// fabric `f`: the peak during the call above what is live at its end (the transient part: the
// KV caches the prompt fills stay live), and what stays live beyond what was live before.
struct PrefillBytes {
  int64_t transient = 0, retained = 0;
};
PrefillBytes prefill_bytes(Fabric& f, const WeightSource& src, const MeshPlacementSpec& spec, int64_t n) {
  MeshTransformer mt(f, src, spec);
  std::vector<int> tokens(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) tokens[size_t(i)] = i == 0 ? 1 : int(3 + (i * 37) % (src.config().vocab - 3));
  MPI_Barrier(MPI_COMM_WORLD);
  const int64_t before = g_live.load();
  g_peak.store(before);
  (void)mt.prefill(tokens);
  const int64_t after = g_live.load();
  MPI_Barrier(MPI_COMM_WORLD);
  return {g_peak.load() - after, after - before};
}

}  // namespace

TEST(PrefillMemory, ARankHoldsItsShareOfThePromptPlusOrderDim) {
  ASSERT_TRUE(stories_present("stories260K.bin"));
  ASSERT_GE(world_size(), 2) << "run at 2 or more ranks";
  const ModelConfig cfg = stories_config();
  // 32 x 16 PEs: the layers on one 16 x 16 region, the classifier on the other; the ranks stacked
  // along Y, so every rank holds an equal share of the layers' region.
  MachineParams mp = wm::test::small_machine(32, 16);
  mp.sram_bytes = 48 * 1024;
  mp.ranks_x = 1;
  mp.ranks_y = world_size();
  const int64_t n1 = 16, n2 = 96;
  MeshPlacementSpec spec;
  spec.P = 16;
  spec.context = n2;
  Fabric f(MPI_COMM_WORLD, mp);
  const auto src = open_weight_source(cfg, 1);
  // The fabric's buffers for the tiles a step moves (this rank's PEs' tiles, each way) keep their
  // size between steps: a first prefill of the longer prompt sizes them, so the two measured below
  // see only what the transformer itself allocates.
  (void)prefill_bytes(f, *src, spec, n2);
  const PrefillBytes b1 = prefill_bytes(f, *src, spec, n1), b2 = prefill_bytes(f, *src, spec, n2);
  const int64_t allowed = 16 * cfg.dim * int64_t(sizeof(float));            // O(dim)
  const int64_t replicated = (n2 - n1) * cfg.dim * int64_t(sizeof(float));  // one n x dim host matrix
  std::printf("prefill's transient host bytes beyond the tiles: %lld at %lld tokens, %lld at %lld tokens (growth "
              "allowed: %lld, O(dim); one replicated n x dim matrix: %lld); retained (the KV caches): %lld, %lld\n",
              (long long)b1.transient, (long long)n1, (long long)b2.transient, (long long)n2, (long long)allowed,
              (long long)replicated, (long long)b1.retained, (long long)b2.retained);
  EXPECT_LE(b2.transient - b1.transient, allowed);
}
