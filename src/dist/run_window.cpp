#include "wafermesh/dist/run_window.hpp"

#include <mpi.h>

#include <algorithm>
#include <limits>

#include "wafermesh/mesh/mpi_traits.hpp"

namespace wm::dist {

RunWindow::RunWindow(Fabric& f, const Region& r) : f_(f), r_(r) {
  f.barrier_clocks(r);
  f.reset_peaks();
  const Region l = r.intersect(f.block());
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y)
    for (int32_t x = l.x0; x < l.x0 + l.w; ++x) {
      compute0_.push_back(f.compute_cycles(x, y));
      t0_ = f.clock_cycles(x, y);
    }
  MPI_Allreduce(MPI_IN_PLACE, &t0_, 1, mpi_type<uint64_t>(), MPI_MAX, f.comm());
  bytes0_ = f.summarize(r).total_bytes_sent;
  MPI_Barrier(f.comm());
  w0_ = MPI_Wtime();
}

RunFigures RunWindow::finish() {
  RunFigures out;
  out.wall_s = MPI_Wtime() - w0_;
  MPI_Allreduce(MPI_IN_PLACE, &out.wall_s, 1, mpi_type<double>(), MPI_MAX, f_.comm());
  out.summary = f_.summarize(r_);
  out.total_cycles = out.summary.max_clock_cycles - t0_;
  out.noc_bytes = out.summary.total_bytes_sent - bytes0_;
  uint64_t max_compute = 0, crit = std::numeric_limits<uint64_t>::max();
  const Region l = r_.intersect(f_.block());
  size_t i = 0;
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y)
    for (int32_t x = l.x0; x < l.x0 + l.w; ++x, ++i) {
      const uint64_t comp = f_.compute_cycles(x, y) - compute0_[i];
      max_compute = std::max(max_compute, comp);
      if (f_.clock_cycles(x, y) == out.summary.max_clock_cycles) crit = std::min(crit, out.total_cycles - comp);
    }
  MPI_Allreduce(MPI_IN_PLACE, &max_compute, 1, mpi_type<uint64_t>(), MPI_MAX, f_.comm());
  MPI_Allreduce(MPI_IN_PLACE, &crit, 1, mpi_type<uint64_t>(), MPI_MIN, f_.comm());
  out.compute_cycles = max_compute;
  out.comm_cycles = crit;
  return out;
}

}  // namespace wm::dist
