// `wafermesh bench shift`: every PE of a P x P region sends its tile L PEs along one axis (the
// region-shift microbenchmark of the calibration); virtual cycles per distance and tile size.
#include <mpi.h>

#include <iomanip>
#include <ostream>

#include "wafermesh/cli/bench_common.hpp"
#include "wafermesh/cli/machine_options.hpp"
#include "wafermesh/cli/calibration.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::cli {

namespace {
struct ShiftBenchOptions {
  int64_t P = 64;
  std::vector<int64_t> Ls{1, 2, 4, 8, 16, 32};
  std::vector<int64_t> tile_bytes{256};
  std::string axis = "X";
  int64_t origin_x = -1, origin_y = -1;
  std::string output = "results/bench_shift.h5";
  std::vector<ParamSpec> specs() {
    return {
        param_int("P", &P, "PEs", "side of the P x P region", 2, 1 << 20),
        param_int_list("L", &Ls, "PEs", "shift distances, comma-separated (each below P)", 1, 1 << 20),
        param_int_list("tile_bytes", &tile_bytes, "bytes", "tile sizes, comma-separated (multiples of 4)", 4,
                       1 << 20),
        param_text("axis", &axis, "mesh axis of the shift", {"X", "Y"}),
        param_int("origin_x", &origin_x, "PEs",
                  "X of the region's top-left PE (-1 = centred, so the region spans the ranks)", -1, 1 << 20),
        param_int("origin_y", &origin_y, "PEs", "Y of the region's top-left PE (-1 = centred)", -1, 1 << 20),
        param_text("output", &output, "HDF5 results file (written complete or not at all)"),
    };
  }
};
}  // namespace

int cmd_bench_shift(const Context& ctx, const std::vector<std::string>& args) {
  MachineParams mp;
  ShiftBenchOptions o;
  OptionSet opts;
  const bool run = parse_command(ctx, args, opts, mp, o.specs(),
                                 "usage: wafermesh bench shift [--config FILE] [options]\n\n"
                                 "Every PE of a P x P region sends its tile L PEs along the axis (the last L PEs' tiles leave\n"
                                 "the region): virtual cycles for each distance and tile size. The L streams that cross each\n"
                                 "link share it, so a PE carries up to L routes (noc.route_entries; noc.route_fallback).");
  if (opts.help_requested()) return 0;
  std::ostream& out = *ctx.out;
  if (o.P > mp.width_pes || o.P > mp.height_pes)
    throw UsageError("option --P = " + std::to_string(o.P) + ": a " + std::to_string(o.P) + " x " +
                     std::to_string(o.P) + " region does not fit the " + std::to_string(mp.width_pes) + " x " +
                     std::to_string(mp.height_pes) + " mesh");
  for (int64_t L : o.Ls)
    if (L >= o.P)
      throw UsageError("option --L = " + std::to_string(L) + ": must be below the region side P = " +
                       std::to_string(o.P));
  for (int64_t b : o.tile_bytes)
    if (b % 4) throw UsageError("option --tile_bytes = " + std::to_string(b) + ": not a multiple of 4");
  const PeCoord origin = centred_origin(mp, o.P, o.origin_x, o.origin_y);
  const Region R{origin.x, origin.y, int32_t(o.P), int32_t(o.P)};
  const Axis axis = o.axis == "X" ? Axis::X : Axis::Y;
  if (!run) return 0;

  io::Table t;
  t.add_column("P", "PEs", io::ColumnKind::integer);
  t.add_column("L", "PEs", io::ColumnKind::integer);
  t.add_column("tile_bytes", "bytes", io::ColumnKind::integer);
  t.add_column("status", "", io::ColumnKind::text);
  t.add_column("total_cycles", "cycles", io::ColumnKind::integer);
  t.add_column("total_us", "us", io::ColumnKind::real);
  t.add_column("max_route_entries", "entries/PE", io::ColumnKind::integer);
  out << "bench shift: " << o.P << " x " << o.P << " region at (" << R.x0 << ", " << R.y0 << ") of a " << mp.width_pes
      << " x " << mp.height_pes << " mesh, along " << o.axis << ", " << ctx.size << " rank(s), " << mp.clock_ghz
      << " GHz\n\n"
      << std::setw(6) << "L" << std::setw(12) << "tile B" << std::setw(12) << "total cyc" << std::setw(11)
      << "total us" << std::setw(9) << "routes" << "\n";
  for (int64_t b : o.tile_bytes)
    for (int64_t L : o.Ls) {
      std::string status = "ok";
      uint64_t cyc = 0, routes = 0;
      try {
        Fabric f(ctx.comm, mp);
        cyc = region_shift_cycles(f, R, axis, L, b);
        routes = f.summarize(R).max_route_peak_entries;
      } catch (const LimitError& e) {
        status = std::string("infeasible: ") + e.what();
      }
      t.append_row({o.P, L, b, status, int64_t(cyc), mp.cycles_to_us(cyc), int64_t(routes)});
      out << std::setw(6) << L << std::setw(12) << b;
      if (status != "ok") {
        out << "  " << status << "\n" << std::flush;
        continue;
      }
      out << std::setw(12) << cyc << std::setw(11) << std::fixed << std::setprecision(3) << mp.cycles_to_us(cyc)
          << std::setw(9) << routes << "\n"
          << std::flush;
    }
  write_bench_results(ctx, opts, mp, o.output, "shift", t, 0);
  return 0;
}

}  // namespace wm::cli
