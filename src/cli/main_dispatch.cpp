#include <cstdio>
#include <exception>
#include <stdexcept>
#include <iostream>
#include <ostream>
#include <streambuf>

#include "wafermesh/cli/commands.hpp"
#include "wafermesh/cli/machine_options.hpp"
#include "wafermesh/kernels/cpu_dispatch.hpp"
#include "wafermesh/util/error.hpp"
#include "wafermesh/version.hpp"

namespace wm::cli {

namespace {

class NullBuf : public std::streambuf {
 protected:
  int overflow(int c) override { return c; }
};

const char* kUsage =
    "usage: wafermesh <command> [options]\n"
    "\n"
    "An emulator of wafer-scale AI chips: a W x H mesh of PEs split over MPI ranks, with a\n"
    "virtual clock that charges the PLMR cost model (see README.md).\n"
    "\n"
    "commands:\n"
    "  generate  text from a model placed on the wafer: virtual time to first token, tokens/s, SRAM, routes\n"
    "  info    the mesh, the rank layout, every machine parameter with its unit and source\n"
    "  demo    a demonstration run of the fabric: shifts, broadcasts, reductions on the mesh\n"
    "  bench   benchmarks: `wafermesh bench kernel` (BitNet kernels), `wafermesh bench gemm` (distributed GEMM)\n"
    "  sweep   a scaling study: the cross product of a study file's values, one HDF5 file, resumable\n"
    "  calibrate  fit the cost model's parameters to measured microbenchmarks (GEMM, GEMV, shift)\n"
    "\n"
    "`wafermesh <command> --help` lists the command's options with defaults and units.\n"
    "Run under mpirun for several ranks, e.g. mpirun -np 4 wafermesh info --config configs/wse2.ini";

}  // namespace

int dispatch(const Context& ctx, const std::string& cmd, const std::vector<std::string>& args) {
  if (cmd == "info") return cmd_info(ctx, args);
  if (cmd == "demo") return cmd_demo(ctx, args);
  if (cmd == "bench") return cmd_bench(ctx, args);
  if (cmd == "sweep") return cmd_sweep(ctx, args);
  if (cmd == "generate") return cmd_generate(ctx, args);
  if (cmd == "calibrate") return cmd_calibrate(ctx, args);
  throw UsageError("unknown command '" + cmd + "' (commands: generate, info, demo, bench, sweep, calibrate; see wafermesh --help)");
}

int run(int argc, char** argv, MPI_Comm comm) {
  Context ctx{comm, 0, 1, nullptr, {}, nullptr, false};
  MPI_Comm_rank(comm, &ctx.rank);
  MPI_Comm_size(comm, &ctx.size);
  NullBuf null_buf;
  std::ostream null_out(&null_buf);
  ctx.out = ctx.rank == 0 ? &std::cout : &null_out;

  std::vector<std::string> args(argv + 1, argv + argc);
  ctx.command_line = "wafermesh";
  for (const auto& a : args) ctx.command_line += " " + a;
  if (args.empty()) {
    if (ctx.rank == 0) std::cerr << kUsage;
    return 2;
  }
  const std::string cmd = args.front();
  args.erase(args.begin());
  try {
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
      // The machine options are shared by every command; each command's --help adds its own.
      MachineParams mp;
      OptionSet opts;
      add_machine_options(opts, mp);
      opts.print_help(*ctx.out, kUsage);
      return 0;
    }
    if (cmd == "--version") {
      *ctx.out << "wafermesh " << kVersion << " (" << kGitCommit << ")\n";
      return 0;
    }
    try {  // WM_KERNEL_ISA is user input: a bad value is a usage error, not an internal one
      (void)kernels::isa_active();
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("environment variable WM_KERNEL_ISA: ") + e.what());
    }
    return dispatch(ctx, cmd, args);
  } catch (const UsageError& e) {
    if (ctx.rank == 0) std::cerr << "wafermesh: error: " << e.what() << "\n";
    return 2;
  } catch (const LimitError& e) {
    if (ctx.rank == 0) std::cerr << "wafermesh: error: " << e.what() << "\n";
    return 3;
  } catch (const std::exception& e) {
    // Not a collective error: other ranks may be waiting on this one, so take everybody down.
    std::cerr << "wafermesh: internal error on rank " << ctx.rank << ": " << e.what() << "\n";
    std::cerr.flush();
    MPI_Abort(comm, 4);
    return 4;
  }
}

}  // namespace wm::cli
