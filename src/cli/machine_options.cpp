#include <sstream>

#include "wafermesh/cli/commands.hpp"
#include "wafermesh/cli/machine_options.hpp"
#include "wafermesh/mesh/geometry.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::cli {

void add_machine_options(OptionSet& opts, MachineParams& p) { opts.add(p.specs()); }

bool parse_command(const Context& ctx, const std::vector<std::string>& args, OptionSet& opts, MachineParams& mp,
                   std::vector<ParamSpec> extra, const std::string& usage) {
  add_machine_options(opts, mp);
  opts.add(std::move(extra));
  opts.parse(args);
  if (opts.help_requested()) {
    opts.print_help(*ctx.out, usage);
    return false;
  }
  check_machine(mp, ctx.size);
  return !ctx.parse_only;  // `sweep` checking a study: options are valid, run nothing
}

void check_machine(const MachineParams& p, int ranks) {
  const int64_t pes = p.width_pes * p.height_pes;
  // Stream ids and link indices are 32-bit per mesh; a 2^31-PE mesh is ~2900 wafers.
  constexpr int64_t kMaxPes = int64_t(1) << 31;
  if (pes > kMaxPes) {
    std::ostringstream s;
    s << "mesh " << p.width_pes << " x " << p.height_pes << " = " << pes << " PEs exceeds the emulator's limit of "
      << kMaxPes << " PEs";
    throw UsageError(s.str());
  }
  // Fails with the rank count and mesh when the ranks cannot be laid out.
  choose_rank_grid(MeshShape{int32_t(p.width_pes), int32_t(p.height_pes)}, ranks, int(p.ranks_x), int(p.ranks_y));
}

}  // namespace wm::cli
