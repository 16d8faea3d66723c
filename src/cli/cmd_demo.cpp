// `wafermesh demo`: a demonstration run of the fabric on the whole mesh. Every operation is
// checked against the tiles it must produce, and reported in virtual cycles (the wafer) and
// wall time (the emulation).
#include <mpi.h>

#include <iomanip>
#include <memory>
#include <ostream>
#include <sstream>

#include "wafermesh/cli/bench_common.hpp"
#include "wafermesh/cli/commands.hpp"
#include "wafermesh/cli/machine_options.hpp"
#include "wafermesh/cli/trace_file.hpp"
#include "wafermesh/mesh/mpi_traits.hpp"
#include "wafermesh/noc/primitives.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::cli {

namespace {

struct DemoOptions {
  int64_t tile_bytes = 256;
  int64_t shifts = 4;
  std::string output = "results/demo.h5";
  std::vector<ParamSpec> specs() {
    return {param_int("tile_bytes", &tile_bytes, "bytes", "tile each PE holds and moves (multiple of 4)", 4,
                      int64_t(1) << 30),
            param_int("shifts", &shifts, "steps", "ring shifts forward (then back) per shift operation", 1,
                      1 << 20),
            param_text("output", &output,
                       "HDF5 file for the table and the per-PE maps of the mesh (empty: none)")};
  }
};

uint32_t fill_value(const MeshShape& m, int32_t x, int32_t y, size_t k) {
  return uint32_t(m.id(x, y)) * 2654435761u + uint32_t(k);
}

}  // namespace

int cmd_demo(const Context& ctx, const std::vector<std::string>& args) {
  MachineParams mp;
  DemoOptions dopt;
  TraceOptions trace_opts;
  OptionSet opts;
  std::vector<ParamSpec> specs = dopt.specs();
  for (const ParamSpec& s : trace_opts.specs()) specs.push_back(s);
  if (!parse_command(ctx, args, opts, mp, specs,
                     "usage: wafermesh demo [--config FILE] [options]\n\n"
                     "A demonstration run of the emulated fabric on the whole mesh: ring shifts in natural\n"
                     "and interleaved (MeshGEMM) order along X and Y, broadcasts and a chain reduction.\n"
                     "Prints virtual cycles (what the wafer would take) and wall time (what emulation took)."))
    return 0;
  std::ostream& out = *ctx.out;
  if (dopt.tile_bytes % 4) throw UsageError("option --tile_bytes = " + std::to_string(dopt.tile_bytes) +
                                            ": must be a multiple of 4");
  trace_opts.check(ctx, mp);
  TraceFile trace(trace_opts, mp);
  const int trace_pid = trace.new_process("mesh (virtual time)");
  trace.json().thread(trace_pid, 1, "operations", 0);

  const double wall0 = MPI_Wtime();
  Fabric f(ctx.comm, mp);
  const MeshShape& m = f.mesh();
  const Region all = m.full();
  const size_t elems = size_t(dopt.tile_bytes) / 4;
  TileBuf<uint32_t> a(f, all, elems, "demo tiles");  // fails (on every rank) before anything is printed
  std::unique_ptr<PeWindowTrace> pe_trace = trace.record_pes(f);
  out << "fabric demo: " << m.width << " x " << m.height << " PEs on " << ctx.size << " rank(s) ("
      << f.decomposition().ranks_x() << " x " << f.decomposition().ranks_y() << "), " << dopt.tile_bytes
      << "-byte tiles, " << mp.clock_ghz << " GHz\n"
      << std::flush;
  a.for_each_local([&](int32_t x, int32_t y, uint32_t* t) {
    for (size_t k = 0; k < elems; ++k) t[k] = fill_value(m, x, y, k);
  });

  bool all_ok = true;
  // Every local tile must equal expect(x, y, k); agreed over all ranks.
  auto check = [&](auto expect) {
    int bad = 0;
    a.for_each_local([&](int32_t x, int32_t y, uint32_t* t) {
      for (size_t k = 0; k < elems && !bad; ++k) bad = t[k] != expect(x, y, k);
    });
    MPI_Allreduce(MPI_IN_PLACE, &bad, 1, mpi_type<int>(), MPI_MAX, ctx.comm);
    all_ok = all_ok && !bad;
    return bad == 0;
  };

  out << "\n  " << std::left << std::setw(50) << "operation" << std::right << std::setw(7) << "steps" << std::setw(14)
      << "virtual cyc" << std::setw(12) << "virtual us" << std::setw(12) << "cyc/step" << std::setw(10) << "max hops"
      << std::setw(12) << "routes/PE" << std::setw(11) << "check" << std::setw(11) << "wall ms" << "\n";
  io::Table table;
  table.add_column("operation", "", io::ColumnKind::text);
  table.add_column("steps", "steps", io::ColumnKind::integer);
  table.add_column("virtual_cycles", "cycles", io::ColumnKind::integer);
  table.add_column("virtual_us", "us", io::ColumnKind::real);
  table.add_column("max_hops", "hops", io::ColumnKind::integer);
  table.add_column("max_route_entries", "entries/PE", io::ColumnKind::integer);
  table.add_column("check", "", io::ColumnKind::text);
  table.add_column("wall_s", "s", io::ColumnKind::real);
  table.add_column("mpi_messages", "messages", io::ColumnKind::integer);  // busiest rank, this operation
  table.add_column("mpi_bytes", "bytes", io::ColumnKind::integer);        // busiest rank, this operation
  table.add_column("pes", "PEs", io::ColumnKind::integer);
  table.add_column("pe_messages", "messages", io::ColumnKind::integer);  // PE-to-PE tile messages, all PEs
  auto row = [&](const std::string& name, int64_t steps, auto op, auto expect) {
    f.barrier_clocks(all);
    f.reset_peaks();
    const Fabric::Summary s0 = f.summarize(all);
    const uint64_t before = s0.max_clock_cycles;
    MPI_Barrier(ctx.comm);
    uint64_t mpi[2] = {f.mpi_messages_sent(), f.mpi_bytes_sent()};
    const double t0 = MPI_Wtime();
    op();
    double wall = MPI_Wtime() - t0;
    MPI_Allreduce(MPI_IN_PLACE, &wall, 1, mpi_type<double>(), MPI_MAX, ctx.comm);
    mpi[0] = f.mpi_messages_sent() - mpi[0];
    mpi[1] = f.mpi_bytes_sent() - mpi[1];
    MPI_Allreduce(MPI_IN_PLACE, mpi, 2, mpi_type<uint64_t>(), MPI_MAX, ctx.comm);
    const Fabric::Summary s = f.summarize(all);
    const uint64_t cyc = s.max_clock_cycles - before;
    const bool ok = check(expect);
    const uint64_t noc = s.total_bytes_sent - s0.total_bytes_sent;
    trace.json().span(trace_pid, 1, name, "operation", before, cyc,
                      {{"steps", steps}, {"max_hops", int64_t(s.max_hops)}, {"noc_bytes", int64_t(noc)}});
    if (cyc > 0) {
      trace.json().counter(trace_pid, "NoC bytes/us (mean over the operation)", before,
                           {{"bytes/us", double(noc) / (double(cyc) / trace.json().cycles_per_us())}});
      trace.json().counter(trace_pid, "NoC bytes/us (mean over the operation)", before + cyc, {{"bytes/us", 0.0}});
    }
    table.append_row({name, steps, int64_t(cyc), mp.cycles_to_us(cyc), int64_t(s.max_hops),
                      int64_t(s.max_route_peak_entries), std::string(ok ? "ok" : "WRONG"), wall, int64_t(mpi[0]),
                      int64_t(mpi[1]), int64_t(m.width) * m.height, int64_t(s.total_messages - s0.total_messages)});
    out << "  " << std::left << std::setw(50) << name << std::right << std::setw(7) << steps << std::setw(14) << cyc
        << std::setw(12) << std::fixed << std::setprecision(3) << mp.cycles_to_us(cyc) << std::setw(12)
        << std::setprecision(1) << double(cyc) / double(steps) << std::setw(10) << s.max_hops << std::setw(12)
        << s.max_route_peak_entries << std::setw(11) << (ok ? "ok" : "WRONG") << std::setw(11)
        << std::setprecision(2) << wall * 1e3 << "\n"
        << std::flush;
  };
  auto home = [&](int32_t x, int32_t y, size_t k) { return fill_value(m, x, y, k); };
  for (Axis axis : {Axis::X, Axis::Y}) {
    const int32_t n = line_length(all, axis);
    for (const LinePerm& perm : {LinePerm::natural(n), LinePerm::interleaved(n)}) {
      std::ostringstream name;
      name << "ring shift along " << (axis == Axis::X ? "X" : "Y") << ", " << perm.name() << " order, there+back";
      row(name.str(), 2 * dopt.shifts, [&] {
        TransferPlan fwd = plan_shift(f, all, axis, +1, true, perm, a.bytes_per_pe());
        TransferPlan back = plan_shift(f, all, axis, -1, true, perm, a.bytes_per_pe());
        for (int64_t i = 0; i < dopt.shifts; ++i) f.execute(fwd, a.view(), a.view());
        for (int64_t i = 0; i < dopt.shifts; ++i) f.execute(back, a.view(), a.view());
      }, home);
    }
  }
  row("broadcast along X from x = 0", 1, [&] { broadcast(f, a, Axis::X, 0); },
      [&](int32_t, int32_t y, size_t k) { return fill_value(m, 0, y, k); });
  row("broadcast along Y from y = 0", 1, [&] { broadcast(f, a, Axis::Y, 0); },
      [&](int32_t, int32_t, size_t k) { return fill_value(m, 0, 0, k); });
  // Every PE now holds PE (0,0)'s tile v; a row's chain reduction into x = W/2 gives W*v there and
  // partial sums elsewhere (left: (x+1)*v, right: (W-x)*v), in exact uint32 arithmetic.
  const int32_t root = m.width / 2;
  row("chain reduction along X into x = W/2", std::max<int64_t>(root, m.width - 1 - root),
      [&] { reduce(f, a, Axis::X, root); },
      [&](int32_t x, int32_t, size_t k) {
        const uint32_t v = fill_value(m, 0, 0, k);
        const uint32_t count = x == root ? uint32_t(m.width) : x < root ? uint32_t(x + 1) : uint32_t(m.width - x);
        return v * count;
      });

  const Fabric::Summary s = f.summarize(all);
  double wall = MPI_Wtime() - wall0;
  MPI_Allreduce(MPI_IN_PLACE, &wall, 1, mpi_type<double>(), MPI_MAX, ctx.comm);
  out << "\nwafer (virtual): " << s.max_clock_cycles << " cycles = " << std::setprecision(3)
      << mp.cycles_to_us(s.max_clock_cycles) << " us; peak SRAM " << s.max_sram_peak_bytes << " of " << mp.sram_bytes
      << " bytes per PE; " << s.total_bytes_sent << " bytes sent in " << s.total_messages << " messages\n";
  out << "emulation (wall): " << std::setprecision(2) << wall << " s on " << ctx.size << " rank(s)\n";
  out << "checks: " << (all_ok ? "every operation produced the expected tiles" : "SOME OPERATION WAS WRONG") << "\n";
  write_results_with_maps(ctx, opts, mp, dopt.output, "demo", table, -1, f, all);
  if (pe_trace) trace.add_pes(trace.new_process("PEs " + pe_trace->window().str()), *pe_trace);
  pe_trace.reset();
  trace.write(ctx);
  return all_ok ? 0 : 1;
}

}  // namespace wm::cli
