// A fixed sequence of shifts, broadcasts, reductions, sends and compute on a 12 x 10 mesh, run on
// sub-communicators of every size up to the job's rank count and with several Cartesian layouts.
// The tiles and every PE's clock and counters must be bit-identical for all of them, and equal to
// the serial reference. Registered at 1, 2, 3 and 4 ranks.
#include <gtest/gtest.h>

#include "fabric_test_util.hpp"
#include "wafermesh/mesh/mpi_handles.hpp"

using namespace wm;
using namespace wm::test;

namespace {

struct Outcome {
  std::vector<float> a, b;  // gathered tiles
  std::vector<PeCounters> pes;
};

// The sequence on the distributed fabric; run_reference below is the same on the serial reference.
Outcome run_distributed(MPI_Comm comm, MachineParams mp) {
  Fabric f(comm, mp);
  const MeshShape& m = f.mesh();
  const Region all = m.full(), sub{1, 2, 9, 7}, left{0, 0, 7, 10};
  TileBuf<float> a(f, all, 5, "a");
  TileBuf<float> b(f, sub, 3, "b");
  a.for_each_local([&](int32_t x, int32_t y, float* t) { for (size_t k = 0; k < 5; ++k) t[k] = fill_value(m.id(x, y), k); });
  b.for_each_local([&](int32_t x, int32_t y, float* t) { for (size_t k = 0; k < 3; ++k) t[k] = fill_value(m.id(x, y) + 7, k); });
  shift(f, a, Axis::X, +1, true);
  shift(f, a, Axis::Y, -2, true, LinePerm::interleaved(10));
  shift(f, b, Axis::X, +3, false);
  for (int32_t y = 0; y < 10; ++y)
    for (int32_t x = 0; x < 12; ++x)
      if (f.is_local(x, y)) f.charge_compute(x, y, uint64_t((x * 7 + y * 3) % 50));
  broadcast(f, b, Axis::Y, 4);
  reduce(f, a, Axis::X, 3);
  send(f, a, {11, 9}, {0, 0});
  send(f, b, {3, 4}, {9, 2});
  {
    TileBuf<float> c(f, left, 5, "c");
    TransferPlan p = plan_shift(f, left, Axis::X, 1, true, LinePerm::interleaved(7), c.bytes_per_pe());
    f.execute(p, a.view(), c.view(), Sync::defer);  // a's tiles on `left` move into c
    f.charge_compute(left, 40);
    f.wait_arrivals();
  }
  reduce(f, b, Axis::Y, 6);
  broadcast(f, a, Axis::X, 11);
  f.barrier_clocks(all);
  shift(f, a, Axis::Y, +1, false, LinePerm::interleaved(10));
  Outcome o{a.gather(), b.gather(), f.gather_counters(all)};
  return o;
}

Outcome run_reference(MachineParams mp) {
  ReferenceFabric f(mp);
  const MeshShape m{int32_t(mp.width_pes), int32_t(mp.height_pes)};
  const Region all = m.full(), sub{1, 2, 9, 7}, left{0, 0, 7, 10};
  RefBuf<float> a = f.alloc<float>(all, 5), b = f.alloc<float>(sub, 3);
  for (int32_t y = 0; y < 10; ++y)
    for (int32_t x = 0; x < 12; ++x) {
      for (size_t k = 0; k < 5; ++k) a.at({x, y})[k] = fill_value(m.id(x, y), k);
      if (sub.contains(x, y))
        for (size_t k = 0; k < 3; ++k) b.at({x, y})[k] = fill_value(m.id(x, y) + 7, k);
    }
  f.shift(a, Axis::X, +1, true, LinePerm::natural(12));
  f.shift(a, Axis::Y, -2, true, LinePerm::interleaved(10));
  f.shift(b, Axis::X, +3, false, LinePerm::natural(9));
  for (int32_t y = 0; y < 10; ++y)
    for (int32_t x = 0; x < 12; ++x) f.charge_compute({x, y}, uint64_t((x * 7 + y * 3) % 50));
  f.broadcast(b, Axis::Y, 4);
  f.reduce(a, Axis::X, 3);
  f.send(a, {11, 9}, {0, 0});
  f.send(b, {3, 4}, {9, 2});
  {
    RefBuf<float> c = f.alloc<float>(left, 5);
    // Same transfers as plan_shift on `left`: a's tiles move into c.
    const LinePerm perm = LinePerm::interleaved(7);
    std::vector<Transfer> t;
    for (int32_t line = 0; line < 10; ++line)
      for (int32_t l = 0; l < 7; ++l)
        t.push_back({line_pe(left, Axis::X, line, perm.phys(l)), line_pe(left, Axis::X, line, perm.phys((l + 1) % 7)),
                     uint32_t(line * 7 + l), 0});
    f.step(t, a, c, /*defer=*/true);
    for (int32_t y = 0; y < 10; ++y)
      for (int32_t x = 0; x < 7; ++x) f.charge_compute({x, y}, 40);
    f.wait_arrivals();
    f.free(c);
  }
  f.reduce(b, Axis::Y, 6);
  f.broadcast(a, Axis::X, 11);
  f.barrier_clocks(all);
  f.shift(a, Axis::Y, +1, false, LinePerm::interleaved(10));
  Outcome o;
  for (auto& t : a.tiles) o.a.insert(o.a.end(), t.begin(), t.end());
  for (auto& t : b.tiles) o.b.insert(o.b.end(), t.begin(), t.end());
  o.pes = f.pes();
  return o;
}

bool same_bits(const std::vector<float>& x, const std::vector<float>& y) {
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

}  // namespace

namespace {
// Runs the sequence on the reference and on every rank count and layout; all must agree.
void check_sequence(const MachineParams& base, const std::string& machine) {
  int world = 1, rank = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const Outcome want = run_reference(base);
  int runs = 0;
  for (int k = 1; k <= world; ++k) {
    // Layouts for k ranks: automatic, and each forced factorisation k = px * py.
    std::vector<std::pair<int, int>> layouts = {{0, 0}};
    for (int px = 1; px <= k; ++px)
      if (k % px == 0) layouts.push_back({px, k / px});
    for (auto [px, py] : layouts) {
      const MpiComm sub = split_comm(MPI_COMM_WORLD, rank < k ? 0 : MPI_UNDEFINED, rank);
      if (!sub) continue;
      MachineParams mp = base;
      mp.ranks_x = px;
      mp.ranks_y = py;
      const Outcome got = run_distributed(sub.get(), mp);
      if (rank != 0) continue;
      ++runs;
      const std::string what = machine + ", " + std::to_string(k) + " rank(s), layout " + std::to_string(px) + "x" +
                               std::to_string(py);
      EXPECT_TRUE(same_bits(got.a, want.a)) << what << ": tiles of a differ";
      EXPECT_TRUE(same_bits(got.b, want.b)) << what << ": tiles of b differ";
      ASSERT_EQ(got.pes.size(), want.pes.size());
      size_t bad = 0;
      for (size_t i = 0; i < got.pes.size(); ++i)
        if (!(got.pes[i] == want.pes[i]) && bad++ < 3)
          ADD_FAILURE() << what << ": PE " << i << " clock " << got.pes[i].clock_cycles << " vs "
                        << want.pes[i].clock_cycles << ", compute " << got.pes[i].compute_cycles << " vs "
                        << want.pes[i].compute_cycles;
      EXPECT_EQ(bad, 0u) << what;
    }
  }
  if (rank == 0) {
    EXPECT_GT(runs, 0);
    // The sequence did real work: clocks advanced and moved data.
    EXPECT_GT(want.pes[0].clock_cycles, 500u);
    EXPECT_GT(want.pes[0].bytes_received, 0u);
  }
}
}  // namespace

TEST(RankInvariance, TwelveByTenSequenceIdenticalForEveryRankCountAndLayout) {
  check_sequence(small_machine(12, 10), "store-and-forward");
}

// The calibrated cost model's terms: receive tasks, injection overlapped in part, a fractional link
// bandwidth and streaming reduction chains; the same sequence must agree with the reference too.
TEST(RankInvariance, CalibratedCostTermsIdenticalForEveryRankCountAndLayout) {
  MachineParams mp = small_machine(12, 10);
  mp.receive_cycles = 7;
  mp.inject_fraction = 0.5;
  mp.link_bytes_per_cycle = 3.5;
  mp.stream_reductions = true;
  check_sequence(mp, "receive 7, inject 0.5, 3.5 B/cycle, streaming");
}

// fp data at 2 bytes on the wafer and fp work at 3 per cycle (wafer.dtype fp16): the sequence's
// tiles, clocks and counters agree with the reference at every rank count and layout.
TEST(RankInvariance, Fp16WaferIdenticalForEveryRankCountAndLayout) {
  MachineParams mp = small_machine(12, 10);
  mp.wafer_dtype = "fp16";
  mp.fp16_macs_per_cycle = 3;
  check_sequence(mp, "fp16 wafer");
  mp.receive_cycles = 7;
  mp.inject_fraction = 0.5;
  mp.stream_reductions = true;
  check_sequence(mp, "fp16 wafer, calibrated cost terms");
}
