#include "wafermesh/mesh/cart_comm.hpp"

#include <stdexcept>

namespace wm {

CartComm::CartComm(MPI_Comm parent, MeshShape mesh, int forced_px, int forced_py) {
  int n = 0;
  MPI_Comm_size(parent, &n);
  // Same inputs on every rank, so either all ranks throw here or none does.
  const RankGrid g = choose_rank_grid(mesh, n, forced_px, forced_py);
  dup_ = dup_comm(parent);
  int dims[2] = {g.py, g.px};
  int periods[2] = {0, 0};
  MPI_Comm cart = MPI_COMM_NULL;
  MPI_Cart_create(dup_.get(), 2, dims, periods, /*reorder=*/0, &cart);
  cart_ = MpiComm(cart);
  MPI_Comm_rank(cart, &rank_);
  MPI_Comm_size(cart, &size_);
  int coords[2] = {0, 0};
  MPI_Cart_coords(cart, rank_, 2, coords);
  if (coords[0] * g.px + coords[1] != rank_) throw std::logic_error("unexpected Cartesian rank order");
  decomp_ = Decomposition(mesh, g.px, g.py);
}

}  // namespace wm
