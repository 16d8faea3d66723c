#pragma once
// The wafer's energy, from the work the fabric counts (WorkCounts, PeCounters) and the unit
// energies of MachineParams (energy.*; configs/wse2.ini gives their sources):
//
//   compute  = (fp_macs + elem_ops) x fp_mac_pj + (ternary_ops + int_ops) x int_add_pj
//   SRAM     = (ops x sram_read_bytes_per_mac + bytes_sent) x sram_read_pj_per_byte
//            + (ops x sram_write_bytes_per_mac + bytes_received) x sram_write_pj_per_byte
//   NoC      = byte_hops x hop_pj_per_byte
//   static   = static_mw_per_pe x PEs x seconds
//
// The operations of every compute task are counted by kind of work (OpCounts; cost_model.hpp,
// Work): fp multiply-accumulates and fp element operations cost fp_mac_pj, the figure of the
// wafer's dtype (energy.fp32_mac_pj, fp16_mac_pj or bf16_mac_pj by wafer.dtype); ternary weights
// applied and integer operations cost energy.int_add_pj. `ops` is all of them: each reads and
// writes SRAM as a MAC does. Task overheads and receive tasks cost time, not operations. A message
// is read from its sender's SRAM and written to its receiver's; its bytes cost hop_pj_per_byte on
// every link they cross (a multicast: on every link of its tree once), booked on the sending PE.
// Static power runs on every PE of the mesh, busy or idle, for as long as the wafer runs.
//
// Worked example, the built-in figures (wafer.dtype fp32: 4.6 pJ per MAC; 0.1 pJ per integer add;
// 1.25 pJ per SRAM byte read or written, 8 bytes read and 4 written per operation, 0.2 pJ per
// byte and hop, 5 mW per PE): a PE that does 1000 fp32 MACs and applies 500 ternary weights, sends
// one 64-byte message 2 hops and receives one of 64 bytes, over 2200 cycles at 1.1 GHz:
//   compute 1000 x 4.6 + 500 x 0.1 = 4650 pJ; SRAM (12000 + 64) x 1.25 + (6000 + 64) x 1.25 =
//   22660 pJ; NoC 128 x 0.2 = 25.6 pJ; static 5 mW x 2 us = 10000 pJ; in all 37335.6 pJ.
//   With wafer.dtype fp16 (1.5 pJ per MAC) compute is 1000 x 1.5 + 500 x 0.1 = 1550 pJ.
#include <cstdint>

#include "wafermesh/noc/fabric.hpp"
#include "wafermesh/noc/params.hpp"

namespace wm {

struct EnergySplit {
  double compute_j = 0, sram_j = 0, noc_j = 0, static_j = 0;
  double total_j() const { return compute_j + sram_j + noc_j + static_j; }
  EnergySplit& operator+=(const EnergySplit& o) {
    compute_j += o.compute_j, sram_j += o.sram_j, noc_j += o.noc_j, static_j += o.static_j;
    return *this;
  }
};

struct EnergyModel {
  double fp_mac_pj = 0, int_add_pj = 0, sram_read_pj_per_byte = 0, sram_write_pj_per_byte = 0, hop_pj_per_byte = 0;
  uint64_t sram_read_bytes_per_mac = 0, sram_write_bytes_per_mac = 0;
  double static_w_per_pe = 0, clock_hz = 1;

  static EnergyModel from(const MachineParams& p) {
    return {p.wafer_fp_mac_pj(),
            p.int_add_pj,
            p.sram_read_pj_per_byte,
            p.sram_write_pj_per_byte,
            p.hop_pj_per_byte,
            uint64_t(p.sram_read_bytes_per_mac),
            uint64_t(p.sram_write_bytes_per_mac),
            p.static_mw_per_pe * 1e-3,
            p.clock_ghz * 1e9};
  }
  // SRAM bytes read / written by `w` (its operations' operands and results, its messages).
  uint64_t sram_read_bytes(const WorkCounts& w) const { return w.ops.total() * sram_read_bytes_per_mac + w.bytes_sent; }
  uint64_t sram_write_bytes(const WorkCounts& w) const {
    return w.ops.total() * sram_write_bytes_per_mac + w.bytes_received;
  }
  // Picojoules of the operations `o`, by their kinds.
  double compute_pj(const OpCounts& o) const {
    return double(o.fp_macs + o.elem_ops) * fp_mac_pj + double(o.ternary_ops + o.int_ops) * int_add_pj;
  }
  // The energy of work `w` done on `pes` PEs over `cycles` of the wafer's clock.
  EnergySplit of(const WorkCounts& w, uint64_t pes, uint64_t cycles) const {
    EnergySplit e;
    e.compute_j = compute_pj(w.ops) * 1e-12;
    e.sram_j = (double(sram_read_bytes(w)) * sram_read_pj_per_byte + double(sram_write_bytes(w)) * sram_write_pj_per_byte) *
               1e-12;
    e.noc_j = double(w.byte_hops) * hop_pj_per_byte * 1e-12;
    e.static_j = static_w_per_pe * double(pes) * double(cycles) / clock_hz;
    return e;
  }
  // One PE's counters as work.
  static WorkCounts work_of(const PeCounters& c) { return {c.ops, c.bytes_sent, c.bytes_received, c.byte_hops}; }
};

}  // namespace wm
