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
// tiles it owns; every rank knows who owns which PE, so all unpack alike. A reader keeps its
// buffers from one read to the next: a decode reads the logits every token, and fresh buffers of
// that size cost page faults (1.1 ms a token for 2 x 513 KB here, more than the exchange itself).
template <class T>
class RowsReader {
 public:
  // The rows; valid until the next read. Collective.
  const std::vector<T>& read(Fabric& f, const std::vector<const TileBuf<T>*>& bufs, int32_t row) {
    int ranks = 1;
    MPI_Comm_size(f.comm(), &ranks);
    const Decomposition& dec = f.decomposition();
    counts_.assign(size_t(ranks), 0);
    displs_.assign(size_t(ranks), 0);
    size_t total = 0, local = 0;
    for (const TileBuf<T>* b : bufs) {
      const Region& R = b->region();
      const int32_t y = R.y0 + row;
      for (int32_t x = R.x0; x < R.x0 + R.w; ++x) {
        counts_[size_t(dec.owner(x, y))] += int(b->elems() * sizeof(T));
        if (b->is_local(x, y)) local += b->elems();
      }
      total += size_t(R.w) * b->elems();
    }
    mine_.resize(local);
    size_t at = 0;
    for (const TileBuf<T>* b : bufs) {
      const Region& R = b->region();
      const int32_t y = R.y0 + row;
      for (int32_t x = R.x0; x < R.x0 + R.w; ++x)
        if (b->is_local(x, y)) {
          const T* t = b->tile(x, y);
          std::copy(t, t + b->elems(), mine_.begin() + std::ptrdiff_t(at));
          at += b->elems();
        }
    }
    for (int r = 1; r < ranks; ++r) displs_[size_t(r)] = displs_[size_t(r - 1)] + counts_[size_t(r - 1)];
    packed_.resize(total);
    out_.resize(total);
    MPI_Allgatherv(mine_.data(), int(mine_.size() * sizeof(T)), mpi_type<std::byte>(), packed_.data(), counts_.data(),
                   displs_.data(), mpi_type<std::byte>(), f.comm());
    next_.resize(size_t(ranks));  // per rank: its next element in packed_
    for (int r = 0; r < ranks; ++r) next_[size_t(r)] = size_t(displs_[size_t(r)]) / sizeof(T);
    at = 0;
    for (const TileBuf<T>* b : bufs) {
      const Region& R = b->region();
      for (int32_t x = R.x0; x < R.x0 + R.w; ++x) {
        size_t& from = next_[size_t(dec.owner(x, R.y0 + row))];
        std::copy(packed_.begin() + std::ptrdiff_t(from), packed_.begin() + std::ptrdiff_t(from + b->elems()),
                  out_.begin() + std::ptrdiff_t(at));
        from += b->elems();
        at += b->elems();
      }
    }
    return out_;
  }

 private:
  std::vector<int> counts_, displs_;
  std::vector<size_t> next_;
  std::vector<T> mine_, packed_, out_;
};

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
