#include <mpi.h>

#include <sstream>
#include <variant>

#include "wafermesh/cli/commands.hpp"
#include "wafermesh/cli/machine_options.hpp"
#include "wafermesh/cli/rank0.hpp"
#include "wafermesh/io/results_file.hpp"
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
  if (ctx.parse_only) return false;  // `sweep` checking a study: options are valid, run nothing
  if (!ctx.sink) check_output_option(ctx, opts);
  return true;
}

void check_output_option(const Context& ctx, const OptionSet& opts) {
  std::string path;
  for (const ParamSpec& s : opts.specs())
    if (s.name == "output" && std::holds_alternative<std::string*>(s.target)) path = *std::get<std::string*>(s.target);
  check_output_file(ctx, path, "");
}

void check_output_file(const Context& ctx, const std::string& path, const std::string& option) {
  if (path.empty()) return;
  // Rank 0 writes the file, so rank 0 checks; every rank learns the verdict (one error, no hang).
  on_rank0(ctx, [&] {
    try {
      io::check_output_path(path);
    } catch (const UsageError& e) {
      if (option.empty()) throw;
      throw UsageError(option + ": " + e.what());
    }
  });
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
