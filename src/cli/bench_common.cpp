#include "wafermesh/cli/bench_common.hpp"

#include <mpi.h>
#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <vector>

#include "wafermesh/cli/energy_report.hpp"
#include "wafermesh/cli/rank0.hpp"
#include "wafermesh/cli/result_sink.hpp"
#include "wafermesh/mesh/geometry.hpp"
#include "wafermesh/mesh/mpi_traits.hpp"
#include "wafermesh/util/checked_math.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::cli {

namespace {

// mpirun binds each rank to one core when there are no more ranks than cores, so `threads` OpenMP
// threads of rank 0 would share that core. While the timed body runs, every thread of the team may
// use every online CPU (the kernel keeps them inside any cpuset the job has), then gets its own
// binding back. The pool's threads are the ones a team of the same size reuses.
class TeamUnbound {
 public:
  explicit TeamUnbound(int threads) : threads_(threads), saved_(static_cast<size_t>(threads)) {
    cpu_set_t all;
    CPU_ZERO(&all);
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    for (long c = 0; c < n && c < CPU_SETSIZE; ++c) CPU_SET(static_cast<int>(c), &all);
#pragma omp parallel num_threads(threads_)
    {
      cpu_set_t& mine = saved_[static_cast<size_t>(omp_get_thread_num())];
      if (sched_getaffinity(0, sizeof(mine), &mine) == 0) (void)sched_setaffinity(0, sizeof(all), &all);
      else CPU_ZERO(&mine);
    }
  }
  ~TeamUnbound() {
#pragma omp parallel num_threads(threads_)
    {
      const cpu_set_t& mine = saved_[static_cast<size_t>(omp_get_thread_num())];
      if (CPU_COUNT(&mine) > 0) (void)sched_setaffinity(0, sizeof(mine), &mine);
    }
  }
  TeamUnbound(const TeamUnbound&) = delete;
  TeamUnbound& operator=(const TeamUnbound&) = delete;

 private:
  int threads_;
  std::vector<cpu_set_t> saved_;
};

}  // namespace

std::string fixed_point(double v, int prec) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(prec) << v;
  return s.str();
}

double time_on_rank0(const Context& ctx, int threads, const std::function<void()>& f) {
  double t = 0;
  if (ctx.rank == 0) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    {
      const TeamUnbound unbound(threads);
      const double t0 = MPI_Wtime();
      f();
      t = MPI_Wtime() - t0;
    }
    omp_set_num_threads(before);
  }
  polite_barrier(ctx.comm, std::chrono::milliseconds(20));  // rare wake-ups: the timed team has the cores
  MPI_Bcast(&t, 1, mpi_type<double>(), 0, ctx.comm);
  return t;
}

void check_host_bytes(const std::string& what, std::initializer_list<int64_t> factors) {
  const std::optional<int64_t> bytes = checked_product(factors);
  const int64_t phys = int64_t(sysconf(_SC_PHYS_PAGES)) * int64_t(sysconf(_SC_PAGE_SIZE));
  if (bytes && (phys <= 0 || *bytes <= phys)) return;
  throw UsageError(what + " needs " + (bytes ? std::to_string(*bytes) + " bytes" : std::string("more than 2^63 bytes")) +
                   " of host memory, more than this machine's " + std::to_string(phys) +
                   " bytes: choose smaller dimensions");
}

PeCoord centred_origin(const MachineParams& mp, int64_t P, int64_t x, int64_t y) {
  return {int32_t(x >= 0 ? x : std::max<int64_t>(0, (mp.width_pes - P) / 2)),
          int32_t(y >= 0 ? y : std::max<int64_t>(0, (mp.height_pes - P) / 2))};
}

void add_energy_columns(io::Table& t) {
  add_ops_columns(t);
  t.add_column("sram_read_bytes", "bytes", io::ColumnKind::integer);
  t.add_column("sram_write_bytes", "bytes", io::ColumnKind::integer);
  t.add_column("noc_byte_hops", "bytes*hops", io::ColumnKind::integer);
  t.add_column("energy_j", "J", io::ColumnKind::real);
  t.add_column("energy_compute_j", "J", io::ColumnKind::real);
  t.add_column("energy_sram_j", "J", io::ColumnKind::real);
  t.add_column("energy_noc_j", "J", io::ColumnKind::real);
  t.add_column("energy_static_j", "J", io::ColumnKind::real);
}

EnergySplit append_energy_cells(std::vector<io::Table::Cell>& row, const MachineParams& mp, const WorkCounts& w,
                                uint64_t pes, uint64_t cycles) {
  const EnergyModel em = EnergyModel::from(mp);
  const EnergySplit e = em.of(w, pes, cycles);
  append_ops(row, w.ops);
  for (const io::Table::Cell& c :
       {io::Table::Cell(int64_t(em.sram_read_bytes(w))),
        io::Table::Cell(int64_t(em.sram_write_bytes(w))), io::Table::Cell(int64_t(w.byte_hops)),
        io::Table::Cell(e.total_j()), io::Table::Cell(e.compute_j), io::Table::Cell(e.sram_j), io::Table::Cell(e.noc_j),
        io::Table::Cell(e.static_j)})
    row.push_back(c);
  return e;
}

namespace {
io::Provenance provenance(const Context& ctx, const OptionSet& opts, const MachineParams& mp, int64_t seed) {
  io::Provenance prov;
  prov.command_line = ctx.command_line;
  for (const ParamSpec& sp : opts.specs())
    prov.params.push_back({sp.name, param_value_text(sp), sp.unit, opts.source(sp.name)});
  prov.ranks = ctx.size;
  const RankGrid g =
      choose_rank_grid({int32_t(mp.width_pes), int32_t(mp.height_pes)}, ctx.size, int(mp.ranks_x), int(mp.ranks_y));
  prov.ranks_x = g.px;
  prov.ranks_y = g.py;
  prov.seed = seed;
  return prov;
}
}  // namespace

void write_bench_results(const Context& ctx, const OptionSet& opts, const MachineParams& mp, const std::string& path,
                         const std::string& group, const io::Table& table, int64_t seed,
                         const std::vector<std::pair<std::string, io::Table>>& extra) {
  if (ctx.sink) {  // run by `sweep`: the sweep writes its own file
    if (ctx.rank == 0) {
      ctx.sink->tables.push_back({group, table, provenance(ctx, opts, mp, seed)});
      for (const auto& [name, t] : extra) ctx.sink->tables.push_back({group + "/" + name, t, provenance(ctx, opts, mp, seed)});
    }
    return;
  }
  if (ctx.rank != 0 || path.empty()) return;
  io::ResultsWriter w(path, provenance(ctx, opts, mp, seed));
  w.write_table(group, table);
  for (const auto& [name, t] : extra) w.write_table(group + "/" + name, t);
  w.commit();
  *ctx.out << "\nwrote " << path << "\n";
}

void write_results_with_maps(const Context& ctx, const OptionSet& opts, const MachineParams& mp,
                             const std::string& path, const std::string& group, const io::Table& table, int64_t seed,
                             const Fabric& f, const Region& region,
                             const std::vector<std::pair<std::string, io::Table>>& extra) {
  if (path.empty() && !ctx.sink) return;
  const Region l = region.intersect(f.block());
  std::vector<io::PeMap> maps = {{"clock_cycles", "cycles", {}},       {"compute_cycles", "cycles", {}},
                                 {"stall_cycles", "cycles", {}},       {"inject_cycles", "cycles", {}},
                                 {"sram_peak_bytes", "bytes", {}},     {"route_peak_entries", "entries", {}},
                                 {"bytes_sent", "bytes", {}},          {"energy_pj", "pJ", {}},
                                 {"energy_compute_pj", "pJ", {}},      {"energy_sram_pj", "pJ", {}},
                                 {"energy_noc_pj", "pJ", {}},          {"fp_macs", "MACs", {}},
                                 {"elem_ops", "ops", {}},              {"ternary_ops", "ops", {}},
                                 {"int_ops", "ops", {}}};
  // Energy per PE (noc/energy.hpp), rounded to whole picojoules: its own work, and static power
  // over the time the region ran (its latest clock).
  const EnergyModel em = EnergyModel::from(mp);
  const uint64_t run_cycles = f.summarize(region).max_clock_cycles;
  auto pj = [](double j) { return uint64_t(std::llround(j * 1e12)); };
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y)
    for (int32_t x = l.x0; x < l.x0 + l.w; ++x) {
      const PeCounters& c = f.pe(x, y);
      const EnergySplit e = em.of(EnergyModel::work_of(c), 1, run_cycles);
      const uint64_t v[] = {c.clock_cycles,  c.compute_cycles,      c.stall_cycles,  c.inject_cycles,
                            c.sram_peak_bytes, c.route_peak_entries, c.bytes_sent,    pj(e.total_j()),
                            pj(e.compute_j), pj(e.sram_j),         pj(e.noc_j),     c.ops.fp_macs,
                            c.ops.elem_ops,  c.ops.ternary_ops,    c.ops.int_ops};
      for (size_t k = 0; k < maps.size(); ++k) maps[k].values.push_back(v[k]);
    }
  const int32_t lx = l.empty() ? 0 : l.x0 - region.x0, ly = l.empty() ? 0 : l.y0 - region.y0;
  const int32_t lw = l.empty() ? 0 : l.w, lh = l.empty() ? 0 : l.h;
  if (ctx.sink) {  // run by `sweep`: the sweep writes its own file
    if (ctx.rank == 0) {
      ctx.sink->tables.push_back({group, table, provenance(ctx, opts, mp, seed)});
      for (const auto& [name, t] : extra) ctx.sink->tables.push_back({group + "/" + name, t, provenance(ctx, opts, mp, seed)});
    }
    ctx.sink->maps.push_back({group + "/pe_maps", region.w, region.h, lx, ly, lw, lh, std::move(maps)});
    return;
  }
  // Rank 0 writes the table; a failure there reaches every rank (no hang), as one line.
  std::unique_ptr<io::ResultsWriter> w;
  std::string tmp;
  on_rank0(ctx, [&] {
    w = std::make_unique<io::ResultsWriter>(path, provenance(ctx, opts, mp, seed));
    w->write_table(group, table);
    for (const auto& [name, t] : extra) w->write_table(group + "/" + name, t);
    w->close_for_parallel();
    tmp = w->temporary_path();
  });
  bcast_string(ctx.comm, tmp);
  io::append_pe_maps(ctx.comm, tmp, group + "/pe_maps", region.w, region.h, lx, ly, lw, lh, maps);
  MPI_Barrier(ctx.comm);
  if (w) {
    w->commit();
    *ctx.out << "\nwrote " << path << " (tables and per-PE maps)\n";
  }
}

}  // namespace wm::cli
