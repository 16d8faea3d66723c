// Calibration microbenchmarks: the measurement file and the emulated run of each point.
#include "wafermesh/cli/calibration.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <variant>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "wafermesh/dist/gemm.hpp"
#include "wafermesh/dist/gemv.hpp"
#include "wafermesh/noc/primitives.hpp"
#include "wafermesh/noc/tile_buf.hpp"
#include "wafermesh/util/error.hpp"
#include "wafermesh/util/text.hpp"

namespace wm::cli {

const char* micro_kind_name(MicroKind k) {
  switch (k) {
    case MicroKind::gemm: return "gemm";
    case MicroKind::gemv: return "gemv";
    case MicroKind::shift: return "shift";
  }
  return "?";
}

std::string MicroPoint::label() const {
  std::string s = std::string(micro_kind_name(kind)) + " P=" + std::to_string(P);
  if (kind == MicroKind::gemm) s += " n=" + std::to_string(n);
  if (kind == MicroKind::gemv) s += " n=" + std::to_string(n) + " groups=" + std::to_string(groups);
  if (kind == MicroKind::shift) s += " L=" + std::to_string(L) + " tile=" + std::to_string(tile_bytes) + "B";
  return s;
}

std::vector<MicroPoint> read_measurements(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UsageError("measurement file '" + path + "': cannot be opened");
  std::vector<MicroPoint> pts;
  std::string line;
  int ln = 0;
  while (std::getline(in, line)) {
    ++ln;
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    const std::vector<std::string> f = split_trimmed(t, ',');
    const std::string where = "measurement file '" + path + "' line " + std::to_string(ln) + ": ";
    if (f.size() < 8 || f.size() > 9)
      throw UsageError(where + std::to_string(f.size()) +
                       " fields, need 8 or 9 (kind,P,n,groups,L,tile_bytes,cycles_lo,cycles_hi[,source])");
    if (f[0] == "kind") continue;  // a header line
    MicroPoint p;
    p.line = ln;
    if (f[0] == "gemm") p.kind = MicroKind::gemm;
    else if (f[0] == "gemv") p.kind = MicroKind::gemv;
    else if (f[0] == "shift") p.kind = MicroKind::shift;
    else throw UsageError(where + "kind '" + f[0] + "' is not gemm, gemv or shift");
    auto integer = [&](size_t i, const char* name, int64_t lo, int64_t hi, bool required) -> int64_t {
      if (f[i].empty()) {
        if (required) throw UsageError(where + name + " is empty; a " + f[0] + " point needs it");
        return 0;
      }
      char* end = nullptr;
      errno = 0;
      const long long v = std::strtoll(f[i].c_str(), &end, 10);
      if (errno || *end || v < lo || v > hi)
        throw UsageError(where + name + " '" + f[i] + "' is not an integer in " + std::to_string(lo) + ".." +
                         std::to_string(hi));
      return v;
    };
    auto real = [&](size_t i, const char* name) {
      char* end = nullptr;
      errno = 0;
      const double v = std::strtod(f[i].c_str(), &end);
      if (f[i].empty() || errno || *end || !(v > 0) || v > 1e15)
        throw UsageError(where + name + " '" + f[i] + "' is not a positive number of cycles");
      return v;
    };
    const bool gemm = p.kind == MicroKind::gemm, gemv = p.kind == MicroKind::gemv, sh = p.kind == MicroKind::shift;
    p.P = integer(1, "P", 1, 1 << 14, true);
    p.n = integer(2, "n", 1, int64_t(1) << 24, gemm || gemv);
    p.groups = integer(3, "groups", 1, 1 << 14, gemv);
    p.L = integer(4, "L", 1, 1 << 14, sh);
    p.tile_bytes = integer(5, "tile_bytes", 4, 1 << 20, sh);
    p.measured_lo = real(6, "cycles_lo");
    p.measured_hi = real(7, "cycles_hi");
    if (f.size() == 9) p.source = f[8];
    if (p.measured_hi < p.measured_lo)
      throw UsageError(where + "cycles_hi " + f[7] + " is below cycles_lo " + f[6]);
    if ((gemm || gemv) && p.n < p.P)
      throw UsageError(where + "n " + f[2] + " is below P " + f[1] + " (every PE needs at least one element)");
    if (gemv && p.groups > p.P) throw UsageError(where + "groups " + f[3] + " exceed P " + f[1]);
    if (sh && p.L >= p.P) throw UsageError(where + "L " + f[4] + " must be below P " + f[1]);
    if (sh && p.tile_bytes % 4) throw UsageError(where + "tile_bytes " + f[5] + " is not a multiple of 4");
    pts.push_back(p);
  }
  if (pts.empty()) throw UsageError("measurement file '" + path + "': no points");
  return pts;
}

uint64_t region_shift_cycles(Fabric& f, const Region& r, Axis axis, int64_t L, int64_t tile_bytes) {
  // Opaque 32-bit words: the measured tile is tile_bytes on the wafer whatever wafer.dtype says.
  TileBuf<uint32_t> b(f, r, size_t(tile_bytes / 4), "region shift");
  const uint64_t t0 = f.max_clock(r);
  f.barrier_clocks(r);
  shift(f, b, axis, L, false);
  return f.max_clock(r) - t0;
}

uint64_t model_point(MPI_Comm comm, const MachineParams& base, const MicroPoint& p) {
  MachineParams mp = base;
  mp.width_pes = p.P;
  mp.height_pes = p.P;
  const Region R{0, 0, int32_t(p.P), int32_t(p.P)};
  switch (p.kind) {
    case MicroKind::gemm: {
      Fabric f(comm, mp);
      dist::GemmSpec s;
      s.algo = dist::GemmAlgo::meshgemm;
      s.P = int32_t(p.P);
      s.M = s.K = s.N = p.n;
      s.compute = false;
      s.preskewed = true;  // the published cycles are of the multiplication phase alone
      return dist::gemm_f32(f, s, nullptr, nullptr, nullptr).total_cycles;
    }
    case MicroKind::gemv: {
      Fabric f(comm, mp);
      dist::GemvSpec s;
      s.P = int32_t(p.P);
      s.M = s.K = p.n;
      s.allreduce.algo = dist::AllreduceAlgo::ktree;
      s.allreduce.levels = 2;
      s.allreduce.groups = int(p.groups);
      dist::check_gemv_spec(MeshShape{int32_t(p.P), int32_t(p.P)}, s);
      std::mt19937_64 g(uint64_t(p.P * 1000003 + p.n));
      std::uniform_real_distribution<float> u(-1, 1);
      std::vector<float> W(size_t(p.n * p.n)), x(size_t(p.n));
      for (float& w : W) w = u(g);
      for (float& v : x) v = u(g);
      dist::MeshGemvF32 gemv(f, s, W.data());
      return gemv.run(x.data(), nullptr).total_cycles;
    }
    case MicroKind::shift: {
      mp.route_entries = std::max<int64_t>(mp.route_entries, p.L + 2);
      Fabric f(comm, mp);
      return region_shift_cycles(f, R, Axis::X, p.L, p.tile_bytes);
    }
  }
  return 0;
}

double FitParam::get(const MachineParams& mp) const {
  MachineParams m = mp;
  for (const ParamSpec& s : m.specs())
    if (s.name == name)
      return std::holds_alternative<int64_t*>(s.target) ? double(*std::get<int64_t*>(s.target))
                                                        : *std::get<double*>(s.target);
  return 0;
}

void FitParam::set(MachineParams& mp, double v) const {
  for (const ParamSpec& s : mp.specs())
    if (s.name == name) {
      if (std::holds_alternative<int64_t*>(s.target)) *std::get<int64_t*>(s.target) = int64_t(std::llround(v));
      else *std::get<double*>(s.target) = v;
    }
}

double FitParam::clamp(double v) const {
  v = std::min(hi, std::max(lo, v));
  return integer ? std::round(v) : v;
}

std::vector<FitParam> resolve_fit(const std::vector<std::string>& names) {
  std::vector<FitParam> out;
  if (names.size() == 1 && names[0] == "none") return out;
  MachineParams mp;
  const auto specs = mp.specs();
  for (const std::string& n : names) {
    auto it = std::find_if(specs.begin(), specs.end(), [&](const ParamSpec& s) { return s.name == n; });
    const bool numeric = it != specs.end() && (std::holds_alternative<int64_t*>(it->target) ||
                                               std::holds_alternative<double*>(it->target));
    if (!numeric || n.rfind("mesh.", 0) == 0 || n.rfind("emu.", 0) == 0 || n == "pe.clock_ghz" ||
        n == "pe.sram_bytes" || n == "noc.route_entries")
      throw UsageError("option --fit: '" + n +
                       "' is not a cost parameter (pe.task_overhead_cycles, pe.macs_per_cycle, noc.alpha_cycles, "
                       "noc.beta_cycles, noc.link_bytes_per_cycle, noc.receive_cycles, noc.inject_fraction)");
    for (const FitParam& f : out)
      if (f.name == n) throw UsageError("option --fit: '" + n + "' is named twice");
    FitParam f;
    f.name = n;
    f.integer = std::holds_alternative<int64_t*>(it->target);
    f.lo = std::max(it->min, f.integer ? 0.0 : 1e-3);
    if (n == "noc.inject_fraction") f.lo = 0;
    if (n == "pe.macs_per_cycle") f.lo = 1;
    f.hi = std::min(it->max, 1e6);
    out.push_back(f);
  }
  return out;
}

namespace {

// Solves A x = b (n x n, row-major) by Gaussian elimination with partial pivoting; false when singular.
bool solve(std::vector<double> A, std::vector<double> b, std::vector<double>& x) {
  const size_t n = b.size();
  for (size_t c = 0; c < n; ++c) {
    size_t p = c;
    for (size_t r = c + 1; r < n; ++r)
      if (std::fabs(A[r * n + c]) > std::fabs(A[p * n + c])) p = r;
    if (std::fabs(A[p * n + c]) < 1e-300) return false;
    if (p != c) {
      for (size_t k = 0; k < n; ++k) std::swap(A[c * n + k], A[p * n + k]);
      std::swap(b[c], b[p]);
    }
    for (size_t r = c + 1; r < n; ++r) {
      const double m = A[r * n + c] / A[c * n + c];
      for (size_t k = c; k < n; ++k) A[r * n + k] -= m * A[c * n + k];
      b[r] -= m * b[c];
    }
  }
  x.assign(n, 0);
  for (size_t c = n; c-- > 0;) {
    double s = b[c];
    for (size_t k = c + 1; k < n; ++k) s -= A[c * n + k] * x[k];
    x[c] = s / A[c * n + c];
  }
  return true;
}

}  // namespace

FitOutcome fit_cost_model(MPI_Comm comm, const MachineParams& base, const std::vector<FitParam>& fit,
                          const std::vector<MicroPoint>& pts, int64_t iterations, const FitProgress& progress) {
  const size_t n = fit.size(), m = pts.size();
  std::vector<double> theta(n);
  for (size_t j = 0; j < n; ++j) theta[j] = fit[j].clamp(fit[j].get(base));
  auto residuals = [&](const std::vector<uint64_t>& cyc) {
    std::vector<double> r(m);
    for (size_t i = 0; i < m; ++i) r[i] = std::log(double(std::max<uint64_t>(cyc[i], 1)) / pts[i].measured());
    return r;
  };
  auto cost_of = [&](const std::vector<uint64_t>& cyc) {
    double c = 0;
    for (double r : residuals(cyc)) c += r * r;
    return c;
  };
  // Evaluations are memoised on the (rounded) parameter values.
  std::map<std::vector<double>, std::vector<uint64_t>> memo;
  auto evaluate = [&](const std::vector<double>& th) -> const std::vector<uint64_t>& {
    auto it = memo.find(th);
    if (it != memo.end()) return it->second;
    MachineParams mp = base;
    for (size_t j = 0; j < n; ++j) fit[j].set(mp, th[j]);
    std::vector<uint64_t> cyc;
    for (const MicroPoint& p : pts) cyc.push_back(model_point(comm, mp, p));
    double mx = 0;
    for (size_t i = 0; i < m; ++i) mx = std::max(mx, std::fabs(double(cyc[i]) / pts[i].measured() - 1));
    if (progress) progress(th, cost_of(cyc), mx);
    return memo.emplace(th, std::move(cyc)).first->second;
  };

  FitOutcome out;
  out.start = theta;
  out.start_cycles = evaluate(theta);
  out.start_cost = cost_of(out.start_cycles);
  double cost = out.start_cost, lambda = 1e-2;
  for (int64_t it = 0; it < iterations && n > 0; ++it) {
    const std::vector<double> r = residuals(evaluate(theta));
    std::vector<double> J(m * n, 0.0);
    for (size_t j = 0; j < n; ++j) {
      const double h = fit[j].integer ? std::max(1.0, std::round(0.1 * std::fabs(theta[j])))
                                      : std::max(0.02, 0.1 * std::fabs(theta[j]));
      std::vector<double> t2 = theta;
      t2[j] = fit[j].clamp(theta[j] + h);
      if (t2[j] == theta[j]) t2[j] = fit[j].clamp(theta[j] - h);
      const double dh = t2[j] - theta[j];
      if (dh == 0) continue;
      const std::vector<double> r2 = residuals(evaluate(t2));
      for (size_t i = 0; i < m; ++i) J[i * n + j] = (r2[i] - r[i]) / dh;
    }
    std::vector<double> A(n * n, 0.0), g(n, 0.0);
    for (size_t a = 0; a < n; ++a) {
      for (size_t b = 0; b < n; ++b)
        for (size_t i = 0; i < m; ++i) A[a * n + b] += J[i * n + a] * J[i * n + b];
      for (size_t i = 0; i < m; ++i) g[a] += J[i * n + a] * r[i];
    }
    bool accepted = false, done = false;
    for (int tries = 0; tries < 8 && !accepted && !done; ++tries) {
      std::vector<double> D = A, d, mg(n);
      for (size_t a = 0; a < n; ++a) {
        D[a * n + a] += lambda * A[a * n + a] + 1e-12;
        mg[a] = -g[a];
      }
      if (!solve(D, mg, d)) {
        lambda *= 4;
        continue;
      }
      std::vector<double> t2(n);
      for (size_t j = 0; j < n; ++j) t2[j] = fit[j].clamp(theta[j] + d[j]);
      if (t2 == theta) {  // the step rounds to where we are
        done = true;
        break;
      }
      const double c2 = cost_of(evaluate(t2));
      if (c2 < cost) {
        accepted = true;
        done = cost - c2 < 1e-6 * cost;
        theta = t2;
        cost = c2;
        lambda = std::max(1e-6, lambda / 3);
      } else {
        lambda *= 4;
      }
    }
    if (!accepted || done) break;
  }
  out.fitted = theta;
  out.fitted_cycles = evaluate(theta);
  out.fitted_cost = cost;
  out.evaluations = memo.size();
  return out;
}

}  // namespace wm::cli
