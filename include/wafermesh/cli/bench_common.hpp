#pragma once
// Shared by the `bench` subcommands: timing on one rank while the others wait politely, and the
// results file with provenance.
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "wafermesh/cli/commands.hpp"
#include "wafermesh/io/results_file.hpp"
#include "wafermesh/mesh/geometry.hpp"
#include "wafermesh/noc/energy.hpp"
#include "wafermesh/noc/fabric.hpp"
#include "wafermesh/noc/params.hpp"
#include "wafermesh/util/options.hpp"

namespace wm::cli {

// v with `prec` digits after the point (std::fixed), for the commands' printed tables.
std::string fixed_point(double v, int prec);

// Rank 0 runs f with `threads` OpenMP threads, free to use every core for the duration (mpirun
// may have bound the rank to one), and returns its wall seconds (broadcast to all); the other
// ranks wait without spinning on a core.
double time_on_rank0(const Context& ctx, int threads, const std::function<void()>& f);

// Refuses (UsageError) operands the host cannot hold before they are allocated: `what` needs
// the product of `factors` bytes in all (e.g. {M, K, 4} for an fp32 M x K matrix); more than the
// machine's physical memory, or a product beyond 2^63, is an error naming the figures. Every rank
// holds the operands, so every rank checks (identically).
void check_host_bytes(const std::string& what, std::initializer_list<int64_t> factors);

// The origin of a P x P region: the given coordinates, or (-1) centred on the mesh so that the
// region spans the ranks' blocks rather than sitting on rank 0.
PeCoord centred_origin(const MachineParams& mp, int64_t P, int64_t x, int64_t y);

// The energy columns of a bench table (noc/energy.hpp): the work counted (operations by kind:
// fp_macs, elem_ops, ternary_ops, int_ops; SRAM bytes read and written; NoC byte-hops) and the
// energy of `pes` PEs over `cycles` in joules, in all and split compute / SRAM / NoC / static.
// append_energy_cells adds a row's cells in that order and returns the energy.
void add_energy_columns(io::Table& t);
EnergySplit append_energy_cells(std::vector<io::Table::Cell>& row, const MachineParams& mp, const WorkCounts& w,
                                uint64_t pes, uint64_t cycles);

// Writes `table` as group `group` of `path` (rank 0 only; complete or not at all), with every
// effective option of `opts` as a parameter. Prints "wrote PATH".
void write_bench_results(const Context& ctx, const OptionSet& opts, const MachineParams& mp, const std::string& path,
                         const std::string& group, const io::Table& table, int64_t seed,
                         const std::vector<std::pair<std::string, io::Table>>& extra = {});

// As write_bench_results, plus per-PE maps of `region` (virtual clock, compute, stall, injection
// cycles, peak SRAM bytes, peak route entries, bytes sent) as H x W datasets under
// `group`/pe_maps, each rank writing its own block in parallel, and `extra` tables as groups
// `group`/<name>. Collective.
void write_results_with_maps(const Context& ctx, const OptionSet& opts, const MachineParams& mp,
                             const std::string& path, const std::string& group, const io::Table& table, int64_t seed,
                             const Fabric& f, const Region& region,
                             const std::vector<std::pair<std::string, io::Table>>& extra = {});

}  // namespace wm::cli
