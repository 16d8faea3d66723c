#pragma once
// Work that rank 0 does for every rank: its error reaches all ranks as the same one-line error (no
// rank hangs in a collective the failed one never joins), and idle ranks wait without spinning.
#include <mpi.h>

#include <chrono>
#include <functional>
#include <string>

#include "wafermesh/cli/commands.hpp"

namespace wm::cli {

// s from rank `root` of `comm` to every rank. Collective.
void bcast_string(MPI_Comm comm, std::string& s, int root = 0);

// Runs f on rank 0; an exception there becomes the same UsageError (its message) on every rank.
// With idle_poll > 0 the other ranks wait as polite_barrier does (for long work that needs the
// cores). Collective over ctx.comm.
void on_rank0(const Context& ctx, const std::function<void()>& f,
              std::chrono::milliseconds idle_poll = std::chrono::milliseconds(0));
// The same with rank `root` of ctx.comm doing the work.
void on_rank(const Context& ctx, int root, const std::function<void()>& f,
             std::chrono::milliseconds idle_poll = std::chrono::milliseconds(0));

// Waits for every rank of `comm`, sleeping `poll` between checks instead of spinning on a core
// (waiting ranks must not take the cores of the ranks that work). Collective.
void polite_barrier(MPI_Comm comm, std::chrono::milliseconds poll);

}  // namespace wm::cli
