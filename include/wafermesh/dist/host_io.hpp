#pragma once
// Reading results off the wafer to the host, on every rank (the sampler runs on every rank so that
// every rank knows the next token without another message).
#include <mpi.h>

#include <cstring>
#include <vector>

#include "wafermesh/noc/tile_buf.hpp"

namespace wm::dist {

// The tiles of row `row` of the buffer's region, left to right (elems each), on every rank.
// Collective.
template <class T>
std::vector<T> read_row_everywhere(Fabric& f, const TileBuf<T>& b, int32_t row) {
  const Region& R = b.region();
  std::vector<std::byte> raw = f.gather_tiles(b.view(), Region{R.x0, R.y0 + row, R.w, 1});
  unsigned long long n = raw.size();
  MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, 0, f.comm());
  raw.resize(size_t(n));
  MPI_Bcast(raw.data(), int(n), MPI_BYTE, 0, f.comm());
  std::vector<T> out(raw.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), raw.data(), raw.size());
  return out;
}

// v (same size on every rank) from rank 0 to every rank. Collective.
template <class T>
void broadcast_from_rank0(const Fabric& f, std::vector<T>& v) {
  MPI_Bcast(v.data(), int(v.size() * sizeof(T)), MPI_BYTE, 0, f.comm());
}

// The largest of v over the ranks (wall times: the slowest rank). Collective.
inline double max_over_ranks(const Fabric& f, double v) {
  MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_MAX, f.comm());
  return v;
}

// Every rank waits for the others (before starting a wall-clock measurement). Collective.
inline void sync_ranks(const Fabric& f) { MPI_Barrier(f.comm()); }

}  // namespace wm::dist
