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
// rank count and, unless `sweep` runs the command, its `output` option (check_output_option);
// returns true: run. With ctx.parse_only (sweep checking a study) it returns false after the
// machine check: a command with more to check (files it reads) does that when
// !opts.help_requested(), then returns.
struct Context;
bool parse_command(const Context& ctx, const std::vector<std::string>& args, OptionSet& opts, MachineParams& mp,
                   std::vector<ParamSpec> extra, const std::string& usage);
// The option named "output" of `opts`, if any and not empty, checked by io::check_output_path on
// rank 0 before any work; the error reaches every rank. Collective over ctx.comm.
void check_output_option(const Context& ctx, const OptionSet& opts);
// The same for a file a command writes itself (`option` prefixes the message, e.g. "--write_config").
void check_output_file(const Context& ctx, const std::string& path, const std::string& option);

// Cross-field checks after parsing (mesh not too large for the emulator, ...). Throws UsageError.
void check_machine(const MachineParams& p, int ranks);

}  // namespace wm::cli
