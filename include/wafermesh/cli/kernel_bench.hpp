#pragma once
// `wafermesh bench kernel`: speed of the ternary kernels against the scalar reference, OpenBLAS
// fp32 and a memory-bandwidth roofline measured in the same run.
#include <boost/program_options/options_description.hpp>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace wm::bench {

struct KernelBenchOptions {
  // Projection shapes "MxK" (rows x cols of W). Default: BitNet-2B4T and LLaMA3-8B projections.
  std::vector<std::string> shapes;
  std::vector<int> tokens;           // N per call: 1 = decode GEMV, >1 = prefill GEMM
  std::vector<int> threads;          // OpenMP (and OpenBLAS) thread counts
  double dram_working_set_GiB = 1.0; // distinct weight copies cycled through for the DRAM figures
  double min_time_s = 0.2;           // minimum timed duration per measurement
  bool quick = false;                // small subset in seconds (smoke test)
  std::string csv_path;              // optional machine-readable copy of the table
};

// Declares the options of `wafermesh bench kernel` (each once, with help, default and unit).
void add_kernel_bench_options(boost::program_options::options_description& desc,
                              KernelBenchOptions& opts);
// Throws std::invalid_argument with one line for options that cannot run: a malformed shape, or
// one whose matrices exceed the machine's memory, token or thread counts out of 1..65536 /
// 1..4096, a DRAM working set beyond the memory, a minimum time outside (0, 3600] s.
void check_kernel_bench_options(const KernelBenchOptions& opts);
// Runs the benchmark (checking the options first), prints a table with units and ratios to `out`.
// Returns a process exit code; errors are thrown.
int run_kernel_bench(const KernelBenchOptions& opts, std::ostream& out);

}  // namespace wm::bench
