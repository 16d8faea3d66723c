#pragma once
// Subcommands of the `wafermesh` binary. Each takes the arguments after its name, prints on
// rank 0 only, and returns the process exit code (0 ok, 2 bad input, 3 limit of the emulated
// machine). Errors are thrown as wm::UsageError / wm::LimitError and turned into one line by run().
#include <mpi.h>

#include <iosfwd>
#include <string>
#include <vector>

namespace wm::cli {

struct ResultSink;  // cli/result_sink.hpp: where a command run by `sweep` hands its results

struct Context {
  MPI_Comm comm;
  int rank = 0;
  int size = 1;
  std::ostream* out;  // stdout on rank 0, a discarding stream elsewhere
  std::string command_line;  // the whole invocation, for provenance
  // Set by `sweep` for the commands it runs: results go to the sink instead of a file of their
  // own (cli/bench_common does this), and with parse_only a command stops after checking its
  // options (parse_command returns false) so that a study is validated before anything runs.
  ResultSink* sink = nullptr;
  bool parse_only = false;
};

int cmd_info(const Context& ctx, const std::vector<std::string>& args);
int cmd_demo(const Context& ctx, const std::vector<std::string>& args);
int cmd_bench(const Context& ctx, const std::vector<std::string>& args);
int cmd_bench_kernel(const Context& ctx, const std::vector<std::string>& args);
int cmd_bench_gemm(const Context& ctx, const std::vector<std::string>& args);
int cmd_bench_gemv(const Context& ctx, const std::vector<std::string>& args);
int cmd_bench_kv(const Context& ctx, const std::vector<std::string>& args);
int cmd_bench_decode(const Context& ctx, const std::vector<std::string>& args);
int cmd_bench_fabric(const Context& ctx, const std::vector<std::string>& args);
int cmd_bench_shift(const Context& ctx, const std::vector<std::string>& args);
int cmd_calibrate(const Context& ctx, const std::vector<std::string>& args);
int cmd_sweep(const Context& ctx, const std::vector<std::string>& args);
int cmd_generate(const Context& ctx, const std::vector<std::string>& args);

// Runs the subcommand `cmd` (as named on the command line) with `args`; throws UsageError for an
// unknown one. `sweep` uses it to run any command by name.
int dispatch(const Context& ctx, const std::string& cmd, const std::vector<std::string>& args);

// The whole program after MPI_Init: dispatch, one-line errors, exit codes.
int run(int argc, char** argv, MPI_Comm comm);

}  // namespace wm::cli
