#pragma once
// Calibration of the cost model (DESIGN.md section 3, "Calibration") against hardware
// microbenchmarks: MeshGEMM, MeshGEMV with the K-tree allreduce, and a shift of a whole region's
// tiles by L PEs. A measurement file lists points with their measured cycles; model_point runs
// the same point on a fresh emulated machine and returns its virtual cycles; fit_cost_model fits
// machine parameters to the points.
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "wafermesh/noc/fabric.hpp"
#include "wafermesh/noc/params.hpp"

namespace wm::cli {

enum class MicroKind { gemm, gemv, shift };

struct MicroPoint {
  MicroKind kind = MicroKind::gemm;
  int64_t P = 1;            // region side, PEs (P x P)
  int64_t n = 1;            // gemm: M = K = N; gemv: M = K; shift: unused
  int64_t groups = 0;       // gemv: K-tree groups of level 1
  int64_t L = 0;            // shift: distance, PEs
  int64_t tile_bytes = 0;   // shift: bytes of each PE's tile
  double measured_lo = 0;   // measured cycles (a range when the source gives one)
  double measured_hi = 0;
  std::string source;       // where the figure comes from
  int line = 0;             // line of the measurement file, for messages

  double measured() const { return 0.5 * (measured_lo + measured_hi); }
  std::string label() const;  // e.g. "gemm P=720 n=5760"
};

const char* micro_kind_name(MicroKind k);

// Reads a measurement file (CSV: kind,P,n,groups,L,tile_bytes,cycles_lo,cycles_hi,source; '#'
// starts a comment line). Throws UsageError naming the file, line and value on malformed input.
std::vector<MicroPoint> read_measurements(const std::string& path);

// Every PE of the P x P region `r` sends its tile of `tile_bytes` bytes L PEs along `axis` (the
// last L PEs' tiles leave the region, the first L PEs receive none); returns the virtual cycles
// from the common start to the last PE done. Collective.
uint64_t region_shift_cycles(Fabric& f, const Region& r, Axis axis, int64_t L, int64_t tile_bytes);

// Runs `p` on a fresh machine of `mp` (a P x P mesh, so the point's size alone decides the host
// memory) and returns its virtual cycles. GEMM is MeshGEMM, C = A B, fp32, preskewed (the
// published cycles are of the multiplication phase; GemmSpec::preskewed) and timing-only
// (GemmSpec::compute = false: the same cycles as a full run, see tests/dist/test_gemm.cpp); GEMV
// (fp32, one element per PE when n = P) and the shift run in full. A shift point needs L + 1 route
// entries at the PEs its streams pass; the route limit is lifted to that for the point (a wafer
// implements the pattern with switches; only its cycles are compared). Collective.
uint64_t model_point(MPI_Comm comm, const MachineParams& mp, const MicroPoint& p);

// A machine parameter being fitted: a numeric machine option (noc.alpha_cycles, ...), its bounds,
// and whether it is an integer (then it moves in whole steps).
struct FitParam {
  std::string name;
  bool integer = false;
  double lo = 0, hi = 0;
  double get(const MachineParams& mp) const;
  void set(MachineParams& mp, double v) const;
  double clamp(double v) const;  // into [lo, hi], rounded when integer
};

// The named cost parameters; UsageError for a name that is not one (or is named twice). "none"
// alone gives no parameters.
std::vector<FitParam> resolve_fit(const std::vector<std::string>& names);

struct FitOutcome {
  std::vector<double> start, fitted;               // parameter values, in the order given
  std::vector<uint64_t> start_cycles, fitted_cycles;  // modelled cycles of every point
  double start_cost = 0, fitted_cost = 0;          // sum over points of log(modelled / measured)^2
  size_t evaluations = 0;                          // emulated runs of the whole point set
};

// Called after every evaluation of the point set: the parameter values, the cost and the largest
// relative error |modelled / measured - 1|.
using FitProgress = std::function<void(const std::vector<double>& theta, double cost, double max_rel_error)>;

// Levenberg-Marquardt on r_i = log(modelled_i / measured_i), from the values `base` holds (clamped
// to the bounds); the Jacobian by finite differences (integers by at least one, reals by 10%).
// Stops after `iterations`, when no step lowers the cost, or when a step rounds to the current
// values. Every evaluation runs every point (model_point). Collective.
FitOutcome fit_cost_model(MPI_Comm comm, const MachineParams& base, const std::vector<FitParam>& fit,
                          const std::vector<MicroPoint>& pts, int64_t iterations, const FitProgress& progress);

}  // namespace wm::cli
