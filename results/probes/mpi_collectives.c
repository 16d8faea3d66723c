/* Open MPI's own cost for the message sizes a decoded token exchanges, between the job's ranks:
 * for each size, MPI_Bcast, an Isend/Irecv exchange with the other rank, MPI_Allreduce (int32
 * sum) and MPI_Allgatherv of that many bytes, each repeated and timed in one run, microseconds
 * per call on rank 0 (results/PERFORMANCE.md):
 *   mpicc -O2 -o /tmp/mpi_collectives results/probes/mpi_collectives.c
 *   mpirun --allow-run-as-root -np 2 /tmp/mpi_collectives
 * Needs exactly 2 ranks. Not part of the build: a probe of the MPI library, not of wafermesh. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static double per_call_us(double t0, int n) { return (MPI_Wtime() - t0) / n * 1e6; }

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size != 2) {
    if (rank == 0) fprintf(stderr, "mpi_collectives: needs 2 ranks, has %d\n", size);
    MPI_Finalize();
    return 2;
  }
  const int sizes[] = {64, 640, 2560, 10240, 28160, 65536, 262144};
  if (rank == 0) printf("%8s %10s %10s %10s %12s  (us per call)\n", "bytes", "bcast", "exchange", "allreduce", "allgatherv");
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; ++s) {
    const int n = sizes[s], reps = n > 100000 ? 500 : 5000;
    char* a = calloc((size_t)n, 1);
    char* b = calloc((size_t)n, 1);
    char* g = calloc(2 * (size_t)n, 1);
    if (!a || !b || !g) MPI_Abort(MPI_COMM_WORLD, 1);
    double t0;
    MPI_Barrier(MPI_COMM_WORLD);
    t0 = MPI_Wtime();
    for (int i = 0; i < reps; ++i) MPI_Bcast(a, n, MPI_BYTE, 0, MPI_COMM_WORLD);
    const double bcast = per_call_us(t0, reps);
    MPI_Barrier(MPI_COMM_WORLD);
    t0 = MPI_Wtime();
    for (int i = 0; i < reps; ++i) {
      MPI_Request q[2];
      MPI_Irecv(b, n, MPI_BYTE, 1 - rank, 0, MPI_COMM_WORLD, &q[0]);
      MPI_Isend(a, n, MPI_BYTE, 1 - rank, 0, MPI_COMM_WORLD, &q[1]);
      MPI_Waitall(2, q, MPI_STATUSES_IGNORE);
    }
    const double exchange = per_call_us(t0, reps);
    MPI_Barrier(MPI_COMM_WORLD);
    t0 = MPI_Wtime();
    for (int i = 0; i < reps; ++i) MPI_Allreduce(MPI_IN_PLACE, a, n / 4, MPI_INT32_T, MPI_SUM, MPI_COMM_WORLD);
    const double allreduce = per_call_us(t0, reps);
    const int counts[2] = {n, n}, displs[2] = {0, n};
    MPI_Barrier(MPI_COMM_WORLD);
    t0 = MPI_Wtime();
    for (int i = 0; i < reps; ++i) MPI_Allgatherv(a, n, MPI_BYTE, g, counts, displs, MPI_BYTE, MPI_COMM_WORLD);
    const double allgatherv = per_call_us(t0, reps);
    if (rank == 0) printf("%8d %10.2f %10.2f %10.2f %12.2f\n", n, bcast, exchange, allreduce, allgatherv);
    free(a);
    free(b);
    free(g);
  }
  MPI_Finalize();
  return 0;
}
