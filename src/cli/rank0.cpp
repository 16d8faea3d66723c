#include "wafermesh/cli/rank0.hpp"

#include <exception>
#include <thread>

#include "wafermesh/mesh/mpi_traits.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::cli {

void bcast_string(MPI_Comm comm, std::string& s, int root) {
  int n = int(s.size());
  MPI_Bcast(&n, 1, mpi_type<int>(), root, comm);
  s.resize(size_t(n));
  if (n) MPI_Bcast(s.data(), n, mpi_type<char>(), root, comm);
}

void on_rank0(const Context& ctx, const std::function<void()>& f, std::chrono::milliseconds idle_poll) {
  on_rank(ctx, 0, f, idle_poll);
}

void on_rank(const Context& ctx, int root, const std::function<void()>& f, std::chrono::milliseconds idle_poll) {
  std::string err;
  if (ctx.rank == root) try {
      f();
    } catch (const std::exception& e) {
      err = e.what();
      if (err.empty()) err = "unknown error";
    }
  if (idle_poll.count() > 0) polite_barrier(ctx.comm, idle_poll);
  bcast_string(ctx.comm, err, root);
  if (!err.empty()) throw UsageError(err);
}

void polite_barrier(MPI_Comm comm, std::chrono::milliseconds poll) {
  MPI_Request req;
  MPI_Ibarrier(comm, &req);
  int done = 0;
  while (!done) {
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (!done) std::this_thread::sleep_for(poll);
  }
}

}  // namespace wm::cli
