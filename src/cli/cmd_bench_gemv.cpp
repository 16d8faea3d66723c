// `wafermesh bench gemv`: MeshGEMV with each allreduce on each region size: virtual cycles (total,
// compute, communication), hops and relay stages on the critical path, route entries and SRAM per
// PE, wall time; and the emulation's wall time against the bare kernel GEMV of the same matrix.
#include <mpi.h>

#include <algorithm>
#include <iomanip>
#include <ostream>
#include <random>
#include <thread>

#include "wafermesh/cli/bench_common.hpp"
#include "wafermesh/cli/machine_options.hpp"
#include "wafermesh/cli/trace_file.hpp"
#include "wafermesh/dist/gemv.hpp"
#include "wafermesh/kernels/activations.hpp"
#include "wafermesh/kernels/fp32_gemm.hpp"
#include "wafermesh/kernels/pack.hpp"
#include "wafermesh/kernels/ternary_lut.hpp"
#include "wafermesh/noc/energy.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::cli {

namespace {

struct GemvBenchOptions {
  std::vector<std::string> allreduce{"pipeline", "ring", "ktree"};
  std::vector<int64_t> Ps{8, 16, 32};
  int64_t M = 2560, K = 2560;
  std::string dtype = "ternary";
  std::string axis = "X";
  int64_t levels = 2, groups = 0;
  int64_t origin_x = -1, origin_y = -1;
  std::string output = "results/bench_gemv.h5";
  bool compare_local = true;
  int64_t local_threads = 0, repeats = 5, warmup = 10, seed = 1;
  std::vector<ParamSpec> specs() {
    return {
        param_text_list("allreduce", &allreduce, "allreduce algorithms, comma-separated",
                        {"pipeline", "ring", "ktree"}),
        param_int_list("P", &Ps, "PEs", "region sides, comma-separated", 1, 1 << 20),
        param_int("M", &M, "rows", "rows of W (outputs)", 1, int64_t(1) << 24),
        param_int("K", &K, "columns", "columns of W (inputs)", 1, int64_t(1) << 24),
        param_text("dtype", &dtype, "ternary (int8 x ternary, LUT kernel) or fp32", {"ternary", "fp32"}),
        param_text("axis", &axis, "mesh axis of the reduction", {"X", "Y"}),
        param_int("origin_x", &origin_x, "PEs",
                  "X of the region's top-left PE (-1 = centred, so the region spans the ranks)", -1, 1 << 20),
        param_int("origin_y", &origin_y, "PEs", "Y of the region's top-left PE (-1 = centred)", -1, 1 << 20),
        param_int("levels", &levels, "levels", "ktree: levels K", 1, 64),
        param_int("groups", &groups, "groups", "ktree, K = 2: groups of level 1 (0 = sqrt(P))", 0, 1 << 20),
        param_text("output", &output, "HDF5 results file (written complete or not at all)"),
        param_flag("compare_local", &compare_local, "also time the bare kernel GEMV of the whole matrix"),
        param_int("local_threads", &local_threads, "threads", "threads of the bare kernel (0 = all cores)", 0,
                  4096),
        param_int("repeats", &repeats, "runs", "runs per point; the fastest wall time is reported", 1, 1000),
        param_int("warmup", &warmup, "runs",
                  "untimed runs per point before the timed ones, of the emulation and of the bare kernel alike (a "
                  "GEMV's first runs configure its routes, record its allreduce and bring its weights into the caches)",
                  0, 1000),
        param_int("seed", &seed, "", "seed of the random operands", 0, int64_t(1) << 62),
    };
  }
};

}  // namespace

int cmd_bench_gemv(const Context& ctx, const std::vector<std::string>& args) {
  MachineParams mp;
  GemvBenchOptions o;
  TraceOptions trace_opts;
  OptionSet opts;
  std::vector<ParamSpec> specs = o.specs();
  for (const ParamSpec& s : trace_opts.specs()) specs.push_back(s);
  const bool run = parse_command(ctx, args, opts, mp, specs,
                                 "usage: wafermesh bench gemv [--config FILE] [options]\n\n"
                                 "y = W x on P x P regions with each allreduce; virtual figures, wall time, and the ratio of\n"
                                 "the emulation's wall time to the bare kernel GEMV of the whole matrix.");
  if (opts.help_requested()) return 0;
  trace_opts.check(ctx, mp);
  TraceFile trace(trace_opts, mp);
  std::ostream& out = *ctx.out;
  const MeshShape mesh{int32_t(mp.width_pes), int32_t(mp.height_pes)};
  auto spec_for = [&](const std::string& ar, int64_t P) {
    dist::GemvSpec s;
    s.P = int32_t(P);
    s.origin = centred_origin(mp, P, o.origin_x, o.origin_y);
    s.M = o.M;
    s.K = o.K;
    s.reduce_axis = o.axis == "X" ? Axis::X : Axis::Y;
    s.allreduce.algo = dist::allreduce_algo_from_name(ar);
    s.allreduce.levels = int(o.levels);
    s.allreduce.groups = int(o.groups);
    dist::check_gemv_spec(mesh, s);
    return s;
  };
  for (const auto& ar : o.allreduce)
    for (int64_t P : o.Ps) spec_for(ar, P);
  const bool ternary = o.dtype == "ternary";
  check_host_bytes("bench gemv: W (" + std::to_string(o.M) + " x " + std::to_string(o.K) + ")",
                   {o.M, o.K, ternary ? 1 : 4, 2});  // (and its packed or tiled copy)
  if (!run) return 0;  // `sweep` checking a study: geometry and sizes checked, run nothing
  const int threads = o.local_threads > 0 ? int(o.local_threads) : int(std::thread::hardware_concurrency());

  std::mt19937_64 g(uint64_t(o.seed));
  std::vector<int8_t> Wt, xt;
  std::vector<float> Wf, xf;
  if (ternary) {
    Wt.resize(size_t(o.M * o.K));
    xt.resize(size_t(o.K));
    for (auto& w : Wt) w = int8_t(int(g() % 3) - 1);
    for (auto& x : xt) x = int8_t(int(g() % 255) - 127);
  } else {
    std::uniform_real_distribution<float> u(-1, 1);
    Wf.resize(size_t(o.M * o.K));
    xf.resize(size_t(o.K));
    for (auto& w : Wf) w = u(g);
    for (auto& x : xf) x = u(g);
  }

  double local_s = -1;
  if (o.compare_local) {
    // The same work as the emulation, once for the whole matrix: activation tables, then the GEMV.
    kernels::TernaryMatrixLut packed;
    if (ternary && ctx.rank == 0) packed = kernels::TernaryMatrixLut::from_int8(Wt.data(), o.M, o.K, o.K);
    std::vector<int32_t> yi(size_t(o.M));
    std::vector<float> yf(size_t(o.M));
    for (int64_t r = -o.warmup; r < o.repeats; ++r) {
      const double t = time_on_rank0(ctx, threads, [&] {
        if (ternary) {
          const auto tables = kernels::LutTables::from_int8(xt.data(), 1, o.K, o.K);
          kernels::lut_gemv_i32(packed, tables, yi.data());
        } else {
          kernels::gemv_f32(o.M, o.K, Wf.data(), o.K, xf.data(), yf.data(), false);
        }
      });
      if (r >= 0) local_s = local_s < 0 ? t : std::min(local_s, t);
    }
  }

  io::Table t;
  t.add_column("allreduce", "", io::ColumnKind::text);
  t.add_column("P", "PEs", io::ColumnKind::integer);
  t.add_column("M", "rows", io::ColumnKind::integer);
  t.add_column("K", "columns", io::ColumnKind::integer);
  t.add_column("status", "", io::ColumnKind::text);
  t.add_column("total_cycles", "cycles", io::ColumnKind::integer);
  t.add_column("total_us", "us", io::ColumnKind::real);
  t.add_column("compute_cycles", "cycles", io::ColumnKind::integer);
  t.add_column("comm_cycles", "cycles", io::ColumnKind::integer);
  t.add_column("critical_hops", "hops", io::ColumnKind::integer);
  t.add_column("critical_stages", "relay stages", io::ColumnKind::integer);
  t.add_column("max_route_entries", "entries/PE", io::ColumnKind::integer);
  t.add_column("peak_sram_bytes", "bytes/PE", io::ColumnKind::integer);
  t.add_column("wall_s", "s", io::ColumnKind::real);
  t.add_column("local_wall_s", "s", io::ColumnKind::real);
  t.add_column("wall_ratio", "emulated/local", io::ColumnKind::real);
  add_energy_columns(t);

  out << "bench gemv: y = W x, " << o.dtype << ", " << o.M << " x " << o.K << ", reduction along " << o.axis
      << ", on a " << mp.width_pes << " x " << mp.height_pes << " mesh, " << ctx.size << " rank(s), " << mp.clock_ghz
      << " GHz, fastest of " << o.repeats << " run(s) after " << o.warmup << " untimed\n";
  if (o.compare_local)
    out << "bare kernel GEMV of the whole matrix, one process, " << threads << " thread(s): " << std::fixed
        << std::setprecision(6) << local_s << " s\n";
  out << "\n" << std::left << std::setw(10) << "allreduce" << std::right << std::setw(5) << "P" << std::setw(11)
      << "total cyc" << std::setw(10) << "total us" << std::setw(12) << "compute cyc" << std::setw(10) << "comm cyc"
      << std::setw(10) << "crit hops" << std::setw(12) << "crit stages" << std::setw(8) << "routes" << std::setw(11)
      << "SRAM B/PE" << std::setw(12) << "energy uJ" << std::setw(11) << "wall s" << std::setw(12) << "wall/local"
      << "\n";
  for (const auto& ar : o.allreduce)
    for (int64_t P : o.Ps) {
      const dist::GemvSpec s = spec_for(ar, P);
      std::string status = "ok";
      dist::GemvReport best;
      WorkCounts work;  // of the fastest run
      try {
        Fabric f(ctx.comm, mp);
        std::unique_ptr<PeWindowTrace> pe_trace = trace.record_pes(f);
        std::unique_ptr<dist::MeshGemvTernary> gt;
        std::unique_ptr<dist::MeshGemvF32> gf;
        if (ternary) gt = std::make_unique<dist::MeshGemvTernary>(f, s, Wt.data());
        else gf = std::make_unique<dist::MeshGemvF32>(f, s, Wf.data());
        for (int64_t r = -o.warmup; r < o.repeats; ++r) {
          const WorkCounts w0 = f.work();
          const dist::GemvReport rep = ternary ? gt->run(xt.data(), nullptr) : gf->run(xf.data(), nullptr);
          const WorkCounts w = f.work() - w0;
          if (r == 0 || (r > 0 && rep.wall_s < best.wall_s)) best = rep, work = w;
        }
        if (trace.on()) {  // the last run's span (every run has the same cycles)
          const Region R{s.origin.x, s.origin.y, s.P, s.P};
          trace.add_point(ar + " P=" + std::to_string(P), "region " + R.str(), "GEMV (" + ar + " allreduce)",
                          f.max_clock(R), best.total_cycles,
                          {{"compute_cycles", int64_t(best.compute_cycles)}, {"comm_cycles", int64_t(best.comm_cycles)}},
                          pe_trace.get());
        }
      } catch (const LimitError& e) {
        status = std::string("infeasible: ") + e.what();
      }
      const double ratio = status == "ok" && local_s > 0 ? best.wall_s / local_s : 0.0;
      std::vector<io::Table::Cell> row = {ar, P, o.M, o.K, status, int64_t(best.total_cycles),
                                          mp.cycles_to_us(best.total_cycles), int64_t(best.compute_cycles),
                                          int64_t(best.comm_cycles), int64_t(best.critical_hops),
                                          int64_t(best.critical_stages), int64_t(best.max_route_entries),
                                          int64_t(best.peak_sram_bytes), best.wall_s, local_s, ratio};
      // The region's work, and its PEs' static power over the run's cycles.
      const EnergySplit e = append_energy_cells(row, mp, work, uint64_t(P * P), best.total_cycles);
      t.append_row(std::move(row));
      out << std::left << std::setw(10) << ar << std::right << std::setw(5) << P;
      if (status != "ok") {
        out << "  " << status << "\n" << std::flush;
        continue;
      }
      out << std::setw(11) << best.total_cycles << std::setw(10) << std::fixed << std::setprecision(2)
          << mp.cycles_to_us(best.total_cycles) << std::setw(12) << best.compute_cycles << std::setw(10)
          << best.comm_cycles << std::setw(10) << best.critical_hops << std::setw(12) << best.critical_stages
          << std::setw(8) << best.max_route_entries << std::setw(11) << best.peak_sram_bytes << std::setw(12)
          << std::setprecision(3) << e.total_j() * 1e6 << std::setw(11) << std::setprecision(6) << best.wall_s
          << std::setw(12);
      if (ratio > 0) out << std::setprecision(2) << ratio; else out << "-";
      out << "\n" << std::flush;
    }
  write_bench_results(ctx, opts, mp, o.output, "gemv", t, o.seed);
  trace.write(ctx);
  return 0;
}

}  // namespace wm::cli
