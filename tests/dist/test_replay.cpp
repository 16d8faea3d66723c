// Fabric::replay (noc/fabric.hpp): an allreduce that starts again from a recorded clock pattern,
// shifted by a constant, takes its figures from the recording (a data allreduce still moves and
// adds its tiles step by step). Every per-PE figure (clocks, compute, injection, stall, bytes,
// messages, hops, routes, SRAM, operation counts) and the work totals equal those of a fabric that
// runs every step (emu.replay_timing = false), and the sums equal the serial reference bit for bit,
// through sequences that start uniform, shifted, non-uniform, with arrivals pending and under a
// trace; at 1, 2 and 4 ranks, for every algorithm along both axes, for the timing-only allreduce
// (integer line sums, also led by a compute task inside the recording, as a GEMV's) and the data
// allreduce; and replays in a row, whose checks compare recordings instead of the clocks.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fabric_test_util.hpp"
#include "wafermesh/dist/allreduce.hpp"
#include "wafermesh/noc/line_plans.hpp"
#include "wafermesh/noc/pe_trace.hpp"

using namespace wm;
using namespace wm::dist;
using namespace wm::test;

namespace {

// Two machines: the test machine (no receive tasks, chains not streamed) and the defaults (receive
// tasks, streamed reductions with their tails).
MachineParams machine(bool defaults, bool replay) {
  MachineParams mp = small_machine(19, 11);
  if (defaults) {
    MachineParams d;
    d.width_pes = mp.width_pes;
    d.height_pes = mp.height_pes;
    mp = d;
  }
  mp.route_entries = 64;
  mp.replay_timing = replay;
  return mp;
}

void expect_same_counters(const Fabric& a, const Fabric& b, const std::string& what) {
  const std::vector<PeCounters> ca = a.gather_counters(a.mesh().full());
  const std::vector<PeCounters> cb = b.gather_counters(b.mesh().full());
  EXPECT_TRUE(a.work() == b.work()) << what;
  if (world_rank() != 0) return;
  ASSERT_EQ(ca.size(), cb.size());
  for (size_t i = 0; i < ca.size(); ++i) {
    EXPECT_TRUE(ca[i] == cb[i]) << what << ": PE " << i << " clock " << ca[i].clock_cycles << " vs "
                                << cb[i].clock_cycles << ", compute " << ca[i].compute_cycles << " vs "
                                << cb[i].compute_cycles << ", int ops " << ca[i].ops.int_ops << " vs "
                                << cb[i].ops.int_ops;
    if (!(ca[i] == cb[i])) break;
  }
}

// The sums of the allreduce's lines, against the serial reference (rank 0; false on a mismatch).
bool sums_match_reference(const TileBuf<float>& b, const Region& r, Axis axis, const AllreduceSpec& spec,
                          const std::vector<float>& before) {
  const std::vector<float> got = b.gather();
  if (world_rank() != 0) return true;
  const size_t E = b.elems();
  const int32_t P = line_length(r, axis), lines = line_count(r, axis);
  for (int32_t line = 0; line < lines; ++line) {
    std::vector<std::vector<float>> tiles;
    for (int32_t pos = 0; pos < P; ++pos) {
      const PeCoord c = line_pe(r, axis, line, pos);
      const size_t at = (size_t(c.y - r.y0) * size_t(r.w) + size_t(c.x - r.x0)) * E;
      tiles.emplace_back(before.begin() + int64_t(at), before.begin() + int64_t(at + E));
    }
    const std::vector<float> want = allreduce_line_reference(spec, tiles);
    for (int32_t pos = 0; pos < P; ++pos) {
      const PeCoord c = line_pe(r, axis, line, pos);
      const size_t at = (size_t(c.y - r.y0) * size_t(r.w) + size_t(c.x - r.x0)) * E;
      if (std::memcmp(got.data() + at, want.data(), E * sizeof(float)) != 0) return false;
    }
  }
  return true;
}

// The same sequence of operations on a fabric: allreduces (for their timing only, or on data)
// between charges that shift every clock of the region alike, charges that break the pattern,
// barriers, a step whose arrivals are still pending, a trace. With lead > 0 each timing-only
// allreduce first charges every PE of the region a task of `lead` ternary operations: through
// run_timing(lead) (inside its recording), or with separate = true as a charge_compute before
// run_timing(). Returns 1 for each allreduce that was replayed, else 0.
std::vector<uint64_t> run_sequence(Fabric& f, const Region& r, Axis axis, AllreduceAlgo algo, bool data,
                                   uint64_t lead = 0, bool separate = false) {
  AllreduceSpec spec;
  spec.algo = algo;
  LineAllreduce<int32_t> ar(f, r, axis, 3, spec);
  LineAllreduce<float> fr(f, r, axis, 5, spec);
  TileBuf<float> b(f, r, 5, "data");
  std::vector<uint64_t> replayed;
  int round = 0;
  std::unique_ptr<LineAllreduce<int32_t>> ar2;  // another allreduce of the same structure (step 12)
  std::unique_ptr<LineAllreduce<float>> fr2;
  auto step = [&] {
    const uint64_t before = f.replays();
    if (data) {
      ++round;
      b.for_each_local([&](int32_t x, int32_t y, float* t) {
        for (size_t k = 0; k < 5; ++k) t[k] = fill_value(f.mesh().id(x, y) + 1000 * round, k);
      });
      const std::vector<float> in = b.gather();
      (fr2 ? *fr2 : fr).run(b);
      EXPECT_TRUE(sums_match_reference(b, r, axis, spec, in)) << "round " << round;
    } else if (lead > 0 && separate) {
      f.charge_compute(r, lead, Work::ternary);
      (ar2 ? *ar2 : ar).run_timing();
    } else {
      (ar2 ? *ar2 : ar).run_timing(lead, Work::ternary);
    }
    replayed.push_back(f.replays() - before);
  };
  const PeCoord odd{r.x0 + r.w / 2, r.y0 + r.h - 1};
  auto charge_odd = [&] {
    if (f.is_local(odd.x, odd.y)) f.charge_compute(odd.x, odd.y, 5);
  };
  f.charge_compute(r, 4);
  step();  // 1: uniform start, recorded
  f.charge_compute(r, 10);
  step();  // 2: from the first one's end (replayed only if that end is uniform), recorded if not
  f.barrier_clocks(r);
  step();  // 3: uniform: replayed from 1
  f.charge_compute(r, 10);
  f.barrier_clocks(r);
  step();  // 4: uniform: replayed
  f.barrier_clocks(r);
  charge_odd();
  step();  // 5: one PE late: run, and recorded from this pattern
  f.barrier_clocks(r);
  charge_odd();
  step();  // 6: the same pattern, shifted: replayed
  // A step whose arrivals wait: the allreduce runs its steps (they wait with them), and its
  // recording is not complete.
  TileBuf<int32_t> t(f, r, 2, "pending");
  TransferPlan p = plan_shift(f, r, axis, +1, true, LinePerm::natural(line_length(r, axis)), t.bytes_per_pe());
  f.barrier_clocks(r);
  f.execute(p, t.view(), t.view(), Sync::defer);
  step();  // 7: run (its recording incomplete)
  f.wait_arrivals();
  f.barrier_clocks(r);
  f.charge_compute(r, 1);
  step();  // 8: uniform: replayed from 1
  {
    // A trace watches every operation: nothing is replayed while it does.
    PeWindowTrace trace(f, Region{r.x0, r.y0, 1, 1});
    f.barrier_clocks(r);
    step();  // 9: run (and recorded again)
  }
  f.barrier_clocks(r);
  step();  // 10: replayed
  // Rank 0's PEs of r later than the others: each rank's PEs keep the pattern, with shifts that
  // differ between ranks. Replayed only when rank 0 holds all of r.
  f.barrier_clocks(r);
  f.charge_compute(f.decomposition().block(0).intersect(r), 3);
  step();  // 11
  // Another allreduce of the same structure shares the recordings: replayed at its first run.
  ar2 = std::make_unique<LineAllreduce<int32_t>>(f, r, axis, 3, spec);
  fr2 = std::make_unique<LineAllreduce<float>>(f, r, axis, 5, spec);
  f.barrier_clocks(r);
  step();  // 12
  return replayed;
}

}  // namespace

TEST(Replay, AllreduceFromARecordingEqualsRunningEveryStep) {
  for (bool defaults : {false, true})
    for (AllreduceAlgo algo : {AllreduceAlgo::ktree, AllreduceAlgo::pipeline, AllreduceAlgo::ring})
      for (Axis axis : {Axis::X, Axis::Y})
        for (bool data : {false, true}) {
          const std::string what = std::string(allreduce_algo_name(algo)) + (axis == Axis::X ? " X" : " Y") +
                                   (defaults ? ", default machine" : ", test machine") + (data ? ", data" : ", timing");
          // 13 x 5 lines at an offset (5 x 9 along Y): blocks cut them at 2 and 4 ranks.
          const Region r = axis == Axis::X ? Region{3, 2, 13, 5} : Region{2, 1, 5, 9};
          Fabric on(MPI_COMM_WORLD, machine(defaults, true));
          Fabric off(MPI_COMM_WORLD, machine(defaults, false));
          std::vector<uint64_t> seen = run_sequence(on, r, axis, algo, data);
          const std::vector<uint64_t> none = run_sequence(off, r, axis, algo, data);
          expect_same_counters(on, off, what);
          // Replayed where the comments of run_sequence say (2 depends on the algorithm's end
          // pattern).
          ASSERT_EQ(seen.size(), 12u);
          seen[1] = 0;
          const uint64_t whole = on.decomposition().block(0).intersect(r) == r;
          if (data && algo == AllreduceAlgo::ring)  // charged PE by PE: never replayed
            EXPECT_EQ(seen, std::vector<uint64_t>(seen.size(), 0)) << what;
          else
            EXPECT_EQ(seen, (std::vector<uint64_t>{0, 0, 1, 1, 0, 1, 0, 1, 0, 1, whole, 1})) << what;
          EXPECT_EQ(none, std::vector<uint64_t>(seen.size(), 0)) << what;
        }
}

// run_timing(lead): the leading compute task is recorded and replayed with the reduction, and every
// figure equals a separate charge_compute followed by run_timing() on a fabric that runs every step.
TEST(Replay, AllreduceLedByAComputeTaskEqualsTheTaskThenTheAllreduce) {
  for (bool defaults : {false, true})
    for (AllreduceAlgo algo : {AllreduceAlgo::ktree, AllreduceAlgo::pipeline, AllreduceAlgo::ring})
      for (Axis axis : {Axis::X, Axis::Y}) {
        const std::string what = std::string(allreduce_algo_name(algo)) + (axis == Axis::X ? " X" : " Y") +
                                 (defaults ? ", default machine" : ", test machine");
        const Region r = axis == Axis::X ? Region{3, 2, 13, 5} : Region{2, 1, 5, 9};
        Fabric on(MPI_COMM_WORLD, machine(defaults, true));
        Fabric off(MPI_COMM_WORLD, machine(defaults, false));
        std::vector<uint64_t> seen = run_sequence(on, r, axis, algo, false, 37);
        const std::vector<uint64_t> none = run_sequence(off, r, axis, algo, false, 37, true);
        expect_same_counters(on, off, what);
        ASSERT_EQ(seen.size(), 12u);
        seen[1] = 0;
        const uint64_t whole = on.decomposition().block(0).intersect(r) == r;
        EXPECT_EQ(seen, (std::vector<uint64_t>{0, 0, 1, 1, 0, 1, 0, 1, 0, 1, whole, 1})) << what;
        EXPECT_EQ(none, std::vector<uint64_t>(seen.size(), 0)) << what;
      }
}

// Replays in a row: after an allreduce along X replays a recording stored PE by PE (one PE late at
// the start), a uniform charge, then an allreduce along Y whose recordings' checks compare the
// recordings (the clocks known as the replayed one's end plus an offset) instead of the clocks.
// Rounds with the late PE 5 and 400 operations late record from each pattern, then replay from each:
// every figure equals a fabric that runs every step, each check of a slot whose start does not fit
// fails, and the checks did go through the recordings.
std::vector<uint64_t> run_rows_of_replays(Fabric& f, const Region& r, AllreduceAlgo algo) {
  AllreduceSpec spec;
  spec.algo = algo;
  LineAllreduce<int32_t> ax(f, r, Axis::X, 3, spec), ay(f, r, Axis::Y, 3, spec);
  const PeCoord odd{r.x0 + r.w / 2, r.y0 + r.h / 2};
  std::vector<uint64_t> replayed;
  for (uint64_t late : {5, 5, 400, 5, 400}) {
    f.barrier_clocks(r);
    if (f.is_local(odd.x, odd.y)) f.charge_compute(odd.x, odd.y, late);
    uint64_t before = f.replays();
    ax.run_timing();
    replayed.push_back(f.replays() - before);
    f.charge_compute(r, 7);
    before = f.replays();
    ay.run_timing();
    replayed.push_back(f.replays() - before);
  }
  return replayed;
}

TEST(Replay, ReplaysInARowCompareRecordingsAndEqualRunningEveryStep) {
  for (bool defaults : {false, true})
    for (AllreduceAlgo algo : {AllreduceAlgo::ktree, AllreduceAlgo::pipeline}) {
      const std::string what = std::string(allreduce_algo_name(algo)) + (defaults ? ", default machine" : ", test machine");
      const Region r{2, 1, 11, 9};  // cut by the blocks at 2 and 4 ranks
      Fabric on(MPI_COMM_WORLD, machine(defaults, true));
      Fabric off(MPI_COMM_WORLD, machine(defaults, false));
      const std::vector<uint64_t> seen = run_rows_of_replays(on, r, algo);
      const std::vector<uint64_t> none = run_rows_of_replays(off, r, algo);
      expect_same_counters(on, off, what);
      // Rounds 1 and 3 record (X, then Y from X's end), rounds 2, 4 and 5 replay both.
      EXPECT_EQ(seen, (std::vector<uint64_t>{0, 0, 1, 1, 0, 0, 1, 1, 1, 1})) << what;
      EXPECT_EQ(none, std::vector<uint64_t>(seen.size(), 0)) << what;
      // The rank holding the late PE keeps recordings PE by PE (rounds 2, 4, 5: Y's against X's end).
      uint64_t compared[2] = {on.recording_comparisons(), off.recording_comparisons()};
      MPI_Allreduce(MPI_IN_PLACE, compared, 2, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
      EXPECT_GE(compared[0], 3u) << what;
      EXPECT_EQ(compared[1], 0u) << what;
    }
}
