#pragma once
// Machine parameters as command options, plus the checks that need more than one value.
#include <string>
#include <vector>

#include "wafermesh/util/options.hpp"
#include "wafermesh/noc/params.hpp"

namespace wm::cli {

// Declares every MachineParams field in `opts`, bound to `p`.
void add_machine_options(OptionSet& opts, MachineParams& p);
// The common start of a command: declares the machine options and `extra`, parses `args`, and
// either prints the help (returns false: the command is done) or checks the machine for the job's
// rank count (returns true: run).
struct Context;
bool parse_command(const Context& ctx, const std::vector<std::string>& args, OptionSet& opts, MachineParams& mp,
                   std::vector<ParamSpec> extra, const std::string& usage);

// Cross-field checks after parsing (mesh not too large for the emulator, ...). Throws UsageError.
void check_machine(const MachineParams& p, int ranks);

}  // namespace wm::cli
