// `wafermesh calibrate`: fits cost-model parameters to measured microbenchmarks (MeshGEMM, MeshGEMV,
// region shift; cli/microbench.hpp) by Levenberg-Marquardt on the relative errors, every
// evaluation an emulated run of every point, and writes the points (measured, modelled at the
// start and at the fit, relative error), the parameters and the evaluations to a results file.
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <map>
#include <ostream>
#include <sstream>
#include <variant>

#include "wafermesh/cli/bench_common.hpp"
#include "wafermesh/cli/machine_options.hpp"
#include "wafermesh/cli/calibration.hpp"
#include "wafermesh/cli/rank0.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::cli {

namespace {

const char* kDefaultFit =
    "pe.task_overhead_cycles,noc.receive_cycles,noc.alpha_cycles,noc.beta_cycles,noc.link_bytes_per_cycle,"
    "noc.inject_fraction";

struct CalibrateOptions {
  std::string measurements = "configs/calibration/wse3_microbench.csv";
  std::vector<std::string> fit;
  std::vector<std::string> kinds{"gemm", "gemv", "shift"};
  int64_t iterations = 12;
  std::string output = "results/calibration.h5";
  std::string write_config;
  CalibrateOptions() {
    std::stringstream ss(kDefaultFit);
    for (std::string s; std::getline(ss, s, ',');) fit.push_back(s);
  }
  std::vector<ParamSpec> specs() {
    return {
        param_text("measurements", &measurements,
                   "measurement file: CSV kind,P,n,groups,L,tile_bytes,cycles_lo,cycles_hi,source (see "
                   "configs/calibration/README.md)"),
        param_text_list("fit", &fit,
                        "machine parameters to fit, comma-separated (integer or real machine options; none = "
                        "evaluate the configured machine only)"),
        param_text_list("kinds", &kinds, "microbenchmarks of the file to use, comma-separated",
                        {"gemm", "gemv", "shift"}),
        param_int("iterations", &iterations, "iterations", "most Levenberg-Marquardt iterations", 0, 1000),
        param_text("output", &output, "HDF5 results file (written complete or not at all)"),
        param_text("write_config", &write_config,
                   "also write the fitted parameters as an INI file here (empty = do not)"),
    };
  }
};

}  // namespace

int cmd_calibrate(const Context& ctx, const std::vector<std::string>& args) {
  MachineParams base;
  CalibrateOptions o;
  OptionSet opts;
  const bool run = parse_command(
      ctx, args, opts, base, o.specs(),
      "usage: wafermesh calibrate [--config FILE] [--measurements FILE] [--fit a,b,...] [options]\n\n"
      "Fits the named cost parameters of the machine (--config and machine options give the starting\n"
      "point and every other parameter) to measured microbenchmark cycles: MeshGEMM (timing-only),\n"
      "MeshGEMV with the K-tree allreduce, and a region shift, each point run on the emulated machine\n"
      "as `bench gemm|gemv|shift` would. Minimises the sum of squared log(modelled / measured) by\n"
      "Levenberg-Marquardt with finite differences; integer parameters stay integers. Prints and writes\n"
      "every point's error at the start and at the fit.");
  if (opts.help_requested()) return 0;
  std::ostream& out = *ctx.out;
  const std::vector<FitParam> fit = resolve_fit(o.fit);
  std::vector<MicroPoint> pts;
  for (const MicroPoint& p : read_measurements(o.measurements))
    if (std::find(o.kinds.begin(), o.kinds.end(), micro_kind_name(p.kind)) != o.kinds.end()) pts.push_back(p);
  if (pts.empty()) throw UsageError("measurement file '" + o.measurements + "' has no points of the kinds chosen");
  if (fit.size() > pts.size())
    throw UsageError("option --fit: " + std::to_string(fit.size()) + " parameters but only " +
                     std::to_string(pts.size()) + " points");
  for (const MicroPoint& p : pts)  // every point must be able to run on this job's ranks
    check_machine([&] {
      MachineParams m = base;
      m.width_pes = m.height_pes = p.P;
      return m;
    }(), ctx.size);
  if (!o.write_config.empty()) check_output_file(ctx, o.write_config, "--write_config");
  if (!run) return 0;

  io::Table evals;
  evals.add_column("evaluation", "", io::ColumnKind::integer);
  for (const FitParam& f : fit) evals.add_column(f.name, "", io::ColumnKind::real);
  evals.add_column("cost", "sum of squared log errors", io::ColumnKind::real);
  evals.add_column("max_rel_error", "", io::ColumnKind::real);
  out << "calibrate: " << pts.size() << " points of " << o.measurements << ", " << ctx.size << " rank(s); fitting "
      << (fit.empty() ? std::string("nothing (evaluation only)") : std::to_string(fit.size()) + " parameter(s)")
      << "\n";
  int64_t count = 0;
  const FitOutcome res = fit_cost_model(ctx.comm, base, fit, pts, o.iterations,
                                        [&](const std::vector<double>& th, double cost, double mx) {
                                          std::vector<io::Table::Cell> row{count};
                                          for (double v : th) row.push_back(v);
                                          row.push_back(cost);
                                          row.push_back(mx);
                                          evals.append_row(row);
                                          out << "  evaluation " << count++ << ":";
                                          for (size_t j = 0; j < fit.size(); ++j) out << " " << fit[j].name << "=" << th[j];
                                          out << "  cost " << std::setprecision(5) << cost << ", largest error "
                                              << std::setprecision(3) << 100 * mx << "%\n"
                                              << std::flush;
                                        });
  const std::vector<uint64_t>& start = res.start_cycles;
  const std::vector<uint64_t>& final_cyc = res.fitted_cycles;
  MachineParams fitted = base;
  for (size_t j = 0; j < fit.size(); ++j) fit[j].set(fitted, res.fitted[j]);

  // ---- report
  io::Table t;
  t.add_column("kind", "", io::ColumnKind::text);
  t.add_column("P", "PEs", io::ColumnKind::integer);
  t.add_column("n", "elements", io::ColumnKind::integer);
  t.add_column("groups", "", io::ColumnKind::integer);
  t.add_column("L", "PEs", io::ColumnKind::integer);
  t.add_column("tile_bytes", "bytes", io::ColumnKind::integer);
  t.add_column("measured_lo", "cycles", io::ColumnKind::real);
  t.add_column("measured_hi", "cycles", io::ColumnKind::real);
  t.add_column("measured", "cycles", io::ColumnKind::real);
  t.add_column("modelled_start", "cycles", io::ColumnKind::integer);
  t.add_column("modelled", "cycles", io::ColumnKind::integer);
  t.add_column("rel_error_start", "", io::ColumnKind::real);
  t.add_column("rel_error", "", io::ColumnKind::real);
  t.add_column("source", "", io::ColumnKind::text);
  out << "\n" << std::left << std::setw(32) << "point" << std::right << std::setw(12) << "measured" << std::setw(12)
      << "start" << std::setw(9) << "error" << std::setw(12) << "fitted" << std::setw(9) << "error" << "\n";
  double worst = 0;
  for (size_t i = 0; i < pts.size(); ++i) {
    const MicroPoint& p = pts[i];
    const double e0 = double(start[i]) / p.measured() - 1, e1 = double(final_cyc[i]) / p.measured() - 1;
    worst = std::max(worst, std::fabs(e1));
    t.append_row({std::string(micro_kind_name(p.kind)), p.P, p.n, p.groups, p.L, p.tile_bytes, p.measured_lo,
                  p.measured_hi, p.measured(), int64_t(start[i]), int64_t(final_cyc[i]), e0, e1, p.source});
    out << std::left << std::setw(32) << p.label() << std::right << std::setw(12) << std::fixed << std::setprecision(0)
        << p.measured() << std::setw(12) << start[i] << std::setw(8) << std::setprecision(1) << 100 * e0 << "%"
        << std::setw(12) << final_cyc[i] << std::setw(8) << 100 * e1 << "%\n";
  }
  io::Table pt;
  pt.add_column("name", "", io::ColumnKind::text);
  pt.add_column("start", "", io::ColumnKind::real);
  pt.add_column("fitted", "", io::ColumnKind::real);
  out << "\nparameters (" << res.evaluations << " evaluations; largest error " << std::setprecision(1) << 100 * worst
      << "%):\n";
  for (size_t j = 0; j < fit.size(); ++j) {
    const double s = res.start[j], v = res.fitted[j];
    pt.append_row({fit[j].name, s, v});
    out << "  " << std::left << std::setw(28) << fit[j].name << std::right << std::setprecision(fit[j].integer ? 0 : 3)
        << std::setw(10) << s << "  ->" << std::setw(10) << v << "\n";
  }
  out << std::defaultfloat;
  if (!o.write_config.empty()) {
    // Section by section, as configs/*.ini are written; only the fitted keys. Rank 0 writes; every
    // rank learns whether it could.
    std::string err;
    if (ctx.rank == 0) {
      std::map<std::string, std::vector<std::pair<std::string, std::string>>> sec;
      MachineParams m = fitted;
      for (const ParamSpec& s : m.specs())
        for (const FitParam& f : fit)
          if (s.name == f.name)
            sec[s.name.substr(0, s.name.find('.'))].push_back({s.name.substr(s.name.find('.') + 1), param_value_text(s)});
      const std::string tmp = o.write_config + ".tmp";
      {
        std::ofstream w(tmp);
        w << "# Fitted by: " << ctx.command_line << "\n# to " << pts.size() << " points of " << o.measurements
          << "; largest relative error " << std::setprecision(3) << 100 * worst << "%\n";
        for (const auto& [name, kv] : sec) {
          w << "\n[" << name << "]\n";
          for (const auto& [k, v] : kv) w << k << " = " << v << "\n";
        }
        w.flush();
        if (!w) err = "--write_config: cannot write '" + tmp + "'";
      }
      if (err.empty() && std::rename(tmp.c_str(), o.write_config.c_str()) != 0)
        err = "--write_config: cannot rename '" + tmp + "' to '" + o.write_config + "'";
      if (!err.empty()) std::remove(tmp.c_str());
    }
    bcast_string(ctx.comm, err);
    if (!err.empty()) throw UsageError(err);
    out << "wrote " << o.write_config << "\n";
  }
  write_bench_results(ctx, opts, fitted, o.output, "calibration", t, 0, {{"parameters", pt}, {"evaluations", evals}});
  return 0;
}

}  // namespace wm::cli
