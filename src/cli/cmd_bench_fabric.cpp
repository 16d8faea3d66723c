// `wafermesh bench fabric`: what the emulation's engine costs per PE and step, for each fabric
// primitive on P x P regions, at 1 rank and at the job's rank count, against the floor of copying
// the same tiles and clocks once (measured in the same run, on the same ranks).
//
// Primitives (each a sequence of fabric steps on a region with one tile per PE), along the lines of
// the region on each requested axis (rows for X, columns for Y; with ranks split along Y, as the
// auto layout splits WSE-2, columns cross ranks and rows do not):
//   shift1, shift2  every PE sends its tile 1 or 2 places along its line's interleaved ring (one step)
//   multicast       the middle PE of every line sends its tile to the whole line (one step)
//   chain           chain reduction of every line into its middle PE (two chains, P - 1 steps)
//   ktree           K-tree allreduce of every line, K = 2 (its steps and the final multicast); its
//                   repetitions start from a recorded clock pattern, so they apply the recording and
//                   move the data step by step (Fabric::replay) unless emu.replay_timing is false
//   p2p             every PE swaps its tile with the diagonal partner of its 2 x 2 block, two hops
//                   away (a permutation planned from a transfer list, not from line templates)
// ns/PE/step = wall time / (P^2 x steps); floor = the same for copying every rank's tiles and
// clocks once per step (each rank its own, at once), measured right after on the same ranks;
// MPI B/step = bytes the busiest rank sent over MPI per step (departure clocks included).
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iomanip>
#include <ostream>

#include "wafermesh/cli/bench_common.hpp"
#include "wafermesh/cli/machine_options.hpp"
#include "wafermesh/cli/rank0.hpp"
#include "wafermesh/dist/allreduce.hpp"
#include "wafermesh/mesh/mpi_handles.hpp"
#include "wafermesh/mesh/mpi_traits.hpp"
#include "wafermesh/noc/primitives.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::cli {

namespace {

struct FabricBenchOptions {
  std::vector<std::string> primitives{"shift1", "shift2", "multicast", "chain", "ktree", "p2p"};
  std::vector<int64_t> Ps{64, 128, 256, 512, 720};
  std::vector<std::string> axes{"X", "Y"};
  int64_t tile_bytes = 4;
  double min_time_s = 0.2;
  std::string output = "results/bench_fabric.h5";
  std::vector<ParamSpec> specs() {
    return {
        param_text_list("primitive", &primitives, "fabric primitives, comma-separated",
                        {"shift1", "shift2", "multicast", "chain", "ktree", "p2p"}),
        param_int_list("P", &Ps, "PEs", "region sides, comma-separated", 1, 1 << 20),
        param_text_list("axis", &axes, "axes of the lines (p2p has none: it runs once), comma-separated", {"X", "Y"}),
        param_int("tile_bytes", &tile_bytes, "bytes", "tile each PE holds and moves (a multiple of 4)", 4, 1 << 20),
        param_real("min_time_s", &min_time_s, "s", "repeat each point until it has run at least this long", 0, 3600),
        param_text("output", &output, "HDF5 results file (written complete or not at all)"),
    };
  }
};

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// One primitive on one region, built once and run repeatedly.
class Primitive {
 public:
  Primitive(Fabric& f, const std::string& name, Axis axis, const Region& R, size_t elems)
      : f_(f), name_(name), axis_(axis), R_(R), buf_(f, R, elems, "tiles") {
    const int32_t P = R.w;
    const size_t tb = buf_.bytes_per_pe();
    if (name == "shift1" || name == "shift2") {
      plans_.push_back(plan_shift(f, R, axis, name == "shift1" ? 1 : 2, true, LinePerm::interleaved(P), tb));
    } else if (name == "multicast") {
      plans_.push_back(plan_broadcast(f, R, axis, P / 2, tb));
    } else if (name == "ktree") {
      dist::AllreduceSpec spec;  // K = 2, about sqrt(P) groups
      ktree_ = std::make_unique<dist::LineAllreduce<float>>(f, R, axis, elems, spec);
    } else if (name == "p2p") {
      std::vector<std::pair<PeCoord, PeCoord>> pairs;
      for (int32_t y = 0; y < P; ++y)
        for (int32_t x = 0; x < P; ++x)
          if ((x ^ 1) < P && (y ^ 1) < P) pairs.push_back({{R.x0 + x, R.y0 + y}, {R.x0 + (x ^ 1), R.y0 + (y ^ 1)}});
      plans_.push_back(plan_pairs(f, pairs, tb, "p2p permutation"));
    } else if (name != "chain") {
      throw UsageError("unknown fabric primitive '" + name + "'");
    }
  }
  // Runs the primitive once; returns the fabric steps it took.
  int64_t run() {
    if (name_ == "chain") {
      reduce(f_, buf_, axis_, R_.w / 2);
      return R_.w - 1;
    }
    if (ktree_) return int64_t(ktree_->run(buf_).steps);
    for (TransferPlan& p : plans_) f_.execute(p, buf_.view(), buf_.view());
    return int64_t(plans_.size());
  }

 private:
  Fabric& f_;
  std::string name_;
  Axis axis_;
  Region R_;
  TileBuf<float> buf_;
  std::vector<TransferPlan> plans_;
  std::unique_ptr<dist::LineAllreduce<float>> ktree_;
};

struct Point {
  double ns_per_pe_step = 0, floor_ns = 0, mpi_bytes_per_step = 0;
};

// Runs `name` on a P x P region of a fresh fabric over `comm` until min_time_s has passed (every rank
// agrees on the repetitions), then the floor on the same ranks.
Point measure(MPI_Comm comm, const MachineParams& mp, const std::string& name, Axis axis, int64_t P, size_t elems,
              double min_time_s) {
  Fabric f(comm, mp);
  const PeCoord o = centred_origin(mp, P, -1, -1);
  const Region R{o.x, o.y, int32_t(P), int32_t(P)};
  Primitive prim(f, name, axis, R, elems);
  int64_t steps = prim.run();  // warm-up: routes configured, buffers touched
  int64_t reps = 0;
  steps = 0;
  const uint64_t bytes0 = f.mpi_bytes_sent();
  MPI_Barrier(comm);
  const double t0 = now_s();
  for (int more = 1; more;) {
    steps += prim.run();
    ++reps;
    more = now_s() - t0 < min_time_s;
    MPI_Allreduce(MPI_IN_PLACE, &more, 1, mpi_type<int>(), MPI_MAX, comm);  // the slowest rank decides
  }
  double wall = now_s() - t0;
  MPI_Allreduce(MPI_IN_PLACE, &wall, 1, mpi_type<double>(), MPI_MAX, comm);
  Point p;
  p.ns_per_pe_step = wall * 1e9 / (double(P) * double(P) * double(steps));
  uint64_t sent = f.mpi_bytes_sent() - bytes0;
  MPI_Allreduce(MPI_IN_PLACE, &sent, 1, mpi_type<uint64_t>(), MPI_MAX, comm);
  p.mpi_bytes_per_step = double(sent) / double(steps);
  // Floor: this rank's tiles and clocks (8 bytes per PE) copied once per step.
  const size_t local = size_t(std::max<int64_t>(R.intersect(f.block()).size(), 1));
  const size_t bytes = local * (elems * sizeof(float) + sizeof(uint64_t));
  std::vector<std::byte> a(bytes, std::byte{1}), b(bytes);
  MPI_Barrier(comm);
  const double c0 = now_s();
  for (int64_t s = 0; s < steps; ++s) {
    std::memcpy(b.data(), a.data(), bytes);
    a[size_t(s) % bytes] = b[(size_t(s) * 7) % bytes];  // keep every copy observable
  }
  double copy = now_s() - c0;
  MPI_Allreduce(MPI_IN_PLACE, &copy, 1, mpi_type<double>(), MPI_MAX, comm);
  p.floor_ns = copy * 1e9 / (double(P) * double(P) * double(steps));
  return p;
}

}  // namespace

int cmd_bench_fabric(const Context& ctx, const std::vector<std::string>& args) {
  MachineParams mp;
  FabricBenchOptions o;
  OptionSet opts;
  if (!parse_command(ctx, args, opts, mp, o.specs(),
                     "usage: wafermesh bench fabric [--config FILE] [options]\n\n"
                         "The engine's wall time per PE and step for each fabric primitive on P x P regions, at 1 rank\n"
                         "and at the job's rank count, against copying the same tiles and clocks once (the floor)."))
    return 0;
  if (o.tile_bytes % 4 != 0) throw UsageError("option --tile_bytes = " + std::to_string(o.tile_bytes) + ": must be a multiple of 4");
  for (int64_t P : o.Ps)
    if (P > mp.width_pes || P > mp.height_pes)
      throw UsageError("option --P = " + std::to_string(P) + ": a " + std::to_string(P) + " x " + std::to_string(P) +
                       " region does not fit the " + std::to_string(mp.width_pes) + " x " +
                       std::to_string(mp.height_pes) + " mesh");
  std::ostream& out = *ctx.out;
  std::vector<int> rank_counts{1};
  if (ctx.size > 1) rank_counts.push_back(ctx.size);
  io::Table t;
  t.add_column("primitive", "", io::ColumnKind::text);
  t.add_column("axis", "", io::ColumnKind::text);
  t.add_column("P", "PEs", io::ColumnKind::integer);
  t.add_column("ranks", "ranks", io::ColumnKind::integer);
  t.add_column("tile_bytes", "bytes", io::ColumnKind::integer);
  t.add_column("ns_per_pe_step", "ns", io::ColumnKind::real);
  t.add_column("floor_ns_per_pe_step", "ns", io::ColumnKind::real);
  t.add_column("ratio_to_floor", "", io::ColumnKind::real);
  t.add_column("mpi_bytes_per_step", "bytes", io::ColumnKind::real);
  out << "bench fabric: " << o.tile_bytes << "-byte tiles on a " << mp.width_pes << " x " << mp.height_pes
      << " mesh; ns per PE and step (wall), the floor (copying the tiles and clocks once), MPI bytes a rank sent per step\n\n"
      << std::left << std::setw(11) << "primitive" << std::setw(5) << "axis" << std::right << std::setw(6) << "P"
      << std::setw(7) << "ranks"
      << std::setw(14) << "ns/PE/step" << std::setw(10) << "floor ns" << std::setw(9) << "ratio" << std::setw(14)
      << "MPI B/step\n";
  const size_t elems = size_t(o.tile_bytes / 4);
  for (const auto& name : o.primitives)
    for (const auto& ax : name == "p2p" ? std::vector<std::string>{"-"} : o.axes)
      for (int64_t P : o.Ps)
        for (int k : rank_counts) {
          const MpiComm sub = split_comm(ctx.comm, ctx.rank < k ? 0 : MPI_UNDEFINED, ctx.rank);
          Point p;
          // An error on the measuring ranks (every one of them throws it) reaches the idle ones too.
          int failed = 0;  // 2: input, 3: a limit of the machine
          std::string why;
          if (sub) {
            MachineParams q = mp;
            q.ranks_x = q.ranks_y = 0;
            try {
              p = measure(sub.get(), q, name, ax == "Y" ? Axis::Y : Axis::X, P, elems, o.min_time_s);
            } catch (const LimitError& e) {
              failed = 3;
              why = e.what();
            } catch (const UsageError& e) {
              failed = 2;
              why = e.what();
            }
          }
          MPI_Bcast(&failed, 1, mpi_type<int>(), 0, ctx.comm);
          if (failed) {
            bcast_string(ctx.comm, why);
            if (failed == 3) throw LimitError(why);
            throw UsageError(why);
          }
          MPI_Bcast(&p, sizeof(Point), mpi_type<std::byte>(), 0, ctx.comm);
          const double ratio = p.floor_ns > 0 ? p.ns_per_pe_step / p.floor_ns : 0.0;
          t.append_row({name, ax, P, int64_t(k), o.tile_bytes, p.ns_per_pe_step, p.floor_ns, ratio, p.mpi_bytes_per_step});
          out << std::left << std::setw(11) << name << std::setw(5) << ax << std::right << std::setw(6) << P
              << std::setw(7) << k << std::fixed << std::setprecision(1) << std::setw(14) << p.ns_per_pe_step
              << std::setw(10) << std::setprecision(2) << p.floor_ns << std::setw(9) << std::setprecision(1) << ratio
              << std::setw(14) << std::setprecision(0) << p.mpi_bytes_per_step << "\n"
              << std::flush;
        }
  write_bench_results(ctx, opts, mp, o.output, "fabric", t, -1);
  return 0;
}

}  // namespace wm::cli
