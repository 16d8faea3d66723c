#pragma once
// Subcommands of the `wafermesh` binary. Each takes the arguments after its name, prints on
// rank 0 only, and returns the process exit code (0 ok, 2 usage error, 3 machine limit or bad
// data). Errors are thrown as wm::UsageError / wm::LimitError and turned into one line by run().
#include <mpi.h>

#include <iosfwd>
#include <string>
#include <vector>

namespace wm::cli {

struct Context {
  MPI_Comm comm;
  int rank = 0;
  int size = 1;
  std::ostream* out;  // stdout on rank 0, a discarding stream elsewhere
  std::string command_line;  // the whole invocation, for provenance
};

int cmd_info(const Context& ctx, const std::vector<std::string>& args);
int cmd_demo(const Context& ctx, const std::vector<std::string>& args);
int cmd_bench(const Context& ctx, const std::vector<std::string>& args);
int cmd_bench_gemm(const Context& ctx, const std::vector<std::string>& args);
int cmd_bench_gemv(const Context& ctx, const std::vector<std::string>& args);
int cmd_bench_kv(const Context& ctx, const std::vector<std::string>& args);

// The whole program after MPI_Init: dispatch, one-line errors, exit codes.
int run(int argc, char** argv, MPI_Comm comm);

}  // namespace wm::cli
