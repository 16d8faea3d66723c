#include "wafermesh/dist/gemm.hpp"

#include <mpi.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>

#include "wafermesh/dist/gemm_policies.hpp"
#include "wafermesh/dist/run_window.hpp"
#include "wafermesh/kernels/fp32_gemm.hpp"
#include "wafermesh/mesh/mpi_traits.hpp"
#include "wafermesh/noc/primitives.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::dist {

GemmAlgo gemm_algo_from_name(const std::string& name) {
  if (name == "meshgemm") return GemmAlgo::meshgemm;
  if (name == "cannon") return GemmAlgo::cannon;
  if (name == "summa") return GemmAlgo::summa;
  throw UsageError("unknown GEMM algorithm '" + name + "' (choose meshgemm, cannon or summa)");
}

const char* gemm_algo_name(GemmAlgo a) {
  switch (a) {
    case GemmAlgo::meshgemm: return "meshgemm";
    case GemmAlgo::cannon: return "cannon";
    case GemmAlgo::summa: return "summa";
  }
  return "?";
}

void check_gemm_spec(const MeshShape& m, const GemmSpec& s) {
  auto num = [](int64_t v) { return std::to_string(v); };
  if (s.P < 1) throw UsageError("gemm region side P = " + num(s.P) + ": must be >= 1");
  if (s.M < 1 || s.K < 1 || s.N < 1)
    throw UsageError("gemm shape " + num(s.M) + " x " + num(s.K) + " x " + num(s.N) + ": every dimension must be >= 1");
  if (s.preskewed && (s.algo == GemmAlgo::summa || s.transpose_b))
    throw UsageError(std::string("gemm preskewed operands: only for C = A B with meshgemm or cannon (not ") +
                     (s.transpose_b ? "C = A B^T" : "summa") + ")");
  if (s.origin.x < 0 || s.origin.y < 0 || s.origin.x + s.P > m.width || s.origin.y + s.P > m.height)
    throw UsageError("gemm region " + num(s.P) + " x " + num(s.P) + " at (" + num(s.origin.x) + ", " +
                     num(s.origin.y) + ") does not fit the " + num(m.width) + " x " + num(m.height) + " mesh");
}

namespace {

// A plan kept by the fabric (Fabric::kept_plan) for as long as a step uses it: its routes are
// given back when the holder goes, as destroying a plan of the step's own would.
class KeptPlan {
 public:
  KeptPlan(Fabric& f, const std::string& key, const std::function<TransferPlan()>& make) : p_(f.kept_plan(key, make)) {}
  ~KeptPlan() { p_->release_routes(); }
  KeptPlan(const KeptPlan&) = delete;
  KeptPlan& operator=(const KeptPlan&) = delete;
  TransferPlan& operator*() const { return *p_; }

 private:
  std::shared_ptr<TransferPlan> p_;
};

std::string plan_key(const char* what, const Region& R, Axis axis, const LinePerm& perm, size_t tile_bytes) {
  return std::string(what) + (axis == Axis::X ? " X " : " Y ") + R.str() + " " + perm.name() + " " +
         std::to_string(tile_bytes);
}

// Moves the tile at logical position l of every line to l + amount(logical line) (mod P), the
// shorter way round, one logical place per step: at most P/2 steps. The fabric keeps the steps'
// plans under `amount_name` (which must name `amount`): every MeshGEMM on a region skews alike.
template <class T>
void skew(Fabric& f, const Region& R, TileBuf<T>& buf, Axis axis, const LinePerm& perm,
          const std::function<int64_t(int32_t)>& amount, const char* amount_name) {
  const int32_t P = R.w;
  std::vector<int64_t> dir(static_cast<size_t>(P)), count(static_cast<size_t>(P));
  int64_t steps = 0;
  for (int32_t line = 0; line < P; ++line) {
    const int64_t a = ((amount(perm.logical(line)) % P) + P) % P;
    dir[size_t(line)] = a <= P - a ? +1 : -1;
    count[size_t(line)] = std::min(a, P - a);
    steps = std::max(steps, count[size_t(line)]);
  }
  if (steps == 0) return;
  const std::string base = plan_key("skew", R, axis, perm, buf.bytes_per_pe()) + " by " + amount_name;
  // The routes of the first step (every line that moves) stay configured for the whole skew: a
  // line moves in steps 0 .. count - 1 and its PEs hold no other routes meanwhile, so every PE's
  // route entries and peak are those of its line's steps, and no step configures routes of its own.
  std::vector<int64_t> d(static_cast<size_t>(P));
  for (int32_t line = 0; line < P; ++line) d[size_t(line)] = count[size_t(line)] > 0 ? dir[size_t(line)] : 0;
  const std::string key = "skew routes " + std::string(axis == Axis::X ? "X" : "Y") + " on " + R.str();
  KeptPlan first(f, base + " routes", [&] {
    TransferPlan p = plan_shift_lines(f, R, axis, d, true, perm, buf.bytes_per_pe(), "skew on " + R.str());
    p.share_routes(key);
    return p;
  });
  f.configure_routes(*first);
  for (int64_t t = 0; t < steps; ++t) {
    KeptPlan p(f, base + " step " + std::to_string(t), [&] {
      for (int32_t line = 0; line < P; ++line) d[size_t(line)] = t < count[size_t(line)] ? dir[size_t(line)] : 0;
      TransferPlan q = plan_shift_lines(f, R, axis, d, true, perm, buf.bytes_per_pe(),
                                        std::string("skew step ") + std::to_string(t) + " on " + R.str());
      q.share_routes(key);  // a subset of the configured routes
      return q;
    });
    f.execute(*p, buf.view(), buf.view());
  }
}

// c {=, +=} a b for every local PE of R in one batched call (threads over PEs), charging every PE
// its block product.
template <class Pol>
void compute_all(Fabric& f, const Region& R, const Pol& pol, const TileBuf<typename Pol::TA>& a,
                 const TileBuf<typename Pol::TB>& b, TileBuf<typename Pol::TC>& c, bool accumulate) {
  const Region l = R.intersect(f.block());
  const int64_t n = l.size();
  if (!pol.compute) {  // timing only: charged, not computed
    f.charge_compute(R, pol.macs(), Pol::work);
    return;
  }
  if constexpr (requires { pol.small(); }) {
    if (pol.small()) {  // tiny tiles: one tight loop, no threads
      if (pol.macs() == 1) {  // one element each: c = c + (0 + a b), gemm_f32_ref's order
        for (int64_t i = 0; i < n; ++i) {
          const float p = 0.0f + *a.local_tile(size_t(i)) * *b.local_tile(size_t(i));
          float& ci = *c.local_tile(size_t(i));
          ci = accumulate ? ci + p : p;
        }
      } else {
        for (int64_t i = 0; i < n; ++i)
          pol.mul_small(a.local_tile(size_t(i)), b.local_tile(size_t(i)), c.local_tile(size_t(i)), accumulate);
      }
      f.charge_compute(R, pol.macs(), Pol::work);
      return;
    }
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const int32_t x = l.x0 + int32_t(i % l.w), y = l.y0 + int32_t(i / l.w);
    pol.mul(a.tile(x, y), b.tile(x, y), c.tile(x, y), accumulate);
  }
  f.charge_compute(R, pol.macs(), Pol::work);
}

template <class Pol>
struct Run {
  using TA = typename Pol::TA;
  using TB = typename Pol::TB;
  using TC = typename Pol::TC;
  Fabric& f;
  const GemmSpec& s;
  const Pol& pol;
  Region R;
  LinePerm perm;
  uint64_t max_latency = 0;

  void note(const TransferPlan& p) { max_latency = std::max(max_latency, p.max_latency_cycles()); }
  // The ring shift by one logical place back along `axis` of every MeshGEMM step, kept by the fabric.
  KeptPlan shift_plan(Axis axis, size_t tile_bytes) const {
      return KeptPlan(f, plan_key("shift -1", R, axis, perm, tile_bytes),
                    [&] { return plan_shift(f, R, axis, -1, true, perm, tile_bytes); });
  }
  // B tiles, charged as the wafer holds them (packed ternary weights: wafer.ternary_format).
  std::unique_ptr<TileBuf<TB>> b_tiles(const std::string& name) const {
    return std::make_unique<TileBuf<TB>>(f, R, pol.b_elems(), name,
                                         typename TileBuf<TB>::WaferBytes{pol.b_wafer_bytes(f.params())});
  }
  std::pair<int32_t, int32_t> logical(int32_t x, int32_t y) const {
    return {perm.logical(y - R.y0), perm.logical(x - R.x0)};
  }

  // meshgemm / cannon, C = A B.
  //
  // Double buffering: the next tiles leave (their departure clocks are taken) before the step's
  // compute and arrive during it; the second buffer each PE needs for that is charged to its SRAM.
  // The emulation moves the data in place after the compute has read the old tiles.
  TileBuf<TC> cannon(TileBuf<TA>& a, TileBuf<TB>& b) {
    const int32_t P = s.P;
    if (!s.preskewed) {
      skew(f, R, a, Axis::X, perm, [](int32_t r) { return -int64_t(r); }, "-line");
      skew(f, R, b, Axis::Y, perm, [](int32_t c) { return -int64_t(c); }, "-line");
    }
    TileBuf<TC> c(f, R, pol.c_elems(), "C tiles");
    const bool db = s.double_buffer && P > 1;
    std::unique_ptr<SramCharge> a2, b2;
    if (db) {
      a2 = std::make_unique<SramCharge>(f, R, a.bytes_per_pe(), "tile buffer 'A tiles (second buffer)'");
      b2 = std::make_unique<SramCharge>(f, R, b.bytes_per_pe(), "tile buffer 'B tiles (second buffer)'");
    }
    const KeptPlan pa = shift_plan(Axis::X, a.bytes_per_pe()), pb = shift_plan(Axis::Y, b.bytes_per_pe());
    note(*pa);
    note(*pb);
    for (int32_t step = 0; step < P; ++step) {
      const bool more = step + 1 < P;
      compute_all(f, R, pol, a, b, c, true);
      if (!more) break;
      // Double-buffered, the tiles left before the compute (which took the same cycles on every PE).
      const Depart dep = db ? Depart::before(f.cost().compute_cycles(pol.macs(), Pol::work)) : Depart::now();
      f.execute(*pa, a.view(), a.view(), db ? Sync::defer : Sync::wait, dep);
      f.execute(*pb, b.view(), b.view(), db ? Sync::defer : Sync::wait, dep);
      if (db) f.wait_arrivals();
    }
    return c;
  }

  // meshgemm / cannon, C = A B^T with B (N, K): B moves along Y, partial sums of C along X.
  TileBuf<TC> cannon_t(TileBuf<TA>& a, TileBuf<TB>& b) {
    const int32_t P = s.P;
    skew(f, R, b, Axis::Y, perm, [](int32_t c) { return -int64_t(c); }, "-line");
    TileBuf<TC> acc(f, R, pol.c_elems(), "C partial sums");
    const bool db = s.double_buffer && P > 1;
    std::unique_ptr<SramCharge> b2, acc2;
    if (db) {
      b2 = std::make_unique<SramCharge>(f, R, b.bytes_per_pe(), "tile buffer 'B tiles (second buffer)'");
      acc2 = std::make_unique<SramCharge>(f, R, acc.bytes_per_pe(), "tile buffer 'C partial sums (second buffer)'");
    }
    const KeptPlan pb = shift_plan(Axis::Y, b.bytes_per_pe()), pc = shift_plan(Axis::X, acc.bytes_per_pe());
    note(*pb);
    note(*pc);
    for (int32_t step = 0; step < P; ++step) {
      const bool more = step + 1 < P;
      compute_all(f, R, pol, a, b, acc, true);
      if (!more) break;
      if (db) {
        // B was already on its way during the compute (the same cycles on every PE).
        f.execute(*pb, b.view(), b.view(), Sync::defer, Depart::before(f.cost().compute_cycles(pol.macs(), Pol::work)));
        f.execute(*pc, acc.view(), acc.view(), Sync::defer);  // the partial sums leave once computed
        f.wait_arrivals();
      } else {
        f.execute(*pc, acc.view(), acc.view());
        f.execute(*pb, b.view(), b.view());
      }
    }
    // The partial sum of C[r][j] ends at column (j - r + 1) mod P: move it to column j.
    skew(f, R, acc, Axis::X, perm, [](int32_t r) { return int64_t(r) - 1; }, "line-1");
    return acc;
  }

  // summa, C = A B.
  TileBuf<TC> summa(TileBuf<TA>& a, TileBuf<TB>& b) {
    const int32_t P = s.P;
    const int nb = s.double_buffer && P > 1 ? 2 : 1;
    std::vector<std::unique_ptr<TileBuf<TA>>> ar;
    std::vector<std::unique_ptr<TileBuf<TB>>> br;
    for (int i = 0; i < nb; ++i) {
      ar.push_back(std::make_unique<TileBuf<TA>>(f, R, pol.a_elems(), "A broadcast buffer"));
      br.push_back(b_tiles("B broadcast buffer"));
    }
    TileBuf<TC> c(f, R, pol.c_elems(), "C tiles");
    std::vector<TransferPlan> ba, bb;  // every root's pattern stays configured: O(P) routes per PE
    for (int32_t k = 0; k < P; ++k) {
      ba.push_back(plan_broadcast(f, R, Axis::X, k, a.bytes_per_pe(), true));
      bb.push_back(plan_broadcast(f, R, Axis::Y, k, b.bytes_per_pe(), true));
      note(ba.back());
      note(bb.back());
    }
    f.execute(ba[0], a.view(), ar[0]->view());
    f.execute(bb[0], b.view(), br[0]->view());
    for (int32_t k = 0; k < P; ++k) {
      const bool more = k + 1 < P;
      const int cur = k % nb, nxt = (k + 1) % nb;
      if (more && nb == 2) {
        f.execute(ba[size_t(k + 1)], a.view(), ar[size_t(nxt)]->view(), Sync::defer);
        f.execute(bb[size_t(k + 1)], b.view(), br[size_t(nxt)]->view(), Sync::defer);
      }
      compute_all(f, R, pol, *ar[size_t(cur)], *br[size_t(cur)], c, true);
      if (!more) break;
      if (nb == 2) {
        f.wait_arrivals();
      } else {
        f.execute(ba[size_t(k + 1)], a.view(), ar[0]->view());
        f.execute(bb[size_t(k + 1)], b.view(), br[0]->view());
      }
    }
    return c;
  }

  // summa, C = A B^T: row k's B tiles go down the columns, a chain reduction along each row
  // collects C[r][k] at column k.
  TileBuf<TC> summa_t(TileBuf<TA>& a, TileBuf<TB>& b) {
    const int32_t P = s.P;
    const int nb = s.double_buffer && P > 1 ? 2 : 1;
    std::vector<std::unique_ptr<TileBuf<TB>>> br;
    for (int i = 0; i < nb; ++i)
      br.push_back(b_tiles("B broadcast buffer"));
    TileBuf<TC> c(f, R, pol.c_elems(), "C tiles");
    TileBuf<TC> part(f, R, pol.c_elems(), "C partial products");
    std::vector<TransferPlan> bb;
    for (int32_t k = 0; k < P; ++k) {
      bb.push_back(plan_broadcast(f, R, Axis::Y, k, b.bytes_per_pe(), true));
      note(bb.back());
    }
    f.execute(bb[0], b.view(), br[0]->view());
    for (int32_t k = 0; k < P; ++k) {
      const bool more = k + 1 < P;
      const int cur = k % nb, nxt = (k + 1) % nb;
      if (more && nb == 2) f.execute(bb[size_t(k + 1)], b.view(), br[size_t(nxt)]->view(), Sync::defer);
      compute_all(f, R, pol, a, *br[size_t(cur)], part, false);
      if (nb == 2 && more) f.wait_arrivals();
      reduce(f, part, Axis::X, k);
      for (int32_t y = R.y0; y < R.y0 + R.h; ++y)
        if (part.is_local(R.x0 + k, y))
          std::memcpy(c.tile(R.x0 + k, y), part.tile(R.x0 + k, y), c.elems() * sizeof(TC));
      if (more && nb == 1) f.execute(bb[size_t(k + 1)], b.view(), br[0]->view());
    }
    return c;
  }
};

template <class Pol>
TileBuf<typename Pol::TC> multiply(Run<Pol>& run, TileBuf<typename Pol::TA>& a, TileBuf<typename Pol::TB>& b) {
  const GemmSpec& s = run.s;
  return s.algo == GemmAlgo::summa ? (s.transpose_b ? run.summa_t(a, b) : run.summa(a, b))
                                   : (s.transpose_b ? run.cannon_t(a, b) : run.cannon(a, b));
}

template <class Pol>
GemmReport report_of(const RunFigures& fig, const Run<Pol>& run) {
  GemmReport rep;
  rep.total_cycles = fig.total_cycles;
  rep.compute_cycles = fig.compute_cycles;
  rep.comm_cycles = fig.comm_cycles;
  rep.max_hops = fig.summary.max_hops;
  rep.max_route_entries = fig.summary.max_route_peak_entries;
  rep.peak_sram_bytes = fig.summary.max_sram_peak_bytes;
  rep.noc_bytes = fig.noc_bytes;
  rep.max_step_latency_cycles = run.max_latency;
  rep.steps = uint64_t(run.s.P);
  rep.wall_s = fig.wall_s;
  return rep;
}

template <class Pol>
Run<Pol> make_run(Fabric& f, const GemmSpec& s, const Pol& pol) {
  check_gemm_spec(f.mesh(), s);
  return Run<Pol>{f, s, pol, Region{s.origin.x, s.origin.y, s.P, s.P}, gemm_line_perm(s)};
}

template <class T>
void check_tiles(const TileBuf<T>& t, const Region& R, size_t elems, const char* what) {
  if (!(t.region() == R) || t.elems() != elems)
    throw std::logic_error(std::string("gemm: the ") + what + " tiles do not match the spec (region " + R.str() +
                           ", " + std::to_string(elems) + " elements per PE)");
}

// Preskewed (s.preskewed), logical PE (r, c) starts with the tiles the skew would bring it: A's
// (r, c + r) and B's (r + c, c), mod P.
template <class Pol>
void load_a(const Run<Pol>& run, TileBuf<typename Pol::TA>& a, const typename Pol::GA* A) {
  const int32_t sk = run.s.preskewed ? 1 : 0;
  a.for_each_local([&](int32_t x, int32_t y, typename Pol::TA* t) {
    const auto [r, c] = run.logical(x, y);
    run.pol.load_a(A, r, (c + sk * r) % run.s.P, t);
  });
}

template <class Pol>
void load_b(const Run<Pol>& run, TileBuf<typename Pol::TB>& b, const typename Pol::GB* B) {
  const int32_t sk = run.s.preskewed ? 1 : 0;
  b.for_each_local([&](int32_t x, int32_t y, typename Pol::TB* t) {
    const auto [r, c] = run.logical(x, y);
    run.pol.load_b(B, (r + sk * c) % run.s.P, c, t);
  });
}

template <class Pol>
GemmReport run_gemm(Fabric& f, const GemmSpec& s, const Pol& pol, const typename Pol::GA* A,
                    const typename Pol::GB* B, typename Pol::TC* C) {
  using TA = typename Pol::TA;
  using TB = typename Pol::TB;
  using TC = typename Pol::TC;
  Run<Pol> run = make_run(f, s, pol);
  const Region& R = run.R;

  RunWindow win(f, R);  // every PE of the region starts at the same virtual time

  TileBuf<TA> a(f, R, pol.a_elems(), "A tiles");
  const std::unique_ptr<TileBuf<TB>> b = run.b_tiles("B tiles");
  if (s.compute) {  // (timing only: the tiles stay zero)
    load_a(run, a, A);
    load_b(run, *b, B);
  }
  TileBuf<TC> c = multiply(run, a, *b);
  const GemmReport rep = report_of(win.finish(), run);

  // The gather is collective: every rank takes part if any rank asked for C (rank 0 keeps it).
  int want = C != nullptr && s.compute;
  MPI_Allreduce(MPI_IN_PLACE, &want, 1, mpi_type<int>(), MPI_MAX, f.comm());
  if (want) {
    std::vector<TC> all = c.gather();
    if (C && f.rank() == 0) {
      const size_t ce = pol.c_elems();
      for (int32_t y = R.y0; y < R.y0 + R.h; ++y)
        for (int32_t x = R.x0; x < R.x0 + R.w; ++x) {
          const auto [r, cc] = run.logical(x, y);
          pol.store_c(all.data() + (size_t(y - R.y0) * size_t(R.w) + size_t(x - R.x0)) * ce, r, cc, C);
        }
    }
  }
  return rep;
}

// A as tiles; B as tiles (b_tiles) or from the host (B). The same steps as run_gemm.
template <class Pol>
TileBuf<typename Pol::TC> run_gemm_tiles(Fabric& f, const GemmSpec& s, const Pol& pol, TileBuf<typename Pol::TA>& a,
                                         TileBuf<typename Pol::TB>* b_tiles, const typename Pol::GB* B,
                                         GemmReport* rep) {
  using TB = typename Pol::TB;
  if (s.preskewed) throw std::logic_error("gemm: the tile entry points take operands in the unskewed placement");
  Run<Pol> run = make_run(f, s, pol);
  check_tiles(a, run.R, pol.a_elems(), "A");
  if (b_tiles) check_tiles(*b_tiles, run.R, pol.b_elems(), "B");
  // The measurement window (collectives for the report), or without a report only what the window
  // does to the PEs: the common start in virtual time and a new window for the peaks.
  std::optional<RunWindow> win;
  if (rep) {
    win.emplace(f, run.R);
  } else {
    f.barrier_clocks(run.R);
    f.reset_peaks();
  }
  std::unique_ptr<TileBuf<TB>> own_b;
  if (!b_tiles) {
    own_b = run.b_tiles("B tiles");
    if (s.compute) load_b(run, *own_b, B);  // timing only: B stays zero (B may be nullptr)
  }
  TileBuf<typename Pol::TC> c = multiply(run, a, b_tiles ? *b_tiles : *own_b);
  if (win) *rep = report_of(win->finish(), run);
  return c;
}

}  // namespace

GemmReport gemm_f32(Fabric& f, const GemmSpec& s, const float* A, const float* B, float* C) {
  const F32Policy pol(s);
  return run_gemm(f, s, pol, A, B, C);
}


GemmReport gemm_ternary(Fabric& f, const GemmSpec& s, const int8_t* A, const int8_t* B, int32_t* C) {
  const TernaryPolicy pol(s);
  return run_gemm(f, s, pol, A, B, C);
}

LinePerm gemm_line_perm(const GemmSpec& s) {
  return s.algo == GemmAlgo::meshgemm ? LinePerm::interleaved(s.P) : LinePerm::natural(s.P);
}

TileBuf<float> gemm_f32_tiles(Fabric& f, const GemmSpec& s, TileBuf<float>& a, const float* B, GemmReport* rep) {
  const F32Policy pol(s);
  return run_gemm_tiles(f, s, pol, a, nullptr, B, rep);
}

TileBuf<float> gemm_f32_tiles(Fabric& f, const GemmSpec& s, TileBuf<float>& a, TileBuf<float>& b, GemmReport* rep) {
  const F32Policy pol(s);
  return run_gemm_tiles(f, s, pol, a, &b, nullptr, rep);
}

TileBuf<int32_t> gemm_ternary_tiles(Fabric& f, const GemmSpec& s, TileBuf<int8_t>& a, const int8_t* B,
                                    GemmReport* rep) {
  const TernaryPolicy pol(s);
  return run_gemm_tiles(f, s, pol, a, nullptr, B, rep);
}

void gemm_f32_reference(const GemmSpec& s, const float* A, const float* B, float* C) {
  const F32Policy pol(s);
  const int32_t P = s.P;
  const int64_t mt = pol.mt, kt = pol.kt, nt = pol.nt;
  std::vector<float> a(pol.a_elems()), b(pol.b_elems()), acc(pol.c_elems()), part(pol.c_elems());
  auto block_product = [&](int32_t r, int32_t k, int32_t br, int32_t bc, float* out, bool accumulate) {
    pol.load_a(A, r, k, a.data());
    pol.load_b(B, br, bc, b.data());
    if (s.transpose_b)
      kernels::gemm_f32_abt_ref(mt, nt, kt, a.data(), kt, b.data(), kt, out, nt, accumulate);
    else
      kernels::gemm_f32_ref(mt, nt, kt, a.data(), kt, b.data(), nt, out, nt, accumulate);
  };
  for (int32_t r = 0; r < P; ++r)
    for (int32_t j = 0; j < P; ++j) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      if (s.algo != GemmAlgo::summa && !s.transpose_b) {
        for (int32_t st = 0; st < P; ++st) {
          const int32_t k = (r + j + st) % P;
          block_product(r, k, k, j, acc.data(), true);
        }
      } else if (s.algo != GemmAlgo::summa) {
        // The partial sum of C[r][j] visits columns (j - r - st) mod P, st = 0, 1, ...
        for (int32_t st = 0; st < P; ++st) {
          const int32_t c = (((j - r - st) % P) + P) % P;
          block_product(r, c, j, c, acc.data(), true);
        }
      } else if (!s.transpose_b) {
        for (int32_t k = 0; k < P; ++k) block_product(r, k, k, j, acc.data(), true);
      } else {
        // Chain reduction into column j: left ((p0 + p1) + ...), right ((p_{P-1} + p_{P-2}) + ...),
        // root (left + p_j) then right + that.
        auto p = [&](int32_t c) {
          block_product(r, c, j, c, part.data(), false);
          return part;
        };
        std::vector<float> left, right, root = p(j);
        if (j > 0) {
          left = p(0);
          for (int32_t c = 1; c < j; ++c) {
            const std::vector<float> pc = p(c);
            for (size_t e = 0; e < left.size(); ++e) left[e] = left[e] + pc[e];
          }
          for (size_t e = 0; e < root.size(); ++e) root[e] = left[e] + root[e];
        }
        if (j < P - 1) {
          right = p(P - 1);
          for (int32_t c = P - 2; c > j; --c) {
            const std::vector<float> pc = p(c);
            for (size_t e = 0; e < right.size(); ++e) right[e] = right[e] + pc[e];
          }
          for (size_t e = 0; e < root.size(); ++e) root[e] = right[e] + root[e];
        }
        acc = root;
      }
      pol.store_c(acc.data(), r, j, C);
    }
}

}  // namespace wm::dist
