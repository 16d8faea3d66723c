#pragma once
// Communication patterns along the lines of a region, built as TransferPlans.
//
// A line is a row (Axis::X: positions run along X) or a column (Axis::Y) of the region; position
// i of a row y is PE (region.x0 + i, y). A LinePerm lays a logical ring or chain onto the
// physical positions of a line: logical position l sits at physical position perm.phys(l).
//
// Interleaved ring (DESIGN.md §4), P = 6: logical 0 1 2 3 4 5 sit at physical 0 2 4 5 3 1, i.e.
// physical index i holds logical i/2 (i even) or P-1-(i-1)/2 (i odd). Walking the ring
// 0->1->2->3->4->5->0 visits physical 0,2,4,5,3,1,0: every step is at most two hops, so a shift
// costs the same for every P, where the natural ring's wrap-around (5 -> 0) crosses P-1 hops.
//
// Each builder lists only the lines that cross this rank's block: traffic of a row shift stays
// in that row (routes are X-first), so that is every transfer that can share a link with ours.
#include <cstdint>
#include <string>
#include <vector>

#include "wafermesh/noc/fabric.hpp"

namespace wm {

class LinePerm {
 public:
  static LinePerm natural(int32_t n);
  static LinePerm interleaved(int32_t n);
  // phys_of_logical must be a permutation of 0..n-1.
  static LinePerm from(std::vector<int32_t> phys_of_logical, std::string name);

  int32_t size() const { return int32_t(phys_.size()); }
  int32_t phys(int32_t logical) const { return phys_[size_t(logical)]; }
  int32_t logical(int32_t phys) const { return logical_[size_t(phys)]; }
  const std::string& name() const { return name_; }

 private:
  std::vector<int32_t> phys_, logical_;
  std::string name_;
};

// Length of the lines of `r` along `axis`, and the PE at position `pos` of line `line`.
int32_t line_length(const Region& r, Axis axis);
int32_t line_count(const Region& r, Axis axis);
PeCoord line_pe(const Region& r, Axis axis, int32_t line, int32_t pos);

// Every PE sends its tile to the PE `d` logical places further along its line (d may be
// negative). wrap: positions are taken modulo the line length (a ring); otherwise tiles that
// would leave the line are dropped and PEs with no source keep their tile.
TransferPlan plan_shift(Fabric& f, const Region& r, Axis axis, int64_t d, bool wrap, const LinePerm& perm,
                        size_t tile_bytes);

// The PE at physical position `root` of every line multicasts its tile to the whole line. With
// include_root the root also copies its own tile (free), for broadcasts into another buffer.
TransferPlan plan_broadcast(Fabric& f, const Region& r, Axis axis, int32_t root, size_t tile_bytes,
                            bool include_root = false);

// Any-to-any: one tile from each pair's first PE to its second. `pairs` must be the same on
// every rank (it is the whole step).
TransferPlan plan_pairs(Fabric& f, const std::vector<std::pair<PeCoord, PeCoord>>& pairs, size_t tile_bytes,
                        std::string name);

// Like plan_shift, with a distance per line (d_of_line[line], 0 = the line is idle this step).
// Used for skews, where row r moves by r.
TransferPlan plan_shift_lines(Fabric& f, const Region& r, Axis axis, const std::vector<int64_t>& d_of_line, bool wrap,
                              const LinePerm& perm, size_t tile_bytes, const std::string& name);

// One step of a chain reduction toward `root` on every line: the PE at position `from` sends
// its partial one hop to `from + 1` (or `from - 1` when from > root), where a core adds it
// (one relay stage). Used by reduce() in primitives.hpp.
TransferPlan plan_chain_step(Fabric& f, const Region& r, Axis axis, int32_t from, int32_t root, size_t tile_bytes);

// `transfers` cut into rounds run one after another, in each of which no PE is touched by more
// than `budget` of the round's streams (each transfer its own stream, routed X then Y): a step
// whose streams would otherwise overflow the routers. Transfers keep their order within a round.
std::vector<std::vector<Transfer>> route_rounds(const std::vector<Transfer>& transfers, int32_t budget);
// The same, plainly (per round a map of the PEs' use); route_rounds gives exactly its rounds.
std::vector<std::vector<Transfer>> route_rounds_ref(const std::vector<Transfer>& transfers, int32_t budget);
// The same for the transfers of one line (positions along it).
std::vector<std::vector<LineTransfer>> route_rounds(const std::vector<LineTransfer>& transfers, int32_t budget);

}  // namespace wm
