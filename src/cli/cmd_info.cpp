// `wafermesh info`: what machine the options describe and how it is laid over the ranks.
#include <cmath>
#include <iomanip>
#include <ostream>
#include <sstream>

#include <omp.h>

#include "wafermesh/cli/commands.hpp"
#include "wafermesh/kernels/cpu_dispatch.hpp"
#include "wafermesh/cli/machine_options.hpp"
#include "wafermesh/mesh/cart_comm.hpp"
#include "wafermesh/noc/cost_model.hpp"
#include "wafermesh/version.hpp"

namespace wm::cli {

int cmd_info(const Context& ctx, const std::vector<std::string>& args) {
  MachineParams mp;
  OptionSet opts;
  add_machine_options(opts, mp);
  opts.parse(args);
  std::ostream& out = *ctx.out;
  if (opts.help_requested()) {
    opts.print_help(out, "usage: wafermesh info [--config FILE] [options]\n\n"
                         "Prints the mesh, the rank layout (which rank owns which PE block), every machine\n"
                         "parameter with its unit and where its value came from, and the per-PE SRAM budget.");
    return 0;
  }
  check_machine(mp, ctx.size);
  const MeshShape mesh{int32_t(mp.width_pes), int32_t(mp.height_pes)};
  CartComm cart(ctx.comm, mesh, int(mp.ranks_x), int(mp.ranks_y));
  const Decomposition& d = cart.decomposition();

  out << "wafermesh " << kVersion << " (" << kGitCommit << ")\n";
  out << "mesh:      " << mesh.width << " x " << mesh.height << " PEs (W x H) = " << mesh.pe_count() << " PEs\n";
  auto sizes = [](const Block1D& b) {
    std::ostringstream s;
    for (int64_t i = 0; i < b.parts(); ++i) s << (i ? "/" : "") << b.size(i);
    return s.str();
  };
  const bool even = d.blocks_x().n() % d.blocks_x().parts() == 0 && d.blocks_y().n() % d.blocks_y().parts() == 0;
  out << "ranks:     " << ctx.size << " MPI ranks on a " << d.ranks_x() << " x " << d.ranks_y()
      << " Cartesian grid (ranks_x x ranks_y); blocks " << (even ? "even" : "uneven") << ": widths "
      << (d.ranks_x() <= 16 ? sizes(d.blocks_x()) : "...") << ", heights "
      << (d.ranks_y() <= 16 ? sizes(d.blocks_y()) : "...") << "\n";
  out << "rank layout:\n  " << std::setw(6) << "rank" << "  " << std::setw(9) << "(cx,cy)" << "  "
      << std::left << std::setw(40) << "PE block" << std::right << std::setw(10) << "PEs" << "\n";
  const int shown = std::min(ctx.size, 64);
  for (int r = 0; r < shown; ++r) {
    const Region b = d.block(r);
    std::ostringstream cc;
    cc << "(" << r % d.ranks_x() << "," << r / d.ranks_x() << ")";
    out << "  " << std::setw(6) << r << "  " << std::setw(9) << cc.str() << "  " << std::left << std::setw(40)
        << b.str() << std::right << std::setw(10) << b.size() << "\n";
  }
  if (shown < ctx.size) out << "  ... " << (ctx.size - shown) << " more ranks\n";

  out << "parameters:" << (opts.config_path().empty() ? "" : " (config file " + opts.config_path() + ")") << "\n";
  opts.print_values(out);

  const double total_gb = double(mp.sram_bytes) * double(mesh.pe_count()) / 1e9;
  const int64_t fp32_side = int64_t(std::sqrt(double(mp.sram_bytes) / 4.0));
  out << std::fixed << std::setprecision(2);
  out << "SRAM budget: " << mp.sram_bytes << " bytes per PE (" << double(mp.sram_bytes) / 1024.0 << " KiB); "
      << total_gb << " GB over the mesh; one fp32 tile fits up to " << fp32_side << " x " << fp32_side << " elements\n";
  const CostModel c = CostModel::from(mp);
  const uint64_t corner = uint64_t(mesh.width - 1 + mesh.height - 1);
  out << "cost model: a 1 KiB tile to a neighbour = " << c.transfer_cycles(1, 0, 1024, 1)
      << " cycles; corner to corner (" << corner << " hops) = " << c.transfer_cycles(corner, 0, 1024, 1)
      << " cycles = " << mp.cycles_to_us(c.transfer_cycles(corner, 0, 1024, 1)) << " us at " << mp.clock_ghz
      << " GHz\n";
  out << "emulator: kernels at ISA level " << kernels::isa_name(kernels::isa_active()) << " (best on this CPU: "
      << kernels::isa_name(kernels::isa_best()) << "; WM_KERNEL_ISA overrides), " << omp_get_max_threads()
      << " OpenMP thread(s) per rank\n";
  return 0;
}

}  // namespace wm::cli
