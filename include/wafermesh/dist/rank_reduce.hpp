#pragma once
// Reductions of host-side figures over the ranks of a fabric: what one rank measured of its own
// PEs (latest clocks, peak SRAM) becomes the figure of the whole mesh. One collective for a whole
// vector, so a caller that takes many such figures during a phase pays one rendezvous of the ranks.
#include <mpi.h>

#include <cstdint>
#include <vector>

#include "wafermesh/mesh/mpi_traits.hpp"
#include "wafermesh/noc/fabric.hpp"

namespace wm::dist {

// v[i] = the largest v[i] of any rank, on every rank (v has the same size on every rank).
// Collective.
inline void max_over_ranks(const Fabric& f, std::vector<uint64_t>& v) {
  MPI_Allreduce(MPI_IN_PLACE, v.data(), int(v.size()), mpi_type<uint64_t>(), MPI_MAX, f.comm());
}

// v[i] = the sum of v[i] over the ranks, on every rank (exact: integers). Collective.
inline void sum_over_ranks(const Fabric& f, std::vector<uint64_t>& v) {
  MPI_Allreduce(MPI_IN_PLACE, v.data(), int(v.size()), mpi_type<uint64_t>(), MPI_SUM, f.comm());
}

}  // namespace wm::dist
