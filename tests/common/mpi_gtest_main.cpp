// GoogleTest main for MPI tests: initialises MPI (funneled), runs every test on every rank,
// prints the full report on rank 0 and each failure of any other rank prefixed with its rank,
// and fails the process when any rank failed.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>

#include "wafermesh/mesh/mpi_traits.hpp"

namespace {

class RankFailurePrinter : public testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const testing::TestPartResult& r) override {
    if (!r.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure in %s\n%s\n", rank_, r.file_name() ? r.file_name() : "?",
                 r.line_number(), current_.c_str(), r.summary());
  }
  void OnTestStart(const testing::TestInfo& t) override {
    current_ = std::string(t.test_suite_name()) + "." + t.name();
  }

 private:
  int rank_;
  std::string current_;
};

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  testing::InitGoogleTest(&argc, argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (rank != 0) {
    auto& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(rank));
  } else {
    std::printf("[mpi] %d rank(s)\n", size);
  }
  const int local = RUN_ALL_TESTS();
  int any = 0;
  MPI_Allreduce(&local, &any, 1, wm::mpi_type<int>(), MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0 && any && !local) std::printf("[mpi] another rank reported failures (see [rank N] lines)\n");
  MPI_Finalize();
  return any ? 1 : 0;
}
