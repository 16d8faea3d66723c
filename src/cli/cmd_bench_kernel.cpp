// `wafermesh bench kernel`: the BitNet kernels against their scalar references, OpenBLAS fp32 and a
// memory-bandwidth roofline measured in the same run. The kernels are per process: rank 0 runs
// them and the other ranks wait without spinning.
//
// For every shape M x K, token count N and thread count it times
//   lut     N = 1: lut_gemv_i32(w, activations, tables, y), table build included;
//           N > 1: LutTables::assign + lut_gemm_i32 (1.67-bit lookup-table format)
//   mad2b   mad2b_gemm_i32                           (2-bit multiply-add format)
//   blas    OpenBLAS cblas_sgemv (N = 1) / cblas_sgemm (fp32 weights, same shape)
//   f32pan  N = 1: gemv_f32_panels_mt, this project's fp32 GEMV for non-ternary models (weights
//           in row panels, as a PE holds a stationary block; same fp32 bytes as blas)
//   bf16pan N = 1: gemv_bf16_panels_mt, the same GEMV on weights held in bf16 (half the bytes;
//           the ternary weights are exact in bf16), as the classifier of bf16-valued models
//   ref     lut_gemm_i32_ref / mad2b_gemm_i32_ref    (scalar, one thread; for N > 2 timed on 2
//                                                      tokens and scaled by N / 2: it is linear in N)
// in two modes: "cache" re-runs one weight copy (hot in cache when it fits), "dram" cycles through
// distinct copies totalling at least dram_GiB so every call streams its weights from memory
// (decode only: at N > 1 weights are re-used N times and memory is not the limit).
// The roofline is a STREAM-like triad (a = b + s c, 24 bytes per element, no write-allocate
// counted, as STREAM does) run by this binary at the same thread count right before each group of
// rows (cache) or each kernel's DRAM timing (dram), since a shared host's bandwidth drifts;
// roofline_frac = weight bytes per second / triad bytes per second.
#include <cblas.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iomanip>
#include <map>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "wafermesh/cli/bench_common.hpp"
#include "wafermesh/cli/commands.hpp"
#include "wafermesh/cli/machine_options.hpp"
#include "wafermesh/cli/rank0.hpp"
#include "wafermesh/kernels/activations.hpp"
#include "wafermesh/kernels/aligned_buffer.hpp"
#include "wafermesh/kernels/cpu_dispatch.hpp"
#include "wafermesh/kernels/fp32_tile.hpp"
#include "wafermesh/kernels/pack.hpp"
#include "wafermesh/kernels/ternary_2b.hpp"
#include "wafermesh/kernels/ternary_lut.hpp"
#include "wafermesh/mesh/mpi_traits.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::cli {
namespace {
namespace k = wm::kernels;

struct KernelBenchOptions {
  // Default shapes: BitNet-2B4T and LLaMA3-8B projections.
  std::vector<std::string> shapes{"2560x2560", "640x2560",   "6912x2560",  "2560x6912",
                                  "4096x4096", "1024x4096", "14336x4096", "4096x14336"};
  std::vector<int64_t> tokens{1, 128};
  std::vector<int64_t> threads{1, 2};
  double dram_GiB = 1.0;
  double min_time_s = 0.2;
  bool quick = false;
  int64_t seed = 0x5EED;
  std::string output = "results/bench_kernel.h5";
  std::vector<ParamSpec> specs() {
    return {
        param_text_list("shapes", &shapes, "weight shapes MxK (rows x columns of W), comma-separated"),
        param_int_list("tokens", &tokens, "tokens", "tokens per call N, comma-separated: 1 = decode GEMV, >1 = prefill GEMM",
                       1, 65536),
        param_int_list("threads", &threads, "threads", "OpenMP / OpenBLAS thread counts, comma-separated", 1, 4096),
        param_real("dram_GiB", &dram_GiB, "GiB",
                   "total size of the distinct weight copies cycled through for the DRAM figures", 0, 1e6, true),
        param_real("min_time_s", &min_time_s, "s", "minimum timed duration of each measurement", 0, 3600, true),
        param_flag("quick", &quick,
                   "smoke run in seconds: shapes 640x2560,2560x6912 and tokens 1,16 unless given, dram_GiB <= 0.25, "
                   "min_time_s <= 0.02"),
        param_int("seed", &seed, "", "seed of the random weights and activations (each shape adds 131 M + K)", 0,
                  int64_t(1) << 62),
        param_text("output", &output, "HDF5 results file (written complete or not at all)"),
    };
  }
  // --quick's subset, applied to the options themselves so the results file records what ran;
  // shapes and tokens given in `opts` (command line or config file) are kept.
  void apply_quick(const OptionSet& opts) {
    if (!quick) return;
    if (opts.source("shapes") == "default") shapes = {"640x2560", "2560x6912"};
    if (opts.source("tokens") == "default") tokens = {1, 16};
    dram_GiB = std::min(dram_GiB, 0.25);
    min_time_s = std::min(min_time_s, 0.02);
  }
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Seconds per call: one warm-up call, then kBatches batches of calls, each lasting
// min_time / kBatches (and at least one call); the fastest batch's mean is reported (as STREAM
// reports its best run), which discounts short interference from other processes. Sustained load
// on the cores still distorts the figures (a 2-thread OpenMP call waits for a descheduled thread),
// so the load average is printed before and after the run.
constexpr int kBatches = 10;
// warmup_calls (at least 1) untimed calls come first: in dram mode one full pass over the copies,
// since on a shared VM memory left idle for seconds can be slow on its next first touch.
double time_calls(const std::function<void(std::int64_t)>& call, double min_time,
                  std::int64_t warmup_calls = 1) {
  std::int64_t c = 0;
  while (c < std::max<std::int64_t>(warmup_calls, 1)) call(c++);
  double best = 1e300;
  for (int batch = 0; batch < kBatches; ++batch) {
    std::int64_t calls = 0;
    const auto t0 = Clock::now();
    double elapsed = 0.0;
    do {
      call(c++);
      ++calls;
      elapsed = seconds_since(t0);
    } while (elapsed < min_time / kBatches);
    best = std::min(best, elapsed / static_cast<double>(calls));
  }
  return best;
}

// Deterministic fast generator for large random inputs.
struct SplitMix {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
};

struct Roofline {
  double triad_GBps = 0.0;
  double read_GBps = 0.0;
};

// STREAM-like triad and a read-only sum on three arrays of `elems` doubles, allocated and touched
// once. measure() runs at the current OpenMP thread count: one warm-up pass, then the best of 5.
// The memory bandwidth of a shared host drifts (other tenants), so the roofline of each row is
// measured right before that row's shape and thread count is timed.
class RooflineProbe {
 public:
  explicit RooflineProbe(std::int64_t elems)
      : elems_(elems), a_(static_cast<std::size_t>(elems)), b_(a_.size()), c_(a_.size()) {
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < elems; ++i) {
      a_[i] = 0.0;
      b_[i] = 1.0;
      c_[i] = 2.0;
    }
  }
  Roofline measure() {
    Roofline r;
    const double scalar = 3.0;
    double* a = a_.data();
    const double *b = b_.data(), *c = c_.data();
    double sink = 0.0;
    for (int rep = 0; rep < 6; ++rep) {
      auto t0 = Clock::now();
#pragma omp parallel for schedule(static)
      for (std::int64_t i = 0; i < elems_; ++i) a[i] = b[i] + scalar * c[i];
      const double triad = 24.0 * static_cast<double>(elems_) / seconds_since(t0) / 1e9;
      // Read-only: integer sum of the same bytes (integer adds may be reordered, so it vectorises).
      const auto* words = reinterpret_cast<const std::uint64_t*>(a);
      t0 = Clock::now();
      std::uint64_t sum = 0;
#pragma omp parallel for schedule(static) reduction(+ : sum)
      for (std::int64_t i = 0; i < elems_; ++i) sum += words[i];
      const double read = 8.0 * static_cast<double>(elems_) / seconds_since(t0) / 1e9;
      sink += static_cast<double>(sum);
      if (rep > 0) {  // rep 0 warms up (frequency, TLB)
        r.triad_GBps = std::max(r.triad_GBps, triad);
        r.read_GBps = std::max(r.read_GBps, read);
      }
    }
    if (sink == 42.0) std::fputs("", stderr);  // keep the read loop alive
    return r;
  }

 private:
  std::int64_t elems_;
  // On huge pages (AlignedAllocator, >= 2 MiB), like the weights it is compared with.
  std::vector<double, k::AlignedAllocator<double>> a_, b_, c_;
};

// First line of /proc/loadavg ("1-min 5-min 15-min running/total last-pid"), or "n/a".
std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string line;
  if (!f || !std::getline(f, line)) return "n/a";
  return line;
}

struct Shape {
  std::int64_t M = 0, K = 0;
  std::string name;
};

Shape parse_shape(const std::string& s) {
  const auto bad = [&](const std::string& why) {
    return UsageError("bench kernel: bad --shapes entry '" + s + "': " + why + " (expected MxK, e.g. 2560x6912)");
  };
  const auto x = s.find('x');
  if (x == std::string::npos) throw bad("no 'x'");
  Shape sh;
  const auto m = std::from_chars(s.data(), s.data() + x, sh.M);
  const auto k = std::from_chars(s.data() + x + 1, s.data() + s.size(), sh.K);
  if (m.ec != std::errc() || m.ptr != s.data() + x || k.ec != std::errc() || k.ptr != s.data() + s.size())
    throw bad("not two integers");
  if (sh.M <= 0 || sh.K <= 0) throw bad("M and K must be positive");
  sh.name = s;
  return sh;
}

// The shapes, each checked, and what the host must hold: the DRAM working set, and per shape its
// fp32 weights (OpenBLAS) and their packed and bf16 copies, a few times over. Throws UsageError
// naming the value and the limit (identically on every rank).
std::vector<Shape> checked_shapes(const KernelBenchOptions& o) {
  const double host = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGE_SIZE));
  std::vector<Shape> shapes;
  for (const std::string& s : o.shapes) {
    shapes.push_back(parse_shape(s));
    check_host_bytes("bench kernel: --shapes entry '" + s + "'", {shapes.back().M, shapes.back().K, 16});
  }
  if (host > 0 && o.dram_GiB * 1073741824.0 > host) {
    std::ostringstream m;
    m << "option --dram_GiB = " << o.dram_GiB << ": more than this machine's memory (" << host / 1073741824.0
      << " GiB)";
    throw UsageError(m.str());
  }
  return shapes;
}

// One result row.
struct Row {
  std::string shape, kernel, mode;
  int N = 0, threads = 0;
  double time_s = 0.0, weight_bytes = 0.0;
  double x_ref = NAN, x_blas = NAN, roofline_frac = NAN;
  double triad_GBps = NAN;  // the roofline this row's fraction is taken against
};

// The printed table and the results file's table, row by row.
class Results {
 public:
  explicit Results(std::ostream& out) : out_(out) {
    t_.add_column("shape", "rows x columns", io::ColumnKind::text);
    t_.add_column("N", "tokens", io::ColumnKind::integer);
    t_.add_column("threads", "threads", io::ColumnKind::integer);
    t_.add_column("kernel", "", io::ColumnKind::text);
    t_.add_column("mode", "", io::ColumnKind::text);
    t_.add_column("time_us", "us", io::ColumnKind::real);
    t_.add_column("weight_GBps", "GB/s", io::ColumnKind::real);
    t_.add_column("x_vs_ref", "ref time / time", io::ColumnKind::real);
    t_.add_column("x_vs_openblas", "OpenBLAS time / time", io::ColumnKind::real);
    t_.add_column("roofline_frac", "weight_GBps / triad_GBps", io::ColumnKind::real);
    t_.add_column("triad_GBps", "GB/s", io::ColumnKind::real);
  }
  void header() {
    out_ << std::left << std::setw(11) << "shape" << std::right << std::setw(5) << "N" << std::setw(4)
         << "thr" << "  " << std::left << std::setw(8) << "kernel" << std::setw(6) << "mode" << std::right
         << std::setw(12) << "time_us" << std::setw(13) << "weight_GBps" << std::setw(10) << "x_vs_ref"
         << std::setw(10) << "x_vs_blas" << std::setw(14) << "roofline_frac" << std::setw(8) << "triad"
         << "\n";
  }
  // NaN prints as "-" (and is stored as NaN).
  void add(const Row& r) {
    auto num = [](double v, int prec) {
      std::ostringstream s;
      if (std::isnan(v)) {
        s << "-";
      } else {
        s << std::fixed << std::setprecision(prec) << v;
      }
      return s.str();
    };
    const double gbps = r.weight_bytes / r.time_s / 1e9;
    out_ << std::left << std::setw(11) << r.shape << std::right << std::setw(5) << r.N << std::setw(4)
         << r.threads << "  " << std::left << std::setw(8) << r.kernel << std::setw(6) << r.mode
         << std::right << std::setw(12) << num(r.time_s * 1e6, 1) << std::setw(13) << num(gbps, 2)
         << std::setw(10) << num(r.x_ref, 1) << std::setw(10) << num(r.x_blas, 2) << std::setw(14)
         << num(r.roofline_frac, 3) << std::setw(8) << num(r.triad_GBps, 1) << std::endl;
    t_.append_row({r.shape, int64_t(r.N), int64_t(r.threads), r.kernel, r.mode, r.time_s * 1e6, gbps, r.x_ref,
                   r.x_blas, r.roofline_frac, r.triad_GBps});
  }
  const io::Table& table() const { return t_; }

 private:
  std::ostream& out_;
  io::Table t_;
};

// Copies of one prepared weight object, cycled through so calls stream distinct memory. They sit
// in one huge-page arena (aligned_buffer.hpp), as a rank's weight blocks do in the model: the
// sub-2 MiB copies of the small shapes would otherwise each be a heap block on 4 KiB pages, and
// what a stream over those pages loses would be charged to the kernel.
template <class T>
struct DramCopies {
  std::unique_ptr<k::HugePageArena> arena;  // declared first: outlives the copies
  std::vector<T> copies;
  DramCopies() = default;
  DramCopies(DramCopies&&) noexcept = default;
  DramCopies& operator=(DramCopies&& other) noexcept {  // the old copies go before their arena
    copies.clear();
    copies = std::move(other.copies);
    arena = std::move(other.arena);
    return *this;
  }
  const T& operator[](std::int64_t c) const { return copies[static_cast<std::size_t>(c) % copies.size()]; }
  std::int64_t size() const { return static_cast<std::int64_t>(copies.size()); }
};

template <class T>
DramCopies<T> make_copies(const T& w, std::int64_t bytes_each, double GiB) {
  const auto want = static_cast<std::int64_t>(std::ceil(GiB * 1073741824.0 / static_cast<double>(bytes_each)));
  const std::int64_t n = std::max<std::int64_t>(2, want);
  DramCopies<T> d;
  d.arena = std::make_unique<k::HugePageArena>(static_cast<std::size_t>(n * ((bytes_each + 63) / 64 * 64)));
  k::ArenaScope scope(*d.arena);
  d.copies.assign(static_cast<std::size_t>(n), w);
  return d;
}

// Runs the benchmark on this process, prints the table with units and ratios, fills `results` and
// `start` (the roofline per thread count at the start). Returns 1 when two kernels disagree.
int run(const KernelBenchOptions& o, const std::vector<Shape>& shapes, std::ostream& out, Results& results,
        io::Table& start) {
  auto join = [](const auto& v) {
    std::ostringstream s;
    for (size_t i = 0; i < v.size(); ++i) s << (i ? "," : "") << v[i];
    return s.str();
  };
  out << "wafermesh bench kernel: ISA level " << k::isa_name(k::isa_active()) << " (best "
      << k::isa_name(k::isa_best()) << "), OpenBLAS " << openblas_get_config() << "\n";
  out << "shapes " << join(o.shapes) << "; N " << join(o.tokens) << "; threads " << join(o.threads)
      << "; DRAM working set " << o.dram_GiB << " GiB; min time " << o.min_time_s << " s\n"
      << "load average at start: " << load_average() << "\n";

  // Roofline per thread count, arrays of 3 x 256 MiB (3 x 64 MiB in quick mode); measured again
  // before every shape, N and thread count (the triad column).
  RooflineProbe probe((o.quick ? 64 : 256) * (std::int64_t{1} << 20) / 8);
  std::map<int, Roofline> roof;
  start.add_column("threads", "threads", io::ColumnKind::integer);
  start.add_column("triad_GBps", "GB/s", io::ColumnKind::real);
  start.add_column("read_GBps", "GB/s", io::ColumnKind::real);
  for (const std::int64_t t : o.threads) {
    omp_set_num_threads(int(t));
    roof[int(t)] = probe.measure();
    start.append_row({t, roof[int(t)].triad_GBps, roof[int(t)].read_GBps});
    out << "roofline threads=" << t << " at start: triad " << std::fixed << std::setprecision(2)
        << roof[int(t)].triad_GBps << " GB/s; read-only sum " << roof[int(t)].read_GBps << " GB/s (for reference)\n";
  }
  out.unsetf(std::ios::fixed);
  out << "time_us per call; weight_GBps = format bytes / time (blas, f32pan: fp32 bytes); x_vs_ref = ref time / time\n"
         "(ref: scalar _ref of the same format, 1 thread; for N > 2 timed on 2 tokens and scaled by N/2);\n"
         "x_vs_blas = OpenBLAS time / time (same shape,\n"
         "N, threads, mode); roofline_frac = weight_GBps / triad, the triad GB/s measured at the same\n"
         "thread count right before the row was timed (dram rows: right before that kernel's DRAM timing;\n"
         "cache rows: before the shape's group); memory bandwidth drifts on a shared host.\n"
         "lut includes building the token's tables; f32pan (N = 1) is the fp32 GEMV on row panels that\n"
         "non-ternary models use, bf16pan the same on weights held in bf16. mode cache = same copy each call; dram = cycling\n"
         "through distinct copies of >= the DRAM working set.\n\n";
  results.header();

  int status = 0;
  for (const Shape& sh : shapes) {
    const std::int64_t M = sh.M, K = sh.K;
    SplitMix rng{static_cast<std::uint64_t>(o.seed) + static_cast<std::uint64_t>(M * 131 + K)};
    std::vector<std::int8_t> w8(static_cast<std::size_t>(M * K));  // (M, K) ternary
    for (auto& v : w8) v = static_cast<std::int8_t>(static_cast<int>(rng.next() % 3) - 1);
    const auto lut = k::TernaryMatrixLut::from_int8(w8.data(), M, K, K);
    const auto w2b = k::TernaryMatrix2b::from_int8(w8.data(), M, K, K);
    std::vector<float, k::AlignedAllocator<float>> wf(w8.begin(), w8.end());  // (M, K) same weights, fp32
    std::vector<float, k::AlignedAllocator<float>> wp(wf.size());               // the same in row panels
    k::pack_f32_panels(M, K, wf.data(), K, wp.data());
    std::vector<std::uint16_t, k::AlignedAllocator<std::uint16_t>> wh(wf.size());  // the same in bf16 panels
    k::pack_bf16_panels(M, K, wf.data(), K, wh.data());
    w8 = {};
    const std::int64_t wf_bytes = M * K * static_cast<std::int64_t>(sizeof(float));
    const bool want_dram = std::find(o.tokens.begin(), o.tokens.end(), 1) != o.tokens.end();
    DramCopies<k::TernaryMatrixLut> lut_copies;
    DramCopies<k::TernaryMatrix2b> w2b_copies;
    DramCopies<std::vector<float, k::AlignedAllocator<float>>> wf_copies, wp_copies;
    DramCopies<std::vector<std::uint16_t, k::AlignedAllocator<std::uint16_t>>> wh_copies;
    if (want_dram) {
      lut_copies = make_copies(lut, lut.bytes(), o.dram_GiB);
      w2b_copies = make_copies(w2b, w2b.bytes(), o.dram_GiB);
      wf_copies = make_copies(wf, wf_bytes, o.dram_GiB);
    }
    for (const std::int64_t tokens : o.tokens) {
      const int N = static_cast<int>(tokens);
      std::vector<std::int8_t> q(static_cast<std::size_t>(N * K));  // (N, K) full int8 range
      for (auto& v : q) v = static_cast<std::int8_t>(rng.next() & 0xFF);
      std::vector<float> xf(q.begin(), q.end());                      // (N, K)
      const auto act = k::ActivationsQ8::from_int8(q.data(), N, K, K);
      std::vector<std::int32_t> y(static_cast<std::size_t>(N * M)), y2(y.size());  // (N, M)
      std::vector<float> yf(y.size());                                              // (N, M)
      k::LutTables tables;  // rebuilt from `act` inside every timed lut call

      // Scalar references, one thread (they are single-threaded by design).
      const int n_ref = std::min(N, 2);
      const double scale_ref = static_cast<double>(N) / n_ref;
      const double t_ref_lut = scale_ref * time_calls([&](std::int64_t) {
        k::lut_gemm_i32_ref(lut, q.data(), n_ref, K, y.data(), M);
      }, o.min_time_s);
      const double t_ref_2b = scale_ref * time_calls([&](std::int64_t) {
        k::mad2b_gemm_i32_ref(w2b, q.data(), n_ref, K, y2.data(), M);
      }, o.min_time_s);

      for (const std::int64_t thread_count : o.threads) {
        const int threads = static_cast<int>(thread_count);
        omp_set_num_threads(threads);
        openblas_set_num_threads(threads);
        // cache rows: the triad measured before the group; dram rows: the one measured right before
        // that kernel's DRAM timing (OpenBLAS's: the last one before it, since a triad run just after
        // OpenBLAS would share the cores with its spinning workers).
        const double group_triad = probe.measure().triad_GBps;
        double dram_triad = group_triad;
        auto triad_for = [&](bool dram) {
          if (dram) dram_triad = probe.measure().triad_GBps;
          return dram ? dram_triad : group_triad;
        };
        // Cross-check the two fast formats once (exactness is the tests' job; this catches a
        // broken build of the benchmarked binary).
        k::lut_gemm_i32(lut, k::LutTables::build(act), y.data(), M);
        k::mad2b_gemm_i32(w2b, act, y2.data(), M);
        if (y != y2) {
          out << "ERROR: lut and mad2b results differ for " << sh.name << " N=" << N << "\n";
          status = 1;
        }
        // OpenBLAS (pthreads build) leaves its workers spinning after a call, stealing the cores from
        // OpenMP: our kernels are timed first, OpenBLAS last, then its workers are left to sleep.
        std::vector<Row> rows;
        for (const char* mode : {"cache", "dram"}) {
          const bool dram = std::string(mode) == "dram";
          if (dram && N != 1) continue;
          const double triad_lut = triad_for(dram);
          const double t_lut = time_calls([&](std::int64_t c) {
            const auto& w = dram ? lut_copies[c] : lut;
            if (N == 1) {
              k::lut_gemv_i32(w, act, tables, y.data());  // decode: table build fused in
            } else {
              tables.assign(act);
              k::lut_gemm_i32(w, tables, y.data(), M);
            }
          }, o.min_time_s, dram ? lut_copies.size() : 1);
          const double triad_2b = triad_for(dram);
          const double t_2b = time_calls([&](std::int64_t c) {
            const auto& w = dram ? w2b_copies[c] : w2b;
            k::mad2b_gemm_i32(w, act, y2.data(), M);
          }, o.min_time_s, dram ? w2b_copies.size() : 1);
          const auto lb = static_cast<double>(lut.bytes()), b2 = static_cast<double>(w2b.bytes());
          rows.push_back({sh.name, "lut", mode, N, threads, t_lut, lb, t_ref_lut / t_lut, NAN, NAN, triad_lut});
          rows.push_back({sh.name, "mad2b", mode, N, threads, t_2b, b2, t_ref_2b / t_2b, NAN, NAN, triad_2b});
          if (N == 1) {
            // The panels' dram copies exist only while they are timed (another GiB or more).
            if (dram) wp_copies = make_copies(wp, wf_bytes, o.dram_GiB);
            const double triad_pan = triad_for(dram);
            const double t_pan = time_calls([&](std::int64_t c) {
              const float* a = dram ? wp_copies[c].data() : wp.data();
              k::gemv_f32_panels_mt(M, K, a, xf.data(), yf.data(), false);
            }, o.min_time_s, dram ? wp_copies.size() : 1);
            wp_copies = {};
            rows.push_back({sh.name, "f32pan", mode, N, threads, t_pan, static_cast<double>(wf_bytes), NAN, NAN,
                            NAN, triad_pan});
            const std::vector<float> y_pan(yf.begin(), yf.begin() + M);
            if (dram) wh_copies = make_copies(wh, wf_bytes / 2, o.dram_GiB);
            const double triad_half = triad_for(dram);
            const double t_half = time_calls([&](std::int64_t c) {
              const std::uint16_t* a = dram ? wh_copies[c].data() : wh.data();
              k::gemv_bf16_panels_mt(M, K, a, xf.data(), yf.data(), false);
            }, o.min_time_s, dram ? wh_copies.size() : 1);
            wh_copies = {};
            if (!std::equal(y_pan.begin(), y_pan.end(), yf.begin())) {
              out << "ERROR: bf16pan and f32pan results differ for " << sh.name << "\n";
              status = 1;
            }
            rows.push_back({sh.name, "bf16pan", mode, N, threads, t_half, static_cast<double>(wf_bytes / 2), NAN,
                            NAN, NAN, triad_half});
          }
        }
        for (const char* mode : {"cache", "dram"}) {
          const bool dram = std::string(mode) == "dram";
          if (dram && N != 1) continue;
          const double t_blas = time_calls([&](std::int64_t c) {
            const float* a = dram ? wf_copies[c].data() : wf.data();
            if (N == 1) {
              cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(M), static_cast<int>(K), 1.0f, a,
                          static_cast<int>(K), xf.data(), 1, 0.0f, yf.data(), 1);
            } else {
              cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, static_cast<int>(M), static_cast<int>(K),
                          1.0f, xf.data(), static_cast<int>(K), a, static_cast<int>(K), 0.0f, yf.data(),
                          static_cast<int>(M));
            }
          }, o.min_time_s, dram ? wf_copies.size() : 1);
          for (Row& r : rows) {
            if (r.mode == mode) r.x_blas = t_blas / r.time_s;
          }
          rows.push_back({sh.name, "blas", mode, N, threads, t_blas, static_cast<double>(wf_bytes), NAN, 1.0,
                          NAN, dram ? dram_triad : group_triad});
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        for (Row& r : rows) r.roofline_frac = r.weight_bytes / r.time_s / (r.triad_GBps * 1e9);
        for (const char* mode : {"cache", "dram"}) {
          for (const Row& r : rows) {
            if (r.mode == mode) results.add(r);
          }
        }
      }
      const double start_triad = roof.begin()->second.triad_GBps;
      results.add({sh.name, "lut_ref", "cache", N, 1, t_ref_lut, static_cast<double>(lut.bytes()), 1.0, NAN,
                 static_cast<double>(lut.bytes()) / t_ref_lut / (start_triad * 1e9), start_triad});
    }
  }
  out << "load average at end: " << load_average() << "\n";
  return status;
}

}  // namespace

int cmd_bench_kernel(const Context& ctx, const std::vector<std::string>& args) {
  MachineParams mp;
  KernelBenchOptions o;
  OptionSet opts;
  const bool go = parse_command(ctx, args, opts, mp, o.specs(),
                                "usage: wafermesh bench kernel [--config FILE] [options]\n\n"
                                "The BitNet kernels (LUT, 2-bit multiply-add) and the fp32 panel GEMV against their scalar\n"
                                "references, OpenBLAS and a triad roofline measured in the same run, on rank 0. The machine\n"
                                "options only go into the results file's provenance.");
  if (opts.help_requested()) return 0;
  o.apply_quick(opts);
  const std::vector<Shape> shapes = checked_shapes(o);
  if (!go) return 0;
  Results results(*ctx.out);
  io::Table start;
  int status = 0;
  // Rank 0 measures; the others wait without taking a core from it. A failure reaches every rank
  // as one line.
  on_rank0(ctx, [&] { status = run(o, shapes, *ctx.out, results, start); }, std::chrono::milliseconds(20));
  MPI_Bcast(&status, 1, mpi_type<int>(), 0, ctx.comm);
  write_bench_results(ctx, opts, mp, o.output, "kernel", results.table(), o.seed, {{"roofline_at_start", start}});
  return status;
}

}  // namespace wm::cli
