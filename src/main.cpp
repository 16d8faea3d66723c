// The wafermesh binary: initialise MPI (one thread calls it), run the CLI, finalise.
#include <mpi.h>

#include "wafermesh/cli/commands.hpp"

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  const int rc = wm::cli::run(argc, argv, MPI_COMM_WORLD);
  MPI_Finalize();
  return rc;
}
