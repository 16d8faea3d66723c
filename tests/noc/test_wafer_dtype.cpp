// The wafer's representation (DESIGN.md section 3): SRAM, wire bytes and compute cycles charged
// for what the wafer holds (wafer.dtype for fp data, integers as they are), not for the host's
// fp32, worked out by hand on a 4 x 1 mesh in the round figures of small_machine (alpha 1,
// link 4 bytes/cycle, task overhead 10, the sender pays the whole wire time). Run at 1, 2 and 4
// ranks.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fabric_test_util.hpp"

using namespace wm;
using namespace wm::test;

namespace {

MachineParams machine(const std::string& dtype) {
  MachineParams mp = small_machine(4, 1);
  mp.wafer_dtype = dtype;
  return mp;
}

// One 48-element tile sent from PE 0 to PE 2 (two hops east); every PE's counters on rank 0.
template <class T>
std::vector<PeCounters> send_48(const MachineParams& mp, std::vector<T>* arrived = nullptr) {
  Fabric f(MPI_COMM_WORLD, mp);
  TileBuf<T> b(f, f.mesh().full(), 48, "t");
  b.for_each_local([&](int32_t x, int32_t, T* t) {
    for (size_t k = 0; k < 48; ++k) t[k] = T(1.0009765625 * double(k + 1) + x);  // 1 + 2^-10: not exact in fp16
  });
  send(f, b, {0, 0}, {2, 0});
  if (arrived) {
    const std::vector<T> all = b.gather();
    if (world_rank() == 0) arrived->assign(all.begin() + 2 * 48, all.begin() + 3 * 48);
  }
  return f.gather_counters(f.mesh().full());
}

}  // namespace

// 48 floats: 192 bytes at fp32, 96 at fp16 and bf16 (2 bytes each), in SRAM and on the wire.
//   fp32: SRAM 192; wire ceil(192 / 4) = 48; PE 0 injects 48; PE 2 arrives at 2 + 48 = 50.
//   fp16: SRAM  96; wire ceil( 96 / 4) = 24; PE 0 injects 24; PE 2 arrives at 2 + 24 = 26.
TEST(WaferDtype, FloatTilesAreChargedAtTheWafersWidth) {
  struct Want {
    const char* dtype;
    uint64_t bytes, sender_clock, receiver_clock;
  };
  for (const Want& w : {Want{"fp32", 192, 48, 50}, Want{"fp16", 96, 24, 26}, Want{"bf16", 96, 24, 26}}) {
    std::vector<float> arrived;
    const std::vector<PeCounters> c = send_48<float>(machine(w.dtype), &arrived);
    if (world_rank() != 0) continue;
    for (const PeCounters& p : c) EXPECT_EQ(p.sram_peak_bytes, w.bytes) << w.dtype;
    EXPECT_EQ(c[0].bytes_sent, w.bytes) << w.dtype;
    EXPECT_EQ(c[2].bytes_received, w.bytes) << w.dtype;
    EXPECT_EQ(c[0].inject_cycles, w.sender_clock) << w.dtype;
    EXPECT_EQ(c[0].clock_cycles, w.sender_clock) << w.dtype;
    EXPECT_EQ(c[2].clock_cycles, w.receiver_clock) << w.dtype;
    EXPECT_EQ(c[1].clock_cycles, 0u) << w.dtype;
    // The host keeps fp32: the tile arrives with every bit of PE 0's values.
    ASSERT_EQ(arrived.size(), 48u);
    for (size_t k = 0; k < 48; ++k) EXPECT_EQ(arrived[k], float(1.0009765625 * double(k + 1))) << w.dtype << " " << k;
  }
}

// Integers are held as they are: 48 int32 are 192 bytes whatever wafer.dtype says.
TEST(WaferDtype, IntegerTilesKeepTheirWidth) {
  for (const char* dtype : {"fp32", "fp16"}) {
    const std::vector<PeCounters> c = send_48<int32_t>(machine(dtype));
    if (world_rank() != 0) continue;
    EXPECT_EQ(c[0].sram_peak_bytes, 192u) << dtype;
    EXPECT_EQ(c[0].bytes_sent, 192u) << dtype;
    EXPECT_EQ(c[2].clock_cycles, 50u) << dtype;  // 2 + 192 / 4
  }
}

// A packed format states its own bytes on the wafer: 100 host bytes held as 25 on the wafer
// (e.g. 100 ternary weights at 2 bits): SRAM 25, wire ceil(25 / 4) = 7, arrival 2 + 7 = 9.
TEST(WaferDtype, WaferBytesOfAPackedTileAreWhatIsCharged) {
  Fabric f(MPI_COMM_WORLD, machine("fp32"));
  TileBuf<uint8_t> b(f, f.mesh().full(), 100, "packed", TileBuf<uint8_t>::WaferBytes{25});
  EXPECT_EQ(b.bytes_per_pe(), 25u);
  b.for_each_local([](int32_t x, int32_t, uint8_t* t) {
    for (size_t k = 0; k < 100; ++k) t[k] = uint8_t(k * 3 + size_t(x));
  });
  send(f, b, {0, 0}, {2, 0});
  const std::vector<uint8_t> all = b.gather();
  const std::vector<PeCounters> c = f.gather_counters(f.mesh().full());
  if (world_rank() != 0) return;
  EXPECT_EQ(c[0].sram_peak_bytes, 25u);
  EXPECT_EQ(c[0].bytes_sent, 25u);
  EXPECT_EQ(c[2].clock_cycles, 9u);
  for (size_t k = 0; k < 100; ++k) EXPECT_EQ(all[2 * 100 + k], uint8_t(k * 3)) << k;  // all 100 host bytes moved
}

// A task of 100 operations with overhead 10: fp work at pe.fp16_macs_per_cycle = 4 when the wafer
// is fp16 (10 + 25 = 35), at pe.macs_per_cycle = 1 when it is fp32 (110); ternary work at
// pe.ternary_ops_per_cycle = 8 (10 + ceil(100 / 8) = 23); integer work at pe.macs_per_cycle (110).
// A rate of 0 means pe.macs_per_cycle.
TEST(WaferDtype, ComputeIsChargedAtTheRateOfItsKindOfWork) {
  struct Want {
    const char* dtype;
    int64_t fp16_rate, ternary_rate;
    uint64_t fp, ternary, integer;
  };
  for (const Want& w : {Want{"fp16", 4, 8, 35, 23, 110}, Want{"bf16", 4, 8, 35, 23, 110}, Want{"fp32", 4, 8, 110, 23, 110},
                        Want{"fp16", 0, 0, 110, 110, 110}}) {
    MachineParams mp = machine(w.dtype);
    mp.fp16_macs_per_cycle = w.fp16_rate;
    mp.ternary_ops_per_cycle = w.ternary_rate;
    Fabric f(MPI_COMM_WORLD, mp);
    f.charge_compute(Region{0, 0, 1, 1}, 100);  // fp (the default)
    f.charge_compute(Region{1, 0, 1, 1}, 100, Work::ternary);
    f.charge_compute(Region{2, 0, 1, 1}, 100, Work::integer);
    if (f.is_local(3, 0)) f.charge_compute(3, 0, 100, Work::ternary);
    const std::vector<PeCounters> c = f.gather_counters(f.mesh().full());
    if (world_rank() != 0) continue;
    const std::string what = std::string(w.dtype) + " rates " + std::to_string(w.fp16_rate) + "/" +
                             std::to_string(w.ternary_rate);
    EXPECT_EQ(c[0].compute_cycles, w.fp) << what;
    EXPECT_EQ(c[1].compute_cycles, w.ternary) << what;
    EXPECT_EQ(c[2].compute_cycles, w.integer) << what;
    EXPECT_EQ(c[3].compute_cycles, w.ternary) << what;
  }
}

// The energy model's counts follow the kind of work, whatever its rate: PE 0 does 100 fp MACs and
// 30 fp element operations, PE 1 applies 100 ternary weights, PE 2 does 100 integer adds (fp16 at
// 4 per cycle, ternary at 8: the rates differ from one per cycle).
TEST(WaferDtype, OperationsAreCountedByKindOfWork) {
  MachineParams mp = machine("fp16");
  mp.fp16_macs_per_cycle = 4;
  mp.ternary_ops_per_cycle = 8;
  Fabric f(MPI_COMM_WORLD, mp);
  f.charge_compute(Region{0, 0, 1, 1}, 100);
  f.charge_compute(Region{0, 0, 1, 1}, 30, Work::elem);
  f.charge_compute(Region{1, 0, 1, 1}, 100, Work::ternary);
  if (f.is_local(2, 0)) f.charge_compute(2, 0, 100, Work::integer);
  const std::vector<PeCounters> c = f.gather_counters(f.mesh().full());
  const WorkCounts w = f.work();
  if (world_rank() != 0) return;
  EXPECT_EQ(c[0].ops, (OpCounts{100, 30, 0, 0}));
  EXPECT_EQ(c[0].compute_cycles, (10u + 25) + (10 + 8));  // ceil(30 / 4) = 8
  EXPECT_EQ(c[1].ops, (OpCounts{0, 0, 100, 0}));
  EXPECT_EQ(c[2].ops, (OpCounts{0, 0, 0, 100}));
  EXPECT_EQ(c[3].ops, (OpCounts{}));
  EXPECT_EQ(w.ops, (OpCounts{100, 30, 100, 100}));
}

// A streamed reduction (noc.stream_reductions) of 48 floats along the row into PE 0 with fp16 at
// 4 per cycle: PEs 2, 1 and 0 each add 48 elements in ceil(48 / 4) = 12 cycles. The energy model
// counts the 48 element operations each, not cycles x pe.macs_per_cycle (12); PE 3 adds nothing.
TEST(WaferDtype, StreamedReductionCountsTheElementsAdded) {
  MachineParams mp = machine("fp16");
  mp.fp16_macs_per_cycle = 4;
  mp.stream_reductions = true;
  Fabric f(MPI_COMM_WORLD, mp);
  TileBuf<float> b(f, f.mesh().full(), 48, "t");
  reduce(f, b, Axis::X, 0);
  const std::vector<PeCounters> c = f.gather_counters(f.mesh().full());
  ReferenceFabric ref(mp);
  RefBuf<float> rb = ref.alloc<float>(f.mesh().full(), 48);
  ref.reduce(rb, Axis::X, 0);
  if (world_rank() != 0) return;
  for (int x = 0; x < 3; ++x) {
    EXPECT_EQ(c[size_t(x)].ops, (OpCounts{0, 48, 0, 0})) << "engine, PE " << x;
    EXPECT_EQ(ref.pe({x, 0}).ops, (OpCounts{0, 48, 0, 0})) << "reference, PE " << x;
  }
  EXPECT_EQ(c[3].ops, (OpCounts{}));
  EXPECT_EQ(ref.pe({3, 0}).ops, (OpCounts{}));
}

// A chain reduction of 48 floats along the row into PE 0 (one relay stage per step, beta 30; a
// tile departs at its sender's clock before the sender pays injection):
//   fp32: a step 1 + 30 + ceil(192 / 4) = 79 cycles, an add 10 + 48 = 58;
//   fp16 with pe.fp16_macs_per_cycle = 4: a step 1 + 30 + ceil(96 / 4) = 55, an add 10 + 12 = 22.
// PE 2 receives from PE 3 at 79 | 55 and adds: 137 | 77; PE 1 receives at 137 + 79 = 216 |
// 77 + 55 = 132 and adds: 274 | 154; PE 0 receives at 274 + 79 = 353 | 154 + 55 = 209 and adds:
// 411 | 231.
TEST(WaferDtype, ReductionChargesWireAndAddsAtTheWafersWidth) {
  for (auto [dtype, want] : {std::pair{"fp32", uint64_t(411)}, std::pair{"fp16", uint64_t(231)}}) {
    MachineParams mp = machine(dtype);
    mp.fp16_macs_per_cycle = 4;
    Fabric f(MPI_COMM_WORLD, mp);
    TileBuf<float> b(f, f.mesh().full(), 48, "t");
    reduce(f, b, Axis::X, 0);
    const std::vector<PeCounters> c = f.gather_counters(f.mesh().full());
    if (world_rank() == 0) {
      EXPECT_EQ(c[0].clock_cycles, want) << dtype;
    }
  }
}
