#pragma once
// Reading results off the wafer to the host, on every rank (the sampler runs on every rank so that
// every rank knows the next token without another message).
#include <mpi.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include "wafermesh/mesh/mpi_traits.hpp"
#include "wafermesh/noc/tile_buf.hpp"

namespace wm::dist {

// The tiles of row `row` of the buffer's region, left to right (elems each), on every rank.
// Collective.
template <class T>
std::vector<T> read_row_everywhere(Fabric& f, const TileBuf<T>& b, int32_t row) {
  const Region& R = b.region();
  std::vector<std::byte> raw = f.gather_tiles(b.view(), Region{R.x0, R.y0 + row, R.w, 1});
  uint64_t n = raw.size();
  MPI_Bcast(&n, 1, mpi_type<uint64_t>(), 0, f.comm());
  raw.resize(size_t(n));
  MPI_Bcast(raw.data(), int(n), mpi_type<std::byte>(), 0, f.comm());
  std::vector<T> out(raw.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), raw.data(), raw.size());
  return out;
}

// read_row_everywhere for several buffers at once, in one collective: their rows one after another
// (buffer by buffer, each left to right, elems per tile), on every rank. Each rank contributes the
// tiles it owns; every rank knows who owns which PE, so all unpack alike. Collective.
template <class T>
std::vector<T> read_rows_everywhere(Fabric& f, const std::vector<const TileBuf<T>*>& bufs, int32_t row) {
  int ranks = 1;
  MPI_Comm_size(f.comm(), &ranks);
  const Decomposition& dec = f.decomposition();
  std::vector<int> counts(size_t(ranks), 0), displs(size_t(ranks), 0);
  std::vector<T> mine;
  size_t total = 0;
  for (const TileBuf<T>* b : bufs) {
    const Region& R = b->region();
    const int32_t y = R.y0 + row;
    for (int32_t x = R.x0; x < R.x0 + R.w; ++x) {
      counts[size_t(dec.owner(x, y))] += int(b->elems() * sizeof(T));
      if (b->is_local(x, y)) mine.insert(mine.end(), b->tile(x, y), b->tile(x, y) + b->elems());
    }
    total += size_t(R.w) * b->elems();
  }
  for (int r = 1; r < ranks; ++r) displs[size_t(r)] = displs[size_t(r - 1)] + counts[size_t(r - 1)];
  std::vector<T> packed(total), out(total);
  MPI_Allgatherv(mine.data(), int(mine.size() * sizeof(T)), mpi_type<std::byte>(), packed.data(), counts.data(),
                 displs.data(), mpi_type<std::byte>(), f.comm());
  std::vector<size_t> next(static_cast<size_t>(ranks));  // per rank: its next element in `packed`
  for (int r = 0; r < ranks; ++r) next[size_t(r)] = size_t(displs[size_t(r)]) / sizeof(T);
  size_t at = 0;
  for (const TileBuf<T>* b : bufs) {
    const Region& R = b->region();
    for (int32_t x = R.x0; x < R.x0 + R.w; ++x) {
      size_t& from = next[size_t(dec.owner(x, R.y0 + row))];
      std::copy(packed.begin() + std::ptrdiff_t(from), packed.begin() + std::ptrdiff_t(from + b->elems()),
                out.begin() + std::ptrdiff_t(at));
      from += b->elems();
      at += b->elems();
    }
  }
  return out;
}

// v (same size on every rank) from rank 0 to every rank. Collective.
template <class T>
void broadcast_from_rank0(const Fabric& f, std::vector<T>& v) {
  MPI_Bcast(v.data(), int(v.size() * sizeof(T)), mpi_type<std::byte>(), 0, f.comm());
}

// The largest of v over the ranks (wall times: the slowest rank). Collective.
inline double max_over_ranks(const Fabric& f, double v) {
  MPI_Allreduce(MPI_IN_PLACE, &v, 1, mpi_type<double>(), MPI_MAX, f.comm());
  return v;
}

// Every rank waits for the others (before starting a wall-clock measurement). Collective.
inline void sync_ranks(const Fabric& f) { MPI_Barrier(f.comm()); }

}  // namespace wm::dist
