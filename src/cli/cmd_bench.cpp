// `wafermesh bench <what>`: benchmarks that print ratios measured in one run.
#include <ostream>

#include "wafermesh/cli/commands.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::cli {

int cmd_bench(const Context& ctx, const std::vector<std::string>& args) {
  std::ostream& out = *ctx.out;
  const char* usage = "usage: wafermesh bench <kernel|gemm|gemv|kv|decode|shift|fabric> [options]   (wafermesh bench <what> --help)";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    out << usage << "\n  kernel   BitNet ternary and fp32 kernels vs scalar reference, OpenBLAS and a bandwidth roofline\n"
        << "  gemm     distributed GEMM on the mesh: meshgemm, cannon, summa\n"
        << "  gemv     MeshGEMV with pipeline, ring and ktree allreduce\n"
        << "  kv       KV cache policies: longest decode before SRAM overflows, cycles per token\n"
        << "  decode   a model's decode at 1 rank and at the job's ranks, alternating: the emulator's speed-up\n"
        << "  shift    every PE's tile L PEs along an axis: virtual cycles (a calibration microbenchmark)\n"
        << "  fabric   the engine's wall time per PE and step for each fabric primitive, against a memory copy\n";
    return args.empty() ? 2 : 0;
  }
  const std::string what = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (what == "kernel") return cmd_bench_kernel(ctx, rest);
  if (what == "gemm") return cmd_bench_gemm(ctx, rest);
  if (what == "gemv") return cmd_bench_gemv(ctx, rest);
  if (what == "kv") return cmd_bench_kv(ctx, rest);
  if (what == "decode") return cmd_bench_decode(ctx, rest);
  if (what == "fabric") return cmd_bench_fabric(ctx, rest);
  if (what == "shift") return cmd_bench_shift(ctx, rest);
  throw UsageError("unknown benchmark '" + what + "' (available: kernel, gemm, gemv, kv, decode, shift, fabric)");
}

}  // namespace wm::cli
