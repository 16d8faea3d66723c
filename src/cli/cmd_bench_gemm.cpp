// `wafermesh bench gemm`: the distributed GEMM algorithms over a list of region sizes, with every
// figure of GemmReport, printed as a table with units and written to an HDF5 file; optionally the
// emulation's wall time against the same product computed by the local kernel in one process.
#include <mpi.h>
#include <omp.h>

#include <chrono>
#include <functional>
#include <iomanip>
#include <memory>
#include <ostream>
#include <random>
#include <sstream>
#include <thread>

#include "wafermesh/cli/bench_common.hpp"
#include "wafermesh/cli/commands.hpp"
#include "wafermesh/cli/machine_options.hpp"
#include "wafermesh/cli/trace_file.hpp"
#include "wafermesh/dist/gemm.hpp"
#include "wafermesh/io/results_file.hpp"
#include "wafermesh/kernels/activations.hpp"
#include "wafermesh/kernels/fp32_gemm.hpp"
#include "wafermesh/kernels/pack.hpp"
#include "wafermesh/kernels/ternary_lut.hpp"
#include "wafermesh/noc/energy.hpp"
#include "wafermesh/mesh/mpi_traits.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::cli {

namespace {

struct GemmBenchOptions {
  std::vector<std::string> algos{"meshgemm", "cannon", "summa"};
  std::vector<int64_t> Ps{8, 16, 32};
  int64_t M = 512, K = 512, N = 512;
  bool transpose_b = false;
  std::string dtype = "fp32";
  bool double_buffer = true;
  int64_t origin_x = -1, origin_y = -1;
  std::string output = "results/bench_gemm.h5";
  bool compare_local = true;
  int64_t local_threads = 0;
  int64_t seed = 1;
  std::string compute = "full";
  bool preskewed = false;
  std::vector<ParamSpec> specs() {
    return {
        param_text_list("algo", &algos, "algorithms to run, comma-separated", {"meshgemm", "cannon", "summa"}),
        param_int_list("P", &Ps, "PEs", "region sides to run, comma-separated", 1, 1 << 20),
        param_int("M", &M, "rows", "rows of A and C", 1, int64_t(1) << 24),
        param_int("K", &K, "elements", "inner dimension", 1, int64_t(1) << 24),
        param_int("N", &N, "columns", "columns of B and C", 1, int64_t(1) << 24),
        param_flag("transpose_b", &transpose_b, "compute C = A B^T with B stored N x K"),
        param_text("dtype", &dtype, "fp32, or ternary (int8 activations x ternary weights, exact int32)",
                   {"fp32", "ternary"}),
        param_flag("double_buffer", &double_buffer,
                   "overlap the next transfer with compute (twice the operand SRAM)"),
        param_int("origin_x", &origin_x, "PEs",
                  "X of the region's top-left PE (-1 = centred, so the region spans the ranks)", -1, 1 << 20),
        param_int("origin_y", &origin_y, "PEs", "Y of the region's top-left PE (-1 = centred)", -1, 1 << 20),
        param_text("output", &output, "HDF5 results file (written complete or not at all)"),
        param_flag("compare_local", &compare_local,
                   "also time the whole product with the local kernel in one process and print the ratio"),
        param_int("local_threads", &local_threads, "threads",
                  "threads of the local comparison (0 = all cores)", 0, 4096),
        param_int("seed", &seed, "", "seed of the random operands", 0, int64_t(1) << 62),
        param_text("compute", &compute,
                   "full, or none: timing only (zero tiles move as the operands' would and every block product "
                   "is charged, but none is computed: the same virtual figures, no operands, no comparison)",
                   {"full", "none"}),
        param_flag("preskewed", &preskewed,
                   "meshgemm and cannon, C = A B: the operands are loaded already aligned, so the skew is not run "
                   "(the phase the published MeshGEMM cycles measure)"),
    };
  }
};

std::vector<float> random_matrix(int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> m(size_t(rows * cols));
  for (float& v : m) v = u(g);
  return m;
}

}  // namespace

int cmd_bench_gemm(const Context& ctx, const std::vector<std::string>& args) {
  MachineParams mp;
  GemmBenchOptions o;
  TraceOptions trace_opts;
  OptionSet opts;
  std::vector<ParamSpec> specs = o.specs();
  for (const ParamSpec& s : trace_opts.specs()) specs.push_back(s);
  const bool run = parse_command(ctx, args, opts, mp, specs,
                     "usage: wafermesh bench gemm [--config FILE] [options]\n\n"
                         "Runs C = A B (or A B^T) of random fp32 (or int8 x ternary) operands with each algorithm on each P x P region\n"
                         "and prints virtual cycles (total, compute, communication on the critical path), longest\n"
                         "hop, route entries and SRAM per PE, NoC bytes and the emulation's wall time. A point whose\n"
                         "tiles or routes do not fit the machine is reported as infeasible with the reason.");
  if (opts.help_requested()) return 0;
  trace_opts.check(ctx, mp);
  TraceFile trace(trace_opts, mp);
  std::ostream& out = *ctx.out;
  const bool ternary = o.dtype == "ternary";
  const bool timing_only = o.compute == "none";
  auto spec_for = [&](const std::string& algo, int64_t P) {
    dist::GemmSpec s;
    s.algo = dist::gemm_algo_from_name(algo);
    s.P = int32_t(P);
    s.origin = centred_origin(mp, P, o.origin_x, o.origin_y);
    s.M = o.M;
    s.K = o.K;
    s.N = o.N;
    s.transpose_b = o.transpose_b;
    s.double_buffer = o.double_buffer;
    s.compute = !timing_only;
    s.preskewed = o.preskewed;
    return s;
  };
  // Every point's geometry is checked before anything runs or prints.
  const MeshShape mesh{int32_t(mp.width_pes), int32_t(mp.height_pes)};
  for (const std::string& name : o.algos)
    for (int64_t P : o.Ps) dist::check_gemm_spec(mesh, spec_for(name, P));
  const int local_threads = o.local_threads > 0 ? int(o.local_threads) : int(std::thread::hardware_concurrency());

  if (timing_only) o.compare_local = false;
  const int64_t elem = ternary ? 1 : 4;  // the operands on the host; C (and B's transposed copy) as large again
  if (!timing_only) {
    check_host_bytes("bench gemm: A (" + std::to_string(o.M) + " x " + std::to_string(o.K) + ")", {o.M, o.K, elem, 2});
    check_host_bytes("bench gemm: B (" + std::to_string(o.K) + " x " + std::to_string(o.N) + ")", {o.K, o.N, elem, 2});
    check_host_bytes("bench gemm: C (" + std::to_string(o.M) + " x " + std::to_string(o.N) + ")", {o.M, o.N, 4, 2});
  }
  if (!run) return 0;  // `sweep` checking a study: geometry and sizes checked, run nothing
  std::vector<float> A, B;
  std::vector<int8_t> Aq, Bq;
  if (timing_only) {
    // no operands
  } else if (ternary) {
    std::mt19937_64 g(uint64_t(o.seed));
    Aq.resize(size_t(o.M * o.K));
    Bq.resize(size_t(o.K * o.N));
    for (auto& v : Aq) v = int8_t(int(g() % 255) - 127);
    for (auto& v : Bq) v = int8_t(int(g() % 3) - 1);
  } else {
    A = random_matrix(o.M, o.K, uint64_t(o.seed));
    B = o.transpose_b ? random_matrix(o.N, o.K, uint64_t(o.seed) + 1) : random_matrix(o.K, o.N, uint64_t(o.seed) + 1);
  }

  double local_s = -1;
  if (o.compare_local) {
    if (ternary) {
      // The whole product with the same kernel: W = B^T (N x K) packed once (not timed), then the
      // activation tables of the M rows and the LUT GEMM (timed).
      kernels::TernaryMatrixLut w;
      if (ctx.rank == 0) {
        std::vector<int8_t> wt(size_t(o.N * o.K));
        for (int64_t j = 0; j < o.N; ++j)
          for (int64_t k = 0; k < o.K; ++k)
            wt[size_t(j * o.K + k)] = o.transpose_b ? Bq[size_t(j * o.K + k)] : Bq[size_t(k * o.N + j)];
        w = kernels::TernaryMatrixLut::from_int8(wt.data(), o.N, o.K, o.K);
      }
      std::vector<int32_t> C(size_t(o.M * o.N));
      local_s = time_on_rank0(ctx, local_threads, [&] {
        const auto tables = kernels::LutTables::from_int8(Aq.data(), o.M, o.K, o.K);
        kernels::lut_gemm_i32(w, tables, C.data(), o.N);
      });
    } else {
      std::vector<float> C(size_t(o.M * o.N));
      local_s = time_on_rank0(ctx, local_threads, [&] {
        if (o.transpose_b)
          kernels::gemm_f32_abt(o.M, o.N, o.K, A.data(), o.K, B.data(), o.K, C.data(), o.N, false);
        else
          kernels::gemm_f32(o.M, o.N, o.K, A.data(), o.K, B.data(), o.N, C.data(), o.N, false);
      });
    }
  }

  io::Table t;
  t.add_column("algo", "", io::ColumnKind::text);
  t.add_column("P", "PEs", io::ColumnKind::integer);
  t.add_column("M", "rows", io::ColumnKind::integer);
  t.add_column("K", "elements", io::ColumnKind::integer);
  t.add_column("N", "columns", io::ColumnKind::integer);
  t.add_column("status", "", io::ColumnKind::text);
  t.add_column("total_cycles", "cycles", io::ColumnKind::integer);
  t.add_column("total_us", "us", io::ColumnKind::real);
  t.add_column("compute_cycles", "cycles", io::ColumnKind::integer);
  t.add_column("comm_cycles", "cycles", io::ColumnKind::integer);
  t.add_column("step_latency_cycles", "cycles", io::ColumnKind::integer);
  t.add_column("max_hops", "hops", io::ColumnKind::integer);
  t.add_column("max_route_entries", "entries/PE", io::ColumnKind::integer);
  t.add_column("peak_sram_bytes", "bytes/PE", io::ColumnKind::integer);
  t.add_column("noc_bytes", "bytes", io::ColumnKind::integer);
  t.add_column("wall_s", "s", io::ColumnKind::real);
  t.add_column("local_wall_s", "s", io::ColumnKind::real);
  t.add_column("wall_ratio", "emulated/local", io::ColumnKind::real);
  add_energy_columns(t);

  out << "bench gemm: " << (o.transpose_b ? "C = A B^T" : "C = A B") << ", " << o.dtype << ", " << o.M << " x " << o.K << " x "
      << o.N << " on a " << mp.width_pes << " x " << mp.height_pes << " mesh, " << ctx.size << " rank(s), "
      << mp.clock_ghz << " GHz" << (o.double_buffer ? ", double-buffered" : ", single-buffered")
      << (timing_only ? "; timing only (products charged, not computed)" : "") << "\n";
  if (o.compare_local)
    out << "local kernel, whole product in one process, " << local_threads << " thread(s): " << std::fixed
        << std::setprecision(3) << local_s << " s\n";
  out << "\n" << std::left << std::setw(10) << "algo" << std::right << std::setw(5) << "P" << std::setw(13)
      << "total cyc" << std::setw(11) << "total us" << std::setw(12) << "compute cyc" << std::setw(11) << "comm cyc"
      << std::setw(14) << "step lat cyc" << std::setw(9) << "max hops" << std::setw(9) << "routes" << std::setw(12)
      << "SRAM B/PE" << std::setw(14) << "NoC bytes" << std::setw(12) << "energy uJ" << std::setw(10) << "wall s"
      << std::setw(12) << "wall/local" << "\n";
  // With a single point (as `sweep` runs it), its machine is kept for the per-PE maps.
  const bool single = o.algos.size() * o.Ps.size() == 1;
  std::unique_ptr<Fabric> kept;
  Region kept_region;
  for (const std::string& name : o.algos) {
    for (int64_t P : o.Ps) {
      const dist::GemmSpec s = spec_for(name, P);
      std::string status = "ok";
      dist::GemmReport r;
      WorkCounts work;
      try {
        auto f = std::make_unique<Fabric>(ctx.comm, mp);  // a fresh machine per point: clocks start at zero
        std::unique_ptr<PeWindowTrace> pe_trace = trace.record_pes(*f);
        r = ternary ? dist::gemm_ternary(*f, s, timing_only ? nullptr : Aq.data(), timing_only ? nullptr : Bq.data(), nullptr)
                    : dist::gemm_f32(*f, s, timing_only ? nullptr : A.data(), timing_only ? nullptr : B.data(), nullptr);
        work = f->work();
        if (trace.on()) {
          const Region R{s.origin.x, s.origin.y, s.P, s.P};
          trace.add_point(name + " P=" + std::to_string(P), "region " + R.str(), "GEMM " + name, f->max_clock(R),
                          r.total_cycles,
                          {{"compute_cycles", int64_t(r.compute_cycles)},
                           {"comm_cycles", int64_t(r.comm_cycles)},
                           {"noc_bytes", int64_t(r.noc_bytes)}},
                          pe_trace.get());
        }
        if (single) {
          kept = std::move(f);
          kept_region = Region{s.origin.x, s.origin.y, s.P, s.P};
        }
      } catch (const LimitError& e) {
        status = std::string("infeasible: ") + e.what();
      }
      const double ratio = local_s > 0 && status == "ok" ? r.wall_s / local_s : 0.0;
      std::vector<io::Table::Cell> row = {name, P, o.M, o.K, o.N, status, int64_t(r.total_cycles),
                                          mp.cycles_to_us(r.total_cycles), int64_t(r.compute_cycles),
                                          int64_t(r.comm_cycles), int64_t(r.max_step_latency_cycles),
                                          int64_t(r.max_hops), int64_t(r.max_route_entries),
                                          int64_t(r.peak_sram_bytes), int64_t(r.noc_bytes), r.wall_s, local_s, ratio};
      // The region's work, and its PEs' static power over the point's cycles.
      const EnergySplit e = append_energy_cells(row, mp, work, uint64_t(P * P), r.total_cycles);
      t.append_row(std::move(row));
      out << std::left << std::setw(10) << name << std::right << std::setw(5) << P;
      if (status != "ok") {
        out << "  " << status << "\n" << std::flush;
        continue;
      }
      out << std::setw(13) << r.total_cycles << std::setw(11) << std::fixed << std::setprecision(2)
          << mp.cycles_to_us(r.total_cycles) << std::setw(12) << r.compute_cycles << std::setw(11) << r.comm_cycles
          << std::setw(14) << r.max_step_latency_cycles << std::setw(9) << r.max_hops << std::setw(9)
          << r.max_route_entries << std::setw(12) << r.peak_sram_bytes << std::setw(14) << r.noc_bytes
          << std::setw(12) << std::setprecision(3) << e.total_j() * 1e6 << std::setw(10) << r.wall_s << std::setw(12);
      if (ratio > 0) out << std::setprecision(2) << ratio; else out << "-";
      out << "\n" << std::flush;
    }
  }
  if (kept)  // one feasible point: the table plus per-PE maps of its P x P region
    write_results_with_maps(ctx, opts, mp, o.output, "gemm", t, o.seed, *kept, kept_region);
  else
    write_bench_results(ctx, opts, mp, o.output, "gemm", t, o.seed);
  trace.write(ctx);
  return 0;
}

}  // namespace wm::cli
