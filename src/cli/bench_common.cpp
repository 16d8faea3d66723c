#include "wafermesh/cli/bench_common.hpp"

#include <mpi.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <ostream>
#include <thread>

#include "wafermesh/mesh/geometry.hpp"

namespace wm::cli {

double time_on_rank0(const Context& ctx, int threads, const std::function<void()>& f) {
  double t = 0;
  if (ctx.rank == 0) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    const double t0 = MPI_Wtime();
    f();
    t = MPI_Wtime() - t0;
    omp_set_num_threads(before);
  }
  MPI_Request req;
  MPI_Ibarrier(ctx.comm, &req);
  int done = 0;
  while (!done) {
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  MPI_Bcast(&t, 1, MPI_DOUBLE, 0, ctx.comm);
  return t;
}

PeCoord centred_origin(const MachineParams& mp, int64_t P, int64_t x, int64_t y) {
  return {int32_t(x >= 0 ? x : std::max<int64_t>(0, (mp.width_pes - P) / 2)),
          int32_t(y >= 0 ? y : std::max<int64_t>(0, (mp.height_pes - P) / 2))};
}

void write_bench_results(const Context& ctx, const OptionSet& opts, const MachineParams& mp, const std::string& path,
                         const std::string& group, const io::Table& table, int64_t seed) {
  if (ctx.rank != 0 || path.empty()) return;
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
  io::ResultsWriter w(path, prov);
  w.write_table(group, table);
  w.commit();
  *ctx.out << "\nwrote " << path << "\n";
}

}  // namespace wm::cli
