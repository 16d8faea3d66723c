#include "wafermesh/dist/gemv.hpp"
#include "wafermesh/dist/run_window.hpp"

#include <mpi.h>

#include <optional>

#include <algorithm>

#include "wafermesh/kernels/activations.hpp"
#include "wafermesh/kernels/fp32_gemm.hpp"
#include "wafermesh/kernels/fp32_tile.hpp"
#include "wafermesh/kernels/pack.hpp"
#include "wafermesh/kernels/ternary_lut.hpp"
#include "wafermesh/mesh/mpi_traits.hpp"
#include "wafermesh/noc/tile_buf.hpp"
#include "wafermesh/util/checked_math.hpp"

namespace wm::dist {

void check_gemv_spec(const MeshShape& m, const GemvSpec& s) {
  auto num = [](int64_t v) { return std::to_string(v); };
  if (s.P < 1) throw UsageError("gemv region side P = " + num(s.P) + ": must be >= 1");
  if (s.M < 1 || s.K < 1) throw UsageError("gemv shape " + num(s.M) + " x " + num(s.K) + ": both must be >= 1");
  if (s.origin.x < 0 || s.origin.y < 0 || s.origin.x + s.P > m.width || s.origin.y + s.P > m.height)
    throw UsageError("gemv region " + num(s.P) + " x " + num(s.P) + " at (" + num(s.origin.x) + ", " +
                     num(s.origin.y) + ") does not fit the " + num(m.width) + " x " + num(m.height) + " mesh");
  if (s.allreduce.levels < 1) throw UsageError("ktree levels must be >= 1");
}

namespace {

// Geometry shared by both element types.
struct Layout {
  GemvSpec s;
  Region R;
  int64_t mt, kt;
  explicit Layout(const GemvSpec& sp)
      : s(sp), R{sp.origin.x, sp.origin.y, sp.P, sp.P}, mt((sp.M + sp.P - 1) / sp.P), kt((sp.K + sp.P - 1) / sp.P) {}
  // Logical (r, c) = (row, column) of physical PE (x, y) in the region.
  int32_t r(int32_t y) const { return y - R.y0; }
  int32_t c(int32_t x) const { return x - R.x0; }
  bool along_x() const { return s.reduce_axis == Axis::X; }
  // W block (output block, input block) held by PE (x, y).
  std::pair<int64_t, int64_t> wblock(int32_t x, int32_t y) const {
    return along_x() ? std::pair<int64_t, int64_t>{r(y), c(x)} : std::pair<int64_t, int64_t>{c(x), r(y)};
  }
  int64_t xblock(int32_t x, int32_t y) const { return along_x() ? c(x) : r(y); }
  int64_t yblock(int32_t x, int32_t y) const { return along_x() ? r(y) : c(x); }
  template <class T>
  void cut_w(const T* W, int64_t bi, int64_t bk, T* out) const {  // (mt, kt), zero-padded
    for (int64_t i = 0; i < mt; ++i)
      for (int64_t k = 0; k < kt; ++k) {
        const int64_t gi = bi * mt + i, gk = bk * kt + k;
        out[i * kt + k] = gi < s.M && gk < s.K ? W[gi * s.K + gk] : T{};
      }
  }
  template <class T>
  void cut_x(const T* x, int64_t b, T* out) const {
    for (int64_t k = 0; k < kt; ++k) out[k] = b * kt + k < s.K ? x[b * kt + k] : T{};
  }
};

// The figures of one GEMV run, from the run window and the allreduce's structure.
GemvReport gemv_report(RunWindow& win, const AllreduceStats& st) {
  const RunFigures fig = win.finish();
  GemvReport rep;
  rep.total_cycles = fig.total_cycles;
  rep.compute_cycles = fig.compute_cycles;
  rep.comm_cycles = fig.comm_cycles;
  rep.critical_hops = st.critical_hops;
  rep.critical_stages = st.critical_stages;
  rep.max_route_entries = fig.summary.max_route_peak_entries;
  rep.peak_sram_bytes = fig.summary.max_sram_peak_bytes;
  rep.wall_s = fig.wall_s;
  return rep;
}

// After the allreduce, y block b sits on the PEs of line b; take it from the line's result PE.
template <class T>
void gather_y(Fabric& f, const Layout& L, const TileBuf<T>& yt, int32_t root, T* y) {
  int want = y != nullptr;
  MPI_Allreduce(MPI_IN_PLACE, &want, 1, mpi_type<int>(), MPI_MAX, f.comm());
  if (!want) return;
  const std::vector<T> all = yt.gather();
  if (!y || f.rank() != 0) return;
  for (int64_t b = 0; b < L.s.P; ++b) {
    const PeCoord c = line_pe(L.R, L.s.reduce_axis, int32_t(b), root);
    const T* t = all.data() + (size_t(c.y - L.R.y0) * size_t(L.R.w) + size_t(c.x - L.R.x0)) * size_t(L.mt);
    for (int64_t i = 0; i < L.mt && b * L.mt + i < L.s.M; ++i) y[b * L.mt + i] = t[i];
  }
}

// The measurement window of a run (collectives for the report), or, with report = false, only the
// common start in virtual time.
std::optional<RunWindow> open_window(Fabric& f, const Layout& L, const GemvReport* rep) {
  if (rep && !L.s.report) throw std::logic_error("GEMV built with report = false cannot fill a report");
  std::optional<RunWindow> win;
  if (L.s.report) win.emplace(f, L.R);
  else f.barrier_clocks(L.R);
  return win;
}

// run() of either GEMV: x (K) from every rank placed in the x layout, run_tiles, y gathered.
template <class Gemv, class Impl, class TX, class TY>
GemvReport run_global(Gemv& g, Impl& m, const TX* x, TY* y) {
  const Layout& L = m.L;
  TileBuf<TX> xt(m.f, L.R, size_t(L.kt), "x block");
  xt.for_each_local([&](int32_t px, int32_t py, TX* t) { L.cut_x(x, L.xblock(px, py), t); });
  GemvReport rep;
  TileBuf<TY> yt = g.run_tiles(xt, &rep);
  gather_y(m.f, L, yt, m.root.root, y);
  return rep;
}

}  // namespace

// ------------------------------------------------------------------ ternary
// Batching (DESIGN.md §2): integer sums are exact in any order, so a rank multiplies all of its PEs'
// blocks in one kernel call. Its PEs form a rectangle of lines (outputs) x positions (inputs); the
// fused matrix is the W sub-matrix of those output and input blocks, and the rank's partial sum of
// each line goes to the line's first local PE (zeros to the others). The allreduce then yields
// exactly the sums that per-PE GEMVs would, while every PE is charged its own block.
struct MeshGemvTernary::Impl {
  Fabric& f;
  Layout L;
  Region local;                     // the region's PEs on this rank
  int32_t line0 = 0, lines = 0;     // local lines (output blocks)
  int32_t pos0 = 0, positions = 0;  // local positions (input blocks)
  kernels::TernaryMatrixLut fused;  // (lines * mt, positions * kt)
  std::unique_ptr<SramCharge> sram;
  std::unique_ptr<LineAllreduce<int32_t>> ar;  // prepared once: plans, scratch, routes
  AllreduceStats root;  // of the last run: where the result sits when not broadcast
  bool timing_only = false;   // no weights: the block GEMVs are charged, not computed (zero sums)
  bool fused_sum = false;     // the line sums from the ranks' partials (broadcast allreduce only)
  std::vector<int32_t> sums;  // (P lines, mt): this rank's partials, then the line sums
  int line_ranks = 1;         // ranks sharing the lines (the reduce axis' line communicator)
  std::vector<int32_t> gathered;  // (line_ranks, P lines, mt): the partials of each of them
  // local_partials' buffers, kept from run to run (a decoded token runs every GEMV once).
  std::vector<int8_t> xs;         // (positions, kt): the local x blocks
  kernels::LutTables tables;      // of xs
  std::vector<int32_t> partials;  // (local lines, mt)
  Impl(Fabric& fab, const GemvSpec& s) : f(fab), L(s) {}
  // The fused GEMV of the local blocks: (local lines, mt) partial sums of x's local blocks, in
  // `partials`.
  const std::vector<int32_t>& local_partials(const TileBuf<int8_t>& xt);
  // With fused_sum, the whole GEMV but the y tiles: the local blocks' partials, every PE charged
  // its block, the line sums into `sums` (every line's, on every rank sharing it) and the
  // allreduce's steps for their figures.
  void fused_gemv(const TileBuf<int8_t>& xt);
  // The line sums from the partials of the ranks sharing the lines, into `sums` on each of them.
  void exchange_line_sums();
};

const std::vector<int32_t>& MeshGemvTernary::Impl::local_partials(const TileBuf<int8_t>& xt) {
  const size_t n = static_cast<size_t>(int64_t(lines) * L.mt);
  if (timing_only) {
    partials.assign(n, 0);
    return partials;
  }
  const bool ax = L.along_x();
  // The local x blocks, in position order, from the first local line.
  xs.resize(static_cast<size_t>(int64_t(positions) * L.kt));
  for (int32_t p = 0; p < positions; ++p) {
    const int32_t px = ax ? local.x0 + p : local.x0, py = ax ? local.y0 : local.y0 + p;
    std::copy(xt.tile(px, py), xt.tile(px, py) + L.kt, xs.begin() + int64_t(p) * L.kt);
  }
  partials.resize(n);  // every element written by the kernel
  tables.assign_int8(xs.data(), 1, int64_t(xs.size()), int64_t(xs.size()));
  kernels::lut_gemv_i32(fused, tables, partials.data());
  return partials;
}

void MeshGemvTernary::Impl::fused_gemv(const TileBuf<int8_t>& xt) {
  std::fill(sums.begin(), sums.end(), 0);
  if (!local.empty()) {
    const std::vector<int32_t>& ys = local_partials(xt);
    std::copy(ys.begin(), ys.end(), sums.begin() + int64_t(line0) * L.mt);
  }
  // Integer sums are exact in any order: the sum of each line is the sum of the ranks' partial
  // sums, exchanged once per GEMV among the ranks sharing lines; the block products' compute task
  // and the allreduce's steps run for their clocks and counters only (one recording: a replay
  // applies both), so every figure is what run() would give.
  exchange_line_sums();
  root = ar->run_timing(uint64_t(L.mt * L.kt), Work::ternary);
}

void MeshGemvTernary::Impl::exchange_line_sums() {
  if (line_ranks == 1) return;
  // An allgather of the partials and a local sum, not MPI_Allreduce: Open MPI's allreduce of a few
  // ten KB between two ranks takes 2-3 times the time of an allgather of the same bytes (17 us
  // against 7 us for 28 KB here: results/probes/mpi_collectives.c), and this exchange runs for every GEMV
  // of a decoded token. Integer sums are exact in any order, so the result is MPI_SUM's.
  const size_t n = sums.size();
  gathered.resize(n * size_t(line_ranks));
  MPI_Allgather(sums.data(), int(n), mpi_type<int32_t>(), gathered.data(), int(n), mpi_type<int32_t>(),
                f.line_comm(L.s.reduce_axis));
  std::copy(gathered.begin(), gathered.begin() + std::ptrdiff_t(n), sums.begin());
  for (int r = 1; r < line_ranks; ++r) {
    const int32_t* g = gathered.data() + size_t(r) * n;
    // Added as unsigned, where wrap-around is defined (a real GEMV's sums stay far inside int32).
    for (size_t i = 0; i < n; ++i) sums[i] = int32_t(uint32_t(sums[i]) + uint32_t(g[i]));
  }
}

namespace {
// mt x kt of a block, refusing a block whose fp32 bytes would not fit 63 bits (an error quoting
// its shape, not a wrapped small number).
uint64_t block_weights(const Layout& L) {
  if (!checked_product({L.mt, L.kt, 4}))
    throw LimitError("a GEMV block of " + std::to_string(L.mt) + " x " + std::to_string(L.kt) +
                     " weights needs more than 2^63 bytes of a PE's SRAM");
  return uint64_t(L.mt) * uint64_t(L.kt);
}
}  // namespace

uint64_t gemv_block_bytes(const GemvSpec& s, bool ternary, const MachineParams& mp) {
  const uint64_t n = block_weights(Layout(s));
  if (!ternary) return n * mp.wafer_fp_bytes();
  return mp.wafer_ternary_bytes(n) + mp.wafer_fp_bytes();  // the codes, and the tensor's scale
}

uint64_t gemv_host_block_bytes(const GemvSpec& s) {
  const Layout L(s);
  block_weights(L);
  // Computed from the shape, never by packing a probe block (which allocates mt x kt bytes).
  return uint64_t(kernels::TernaryMatrixLut::serialized_bytes(L.mt, L.kt));  // packed records + row counts
}

MeshGemvTernary::MeshGemvTernary(Fabric& f, const GemvSpec& s, const int8_t* W) : impl_(std::make_unique<Impl>(f, s)) {
  check_gemv_spec(f.mesh(), s);
  Impl& m = *impl_;
  const Layout& L = m.L;
  // Every PE holds one mt x kt block in the wafer's format and the scale: that is what its SRAM
  // pays for (the host's LUT packing below is its own affair).
  const uint64_t bytes = gemv_block_bytes(s, true, f.params());
  m.sram = std::make_unique<SramCharge>(f, L.R, bytes, "ternary weights of a GEMV block");
  m.local = L.R.intersect(f.block());
  m.timing_only = W == nullptr;
  if (!m.local.empty()) {
    const bool ax = L.along_x();
    m.line0 = ax ? L.r(m.local.y0) : L.c(m.local.x0);
    m.lines = ax ? m.local.h : m.local.w;
    m.pos0 = ax ? L.c(m.local.x0) : L.r(m.local.y0);
    m.positions = ax ? m.local.w : m.local.h;
  }
  if (!m.local.empty() && !m.timing_only) {
    const int64_t rows = int64_t(m.lines) * L.mt, cols = int64_t(m.positions) * L.kt;
    std::vector<int8_t> sub(static_cast<size_t>(rows * cols));
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t gi = int64_t(m.line0) * L.mt + i;
      for (int64_t k = 0; k < cols; ++k) {
        const int64_t gk = int64_t(m.pos0) * L.kt + k;
        sub[size_t(i * cols + k)] = gi < s.M && gk < s.K ? W[gi * s.K + gk] : 0;
      }
    }
    m.fused = kernels::TernaryMatrixLut::from_int8(sub.data(), rows, cols, cols);
  }
  m.ar = std::make_unique<LineAllreduce<int32_t>>(f, L.R, s.reduce_axis, size_t(L.mt), s.allreduce);
  m.fused_sum = s.allreduce.broadcast;
  if (m.fused_sum) {
    m.sums.assign(static_cast<size_t>(int64_t(s.P) * L.mt), 0);
    MPI_Comm_size(f.line_comm(s.reduce_axis), &m.line_ranks);  // made now (collective), not in the first run
  }
}

MeshGemvTernary::~MeshGemvTernary() = default;

TileBuf<int32_t> MeshGemvTernary::run_tiles(const TileBuf<int8_t>& xt, GemvReport* rep) {
  Impl& m = *impl_;
  Fabric& f = m.f;
  const Layout& L = m.L;
  if (!(xt.region() == L.R) || xt.elems() != size_t(L.kt)) throw std::logic_error("x tiles do not match the GEMV");
  std::optional<RunWindow> win = open_window(f, L, rep);
  TileBuf<int32_t> yt(f, L.R, size_t(L.mt), "y partial sums", TileBuf<int32_t>::NoInit{});  // every tile written below
  if (m.fused_sum) {
    m.fused_gemv(xt);
    // Every PE of a line holds the line's sum: written once per line (TileBuf::for_each_line_head).
    yt.for_each_line_head(L.s.reduce_axis, [&](int32_t px, int32_t py, int32_t* t) {
      const int64_t line = line_of(px, py);
      std::copy(m.sums.begin() + line * L.mt, m.sums.begin() + (line + 1) * L.mt, t);
    });
  } else {
    if (!m.local.empty()) {
      const bool ax = L.along_x();
      const std::vector<int32_t>& ys = m.local_partials(xt);
      yt.for_each_local([&](int32_t px, int32_t py, int32_t* t) {
        const int32_t line = (ax ? L.r(py) : L.c(px)) - m.line0;
        const bool first = ax ? px == m.local.x0 : py == m.local.y0;
        if (first) std::copy(ys.begin() + int64_t(line) * L.mt, ys.begin() + int64_t(line + 1) * L.mt, t);
        else std::fill(t, t + L.mt, 0);
      });
    }
    f.charge_compute(L.R, uint64_t(L.mt * L.kt), Work::ternary);
    m.root = m.ar->run(yt);
  }
  if (rep) *rep = gemv_report(*win, m.root);
  else if (win) win->finish();
  return yt;
}

bool MeshGemvTernary::has_line_sums() const { return impl_->fused_sum; }

int64_t MeshGemvTernary::line_of(int32_t x, int32_t y) const {
  const Layout& L = impl_->L;
  return L.along_x() ? L.r(y) : L.c(x);
}

MeshGemvTernary::LineSums MeshGemvTernary::run_line_sums(const TileBuf<int8_t>& xt) {
  Impl& m = *impl_;
  Fabric& f = m.f;
  const Layout& L = m.L;
  if (!m.fused_sum) throw std::logic_error("run_line_sums: the GEMV's allreduce does not broadcast");
  if (!(xt.region() == L.R) || xt.elems() != size_t(L.kt)) throw std::logic_error("x tiles do not match the GEMV");
  std::optional<RunWindow> win = open_window(f, L, nullptr);
  // run_tiles' y tiles, on the wafer (the bytes and the text of an overflow are theirs).
  SramCharge tiles(f, L.R, uint64_t(L.mt) * wafer_elem_bytes<int32_t>(f.params()), "tile buffer 'y partial sums'");
  m.fused_gemv(xt);
  if (win) win->finish();
  return {m.sums.data(), std::move(tiles)};
}

GemvReport MeshGemvTernary::run(const int8_t* x, int32_t* y) { return run_global(*this, *impl_, x, y); }

// ------------------------------------------------------------------ fp32
struct MeshGemvF32::Impl {
  Fabric& f;
  Layout L;
  // Each PE's stationary (mt, kt) block in row panels: fp32, or bf16 when every weight is exact in
  // bf16 (kernels::gemv_bf16_panels: the same arithmetic on half the host bytes, which a decode
  // GEMV streams from memory). The wafer's SRAM is charged at wafer.dtype either way.
  std::unique_ptr<TileBuf<float>> w;
  std::unique_ptr<SramCharge> wb_sram;        // the fp32 bytes of the bf16 blocks
  std::unique_ptr<TileBuf<std::uint16_t>> wb;  // uncharged: wb_sram pays for it
  std::unique_ptr<LineAllreduce<float>> ar;
  AllreduceStats root;
  bool timing_only = false;  // no weights (wb_sram pays for them): zero partial sums, compute charged
  Impl(Fabric& fab, const GemvSpec& s) : f(fab), L(s) {}
};

MeshGemvF32::MeshGemvF32(Fabric& f, const GemvSpec& s, const float* W) : impl_(std::make_unique<Impl>(f, s)) {
  check_gemv_spec(f.mesh(), s);
  Impl& m = *impl_;
  const Layout& L = m.L;
  const std::string name = "fp32 weights of a GEMV block";
  const size_t elems = size_t(L.mt * L.kt);
  m.timing_only = W == nullptr;
  if (m.timing_only) {
    m.wb_sram = std::make_unique<SramCharge>(f, L.R, elems * f.params().wafer_fp_bytes(), "tile buffer '" + name + "'");
    m.ar = std::make_unique<LineAllreduce<float>>(f, L.R, s.reduce_axis, size_t(L.mt), s.allreduce);
    return;
  }
  // Every rank decides from the whole matrix, so all store alike (the choice changes no result).
  if (kernels::bf16_exact(s.M, s.K, W, s.K)) {
    m.wb_sram = std::make_unique<SramCharge>(f, L.R, elems * f.params().wafer_fp_bytes(), "tile buffer '" + name + "'");
    m.wb = std::make_unique<TileBuf<std::uint16_t>>(f, L.R, elems, name, TileBuf<std::uint16_t>::Uncharged{});
  } else {
    m.w = std::make_unique<TileBuf<float>>(f, L.R, elems, name, TileBuf<float>::NoInit{});
  }
  // Row panels (kernels::pack_f32_panels): the block GEMV reads 16 rows per vector load.
  std::vector<float> block(elems);
  const Region l = L.R.intersect(f.block());
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y)
    for (int32_t x = l.x0; x < l.x0 + l.w; ++x) {
      const auto [bi, bk] = L.wblock(x, y);
      L.cut_w(W, bi, bk, block.data());
      if (m.wb) kernels::pack_bf16_panels(L.mt, L.kt, block.data(), L.kt, m.wb->tile(x, y));
      else kernels::pack_f32_panels(L.mt, L.kt, block.data(), L.kt, m.w->tile(x, y));
    }
  m.ar = std::make_unique<LineAllreduce<float>>(f, L.R, s.reduce_axis, size_t(L.mt), s.allreduce);
}

MeshGemvF32::~MeshGemvF32() = default;

bool MeshGemvF32::host_bf16() const { return impl_->wb != nullptr; }

TileBuf<float> MeshGemvF32::run_tiles(const TileBuf<float>& xt, GemvReport* rep) {
  Impl& m = *impl_;
  Fabric& f = m.f;
  const Layout& L = m.L;
  if (!(xt.region() == L.R) || xt.elems() != size_t(L.kt)) throw std::logic_error("x tiles do not match the GEMV");
  std::optional<RunWindow> win = open_window(f, L, rep);
  if (m.timing_only) {
    TileBuf<float> yt(f, L.R, size_t(L.mt), "y partial sums", TileBuf<float>::NoInit{});
    yt.for_each_local([&](int32_t, int32_t, float* t) { std::fill(t, t + L.mt, 0.0f); });
    f.charge_compute(L.R, uint64_t(L.mt * L.kt));
    m.root = m.ar->run(yt);
    if (rep) *rep = gemv_report(*win, m.root);
    else if (win) win->finish();
    return yt;
  }
  TileBuf<float> yt(f, L.R, size_t(L.mt), "y partial sums", TileBuf<float>::NoInit{});  // every PE writes all
  const Region l = L.R.intersect(f.block());
  auto pe = [&](int64_t i) {
    const int32_t px = l.x0 + int32_t(i % l.w), py = l.y0 + int32_t(i / l.w);
    if (m.wb) kernels::gemv_bf16_panels(L.mt, L.kt, m.wb->tile(px, py), xt.tile(px, py), yt.tile(px, py), false);
    else kernels::gemv_f32_panels(L.mt, L.kt, m.w->tile(px, py), xt.tile(px, py), yt.tile(px, py), false);
  };
  if (l.size() * L.mt * L.kt < (int64_t{1} << 16)) {  // small: no OpenMP construct (team set-up costs more)
    for (int64_t i = 0; i < l.size(); ++i) pe(i);
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < l.size(); ++i) pe(i);
  }
  f.charge_compute(L.R, uint64_t(L.mt * L.kt));
  m.root = m.ar->run(yt);
  if (rep) *rep = gemv_report(*win, m.root);
  else if (win) win->finish();
  return yt;
}

GemvReport MeshGemvF32::run(const float* x, float* y) { return run_global(*this, *impl_, x, y); }

std::vector<float> gemv_f32_reference(const GemvSpec& s, const float* W, const float* x) {
  const Layout L(s);
  std::vector<float> y(size_t(s.M));
  std::vector<float> w(size_t(L.mt * L.kt)), xb(size_t(L.kt));
  for (int64_t bi = 0; bi < s.P; ++bi) {
    std::vector<std::vector<float>> partial;  // in line order: input block j at position j
    for (int64_t bk = 0; bk < s.P; ++bk) {
      L.cut_w(W, bi, bk, w.data());
      L.cut_x(x, bk, xb.data());
      std::vector<float> p(size_t(L.mt));
      kernels::gemv_f32_ref(L.mt, L.kt, w.data(), L.kt, xb.data(), p.data(), false);
      partial.push_back(p);
    }
    const std::vector<float> sum = allreduce_line_reference(s.allreduce, partial);
    for (int64_t i = 0; i < L.mt && bi * L.mt + i < s.M; ++i) y[size_t(bi * L.mt + i)] = sum[size_t(i)];
  }
  return y;
}

}  // namespace wm::dist
