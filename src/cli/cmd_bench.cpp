// `wafermesh bench <what>`: benchmarks that print ratios measured in one run.
#include <boost/program_options.hpp>
#include <ostream>

#include "wafermesh/cli/commands.hpp"
#include "wafermesh/cli/machine_options.hpp"
#include "wafermesh/cli/rank0.hpp"
#include "wafermesh/mesh/mpi_traits.hpp"
#include "wafermesh/util/error.hpp"
#include "wafermesh/cli/kernel_bench.hpp"

namespace po = boost::program_options;

namespace wm::cli {

int cmd_bench(const Context& ctx, const std::vector<std::string>& args) {
  std::ostream& out = *ctx.out;
  const char* usage = "usage: wafermesh bench <kernel|gemm|gemv|kv|shift|fabric> [options]   (wafermesh bench <what> --help)";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    out << usage << "\n  kernel   BitNet ternary and fp32 kernels vs scalar reference, OpenBLAS and a bandwidth roofline\n"
        << "  gemm     distributed GEMM on the mesh: meshgemm, cannon, summa\n"
        << "  gemv     MeshGEMV with pipeline, ring and ktree allreduce\n"
        << "  kv       KV cache policies: longest decode before SRAM overflows, cycles per token\n"
        << "  shift    every PE's tile L PEs along an axis: virtual cycles (a calibration microbenchmark)\n"
        << "  fabric   the engine's wall time per PE and step for each fabric primitive, against a memory copy\n";
    return args.empty() ? 2 : 0;
  }
  const std::string what = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (what == "gemm") return cmd_bench_gemm(ctx, rest);
  if (what == "gemv") return cmd_bench_gemv(ctx, rest);
  if (what == "kv") return cmd_bench_kv(ctx, rest);
  if (what == "fabric") return cmd_bench_fabric(ctx, rest);
  if (what == "shift") return cmd_bench_shift(ctx, rest);
  if (what == "kernel") {
    bench::KernelBenchOptions o;
    po::options_description desc("wafermesh bench kernel options", 100, 50);
    desc.add_options()("help,h", "print this help and exit");
    bench::add_kernel_bench_options(desc, o);
    po::variables_map vm;
    try {
      const int style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
      po::store(po::command_line_parser(rest).options(desc).style(style).run(), vm);
      po::notify(vm);
    } catch (const po::error& e) {
      throw UsageError(std::string(e.what()) + " (see wafermesh bench kernel --help)");
    }
    if (vm.count("help")) {
      out << "usage: wafermesh bench kernel [options]\n\n" << desc;
      return 0;
    }
    try {  // the same on every rank: one error line, every rank exits 2
      bench::check_kernel_bench_options(o);
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("bench kernel: ") + e.what());
    }
    if (!o.csv_path.empty()) check_output_file(ctx, o.csv_path, "--csv");
    // The kernels are per process: rank 0 runs them, other ranks only wait; a failure on rank 0
    // reaches every rank as one line.
    int rc = 0;
    on_rank0(ctx, [&] {
      try {
        rc = bench::run_kernel_bench(o, out);
      } catch (const std::exception& e) {
        throw UsageError(std::string("bench kernel: ") + e.what());
      }
    });
    MPI_Bcast(&rc, 1, mpi_type<int>(), 0, ctx.comm);
    return rc;
  }
  throw UsageError("unknown benchmark '" + what + "' (available: kernel, gemm, gemv, kv, shift, fabric)");
}

}  // namespace wm::cli
