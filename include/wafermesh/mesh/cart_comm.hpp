#pragma once
// One object owns every MPI communicator of a fabric: a duplicate of the user's communicator and
// the 2D Cartesian communicator built from it (dims {py, px}, no periods, no reordering, so the
// Cartesian rank equals rank = cy*px + cx of Decomposition). Both free themselves (MpiComm).
#include <mpi.h>

#include "wafermesh/mesh/geometry.hpp"
#include "wafermesh/mesh/mpi_handles.hpp"

namespace wm {

class CartComm {
 public:
  // Collective over `parent`. Throws UsageError (on every rank) when the ranks cannot be laid
  // out on the mesh.
  CartComm(MPI_Comm parent, MeshShape mesh, int forced_px = 0, int forced_py = 0);

  MPI_Comm comm() const { return cart_.get(); }
  int rank() const { return rank_; }
  int size() const { return size_; }
  const Decomposition& decomposition() const { return decomp_; }

 private:
  MpiComm dup_, cart_;  // cart_ is built on dup_: declared after it, so freed before it
  int rank_ = 0, size_ = 1;
  Decomposition decomp_;
};

}  // namespace wm
