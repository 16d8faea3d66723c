#pragma once
// Shared helpers for fabric tests: small machines, deterministic fills, and comparison of a
// distributed run (gathered on rank 0) with the serial reference.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstring>
#include <ostream>
#include <random>
#include <vector>

#include "wafermesh/noc/primitives.hpp"
#include "wafermesh/noc/reference_fabric.hpp"

namespace wm {
// Operation counts in test failures: {fp MACs, element, ternary, integer}.
inline void PrintTo(const OpCounts& o, std::ostream* os) {
  *os << "{" << o.fp_macs << ", " << o.elem_ops << ", " << o.ternary_ops << ", " << o.int_ops << "}";
}
}  // namespace wm

namespace wm::test {

// The round cost figures the hand-computed clocks of the tests are worked out in (not the
// fitted defaults of MachineParams).
inline MachineParams small_machine(int32_t w, int32_t h) {
  MachineParams p;
  p.width_pes = w;
  p.height_pes = h;
  p.alpha_cycles = 1;
  p.beta_cycles = 30;
  p.link_bytes_per_cycle = 4;
  p.macs_per_cycle = 1;
  p.task_overhead_cycles = 10;
  p.receive_cycles = 0;
  p.inject_fraction = 1.0;
  p.stream_reductions = false;
  p.sram_bytes = 1 << 20;
  p.route_entries = 24;
  return p;
}

// A float that differs per PE and element, with awkward mantissas so that sums depend on order.
inline float fill_value(int64_t pe_id, size_t k) {
  uint32_t s = uint32_t(pe_id) * 2654435761u ^ uint32_t(k) * 40503u;
  s ^= s >> 13;
  s *= 0x5bd1e995u;
  s ^= s >> 15;
  return float(int32_t(s % 2000001u) - 1000000) * 1.37e-3f;
}

inline void fill(const MeshShape& m, TileBuf<float>& b, RefBuf<float>& r) {
  b.for_each_local([&](int32_t x, int32_t y, float* t) {
    for (size_t k = 0; k < b.elems(); ++k) t[k] = fill_value(m.id(x, y), k);
  });
  for (int32_t y = r.region.y0; y < r.region.y0 + r.region.h; ++y)
    for (int32_t x = r.region.x0; x < r.region.x0 + r.region.w; ++x)
      for (size_t k = 0; k < r.elems; ++k) r.at({x, y})[k] = fill_value(m.id(x, y), k);
}

// n uniform floats in [lo, hi), seeded.
inline std::vector<float> random_floats(int64_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& e : v) e = u(g);
  return v;
}

inline int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

// Tiles must be bitwise equal; call on every rank (it gathers).
inline void expect_tiles_equal(const TileBuf<float>& b, RefBuf<float>& r, const std::string& what) {
  const std::vector<float> got = b.gather();
  if (world_rank() != 0) return;
  const Region& reg = b.region();
  ASSERT_EQ(got.size(), size_t(reg.size()) * b.elems());
  size_t bad = 0;
  for (int32_t y = reg.y0; y < reg.y0 + reg.h; ++y)
    for (int32_t x = reg.x0; x < reg.x0 + reg.w; ++x) {
      const float* g = got.data() + (size_t(y - reg.y0) * size_t(reg.w) + size_t(x - reg.x0)) * b.elems();
      if (std::memcmp(g, r.at({x, y}).data(), b.elems() * sizeof(float)) != 0 && bad++ < 5)
        ADD_FAILURE() << what << ": tile of PE (" << x << "," << y << ") differs from the reference";
    }
  EXPECT_EQ(bad, 0u) << what;
}

inline void expect_counters_equal(const Fabric& f, ReferenceFabric& ref, const std::string& what) {
  const std::vector<PeCounters> got = f.gather_counters(f.mesh().full());
  if (world_rank() != 0) return;
  ASSERT_EQ(got.size(), ref.pes().size());
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const PeCounters &g = got[i], &w = ref.pes()[i];
    if (!(g == w) && bad++ < 5)
      ADD_FAILURE() << what << ": PE " << i << " counters differ: clock " << g.clock_cycles << " vs "
                    << w.clock_cycles << ", compute " << g.compute_cycles << " vs " << w.compute_cycles
                    << ", stall " << g.stall_cycles << " vs " << w.stall_cycles << ", inject " << g.inject_cycles
                    << " vs " << w.inject_cycles << ", sent " << g.bytes_sent << " vs " << w.bytes_sent
                    << ", recv " << g.bytes_received << " vs " << w.bytes_received << ", msgs "
                    << g.messages_sent << " vs " << w.messages_sent << ", hops " << g.max_hops << " vs "
                    << w.max_hops << ", sram " << g.sram_peak_bytes << " vs " << w.sram_peak_bytes
                    << ", routes " << g.route_peak_entries << " vs " << w.route_peak_entries;
  }
  EXPECT_EQ(bad, 0u) << what;
}

}  // namespace wm::test
