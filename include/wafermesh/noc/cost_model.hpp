#pragma once
// The PLMR cost rules of DESIGN.md §3, in one place.
//
//   compute:  cycles = task_overhead + ceil(macs / rate)                    (0 when macs == 0)
//             rate by the kind of work (Work): fp multiply-accumulates and fp element operations
//             at the wafer's dtype (pe.macs_per_cycle for fp32, pe.fp16_macs_per_cycle for
//             fp16/bf16), ternary weights applied (pe.ternary_ops_per_cycle), integer arithmetic
//             (pe.macs_per_cycle). The kinds also set the energy of an operation (energy.hpp).
//   transfer: arrival = depart + alpha*hops + beta*relays + ceil(bytes / link_bytes_per_cycle) * load
//             the sender's core pays injection: inject_fraction of ceil(bytes / link_bytes_per_cycle);
//             the receiver's clock becomes max(its clock, arrival), then receive_cycles per message
//             it took in that step (its core's receive task, counted as compute).
//   streaming reductions (stream_reductions): a reduction stage (relays > 0) arrives at
//             depart + alpha*hops + beta*relays, its add costs ceil(elems / rate) with no
//             task overhead, and the chain's last receiver pays the wire time once: r stages of b
//             bytes cost r * (alpha + beta + adds) + b / bandwidth (DESIGN.md section 3).
//   routes:   dimension-ordered, X first then Y, on the physical mesh without wrap-around links.
//   load:     the number of distinct messages (streams) of the same step that share the busiest
//             directed link of the path; a multicast stream counts once per link.
//   bytes:    a tile's bytes are what it occupies on the wafer (TileBuf::bytes_per_pe: fp data at
//             wafer.dtype), not what the host stores.
//
// Worked example, in the round figures that are CostModel's own member defaults (alpha = 1,
// beta = 30, link = 4 bytes/cycle, no receive task); a machine's figures come from MachineParams
// through from() (the built-in defaults are fitted to measurements, README "Calibration"):
//   a 1 KiB tile two hops east, alone on its links: 1*2 + 30*0 + ceil(1024/4)*1 = 258 cycles;
//   the same tile from the last PE of a 750-PE row back to the first (the wrap-around of a natural
//   ring): 749 hops, 1*749 + 256 = 1005 cycles; a chain-reduction step of that tile (one hop into a
//   PE that adds before forwarding): 1 + 30 + 256 = 287 cycles. The same 256 floats with
//   wafer.dtype fp16 are a 512-byte tile: two hops east, 2 + ceil(512/4) = 130 cycles.
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "wafermesh/mesh/geometry.hpp"
#include "wafermesh/noc/params.hpp"

namespace wm {

enum class Axis { X, Y };

// The kind of work a compute task does, which sets its rate (see the rules above) and its energy
// per operation (energy.hpp): fp multiply-accumulates (the block products of GEMV, GEMM and
// attention), fp element operations (norms, softmax, residual adds, the adds of fp reductions: one
// operation per element, at the rate of fp work), ternary weights applied (an add or subtract of an
// int8 activation each), integer arithmetic (the adds of integer reductions).
enum class Work { fp, elem, ternary, integer };

// Directed link leaving PE (x, y): id = pe_id * 4 + dir.
enum LinkDir : int { kLinkEast = 0, kLinkWest = 1, kLinkSouth = 2, kLinkNorth = 3 };

struct CostModel {
  uint64_t alpha_cycles = 1;
  uint64_t beta_cycles = 30;
  double link_bytes_per_cycle = 4;
  uint64_t macs_per_cycle = 1;
  uint64_t task_overhead_cycles = 10;
  uint64_t receive_cycles = 0;   // core cycles per arriving message (a receive task)
  double inject_fraction = 1.0;  // share of the wire time the sending core pays
  bool stream_reductions = false;
  uint64_t fp_macs_per_cycle = 0;      // fp work at the wafer's dtype; 0 = macs_per_cycle
  uint64_t ternary_ops_per_cycle = 0;  // ternary weights applied; 0 = macs_per_cycle

  static CostModel from(const MachineParams& p) {
    return {uint64_t(p.alpha_cycles), uint64_t(p.beta_cycles), p.link_bytes_per_cycle, uint64_t(p.macs_per_cycle),
            uint64_t(p.task_overhead_cycles), uint64_t(p.receive_cycles), p.inject_fraction, p.stream_reductions,
            p.wafer_dtype == "fp32" ? 0 : uint64_t(p.fp16_macs_per_cycle), uint64_t(p.ternary_ops_per_cycle)};
  }
  uint64_t rate(Work w) const {
    const uint64_t r = w == Work::fp || w == Work::elem ? fp_macs_per_cycle : w == Work::ternary ? ternary_ops_per_cycle : 0;
    return r ? r : macs_per_cycle;
  }
  // ceil(bytes / link bandwidth); exact in double for every realistic size, the same on every rank.
  uint64_t wire_cycles(uint64_t bytes) const { return uint64_t(std::ceil(double(bytes) / link_bytes_per_cycle)); }
  // What the sending core pays for a message: its share of the wire time.
  uint64_t inject_cycles(uint64_t bytes) const {
    return inject_fraction >= 1.0 ? wire_cycles(bytes) : uint64_t(std::ceil(double(wire_cycles(bytes)) * inject_fraction));
  }
  uint64_t transfer_cycles(uint64_t hops, uint64_t relays, uint64_t bytes, uint64_t load) const {
    return alpha_cycles * hops + beta_cycles * relays + wire_cycles(bytes) * (load ? load : 1);
  }
  // A stage of a streaming reduction chain: the head of the stream crosses the hops and the stage;
  // the wire time is paid once, at the chain's end (stream_reductions).
  uint64_t stream_stage_cycles(uint64_t hops, uint64_t relays) const { return alpha_cycles * hops + beta_cycles * relays; }
  // Most work on the wafer is on fp data, hence the default.
  uint64_t compute_cycles(uint64_t macs, Work w = Work::fp) const {
    return macs == 0 ? 0 : task_overhead_cycles + (macs + rate(w) - 1) / rate(w);
  }
  // An add folded into a stream: its element operations without a task of its own.
  uint64_t stream_add_cycles(uint64_t elems, Work w = Work::elem) const { return (elems + rate(w) - 1) / rate(w); }
};

inline uint64_t hop_count(PeCoord a, PeCoord b) {
  return uint64_t(std::abs(a.x - b.x)) + uint64_t(std::abs(a.y - b.y));
}

// Calls f(link_id) for every directed link of the X-then-Y route from a to b, in path order.
template <class F>
void for_each_route_link(const MeshShape& m, PeCoord a, PeCoord b, F&& f) {
  int32_t x = a.x, y = a.y;
  while (x != b.x) {
    const int dir = b.x > x ? kLinkEast : kLinkWest;
    f(uint64_t(m.id(x, y)) * 4 + dir);
    x += b.x > x ? 1 : -1;
  }
  while (y != b.y) {
    const int dir = b.y > y ? kLinkSouth : kLinkNorth;
    f(uint64_t(m.id(x, y)) * 4 + dir);
    y += b.y > y ? 1 : -1;
  }
}

// The same links from b back to a; f returns false to stop early. Routes of one source form a tree,
// so a multicast's paths can be walked from each destination back to where an earlier one joined.
template <class F>
void for_each_route_link_reverse(const MeshShape& m, PeCoord a, PeCoord b, F&& f) {
  int32_t x = b.x, y = b.y;
  while (y != a.y) {
    const int32_t py = b.y > a.y ? y - 1 : y + 1;
    if (!f(uint64_t(m.id(x, py)) * 4 + (b.y > a.y ? kLinkSouth : kLinkNorth))) return;
    y = py;
  }
  while (x != a.x) {
    const int32_t px = b.x > a.x ? x - 1 : x + 1;
    if (!f(uint64_t(m.id(px, a.y)) * 4 + (b.x > a.x ? kLinkEast : kLinkWest))) return;
    x = px;
  }
}

}  // namespace wm
