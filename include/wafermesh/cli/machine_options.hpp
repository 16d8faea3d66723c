#pragma once
// Machine parameters as command options, plus the checks that need more than one value.
#include "wafermesh/util/options.hpp"
#include "wafermesh/noc/params.hpp"

namespace wm::cli {

// Declares every MachineParams field in `opts`, bound to `p`.
void add_machine_options(OptionSet& opts, MachineParams& p);
// Cross-field checks after parsing (mesh not too large for the emulator, ...). Throws UsageError.
void check_machine(const MachineParams& p, int ranks);

}  // namespace wm::cli
