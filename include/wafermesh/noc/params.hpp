#pragma once
// The emulated machine: mesh size, PE and NoC parameters (DESIGN.md §1, §3), and how the
// emulation maps onto ranks. Every figure is a configuration value with its unit in the name;
// the defaults are the Cerebras WSE-2 (configs/wse2.ini spells them out): its mesh and SRAM from
// DESIGN.md, and the PE and fabric costs fitted to WSE-3 microbenchmarks (configs/wse3.ini; the
// same PE and fabric design).
#include <cstdint>
#include <string>
#include <vector>

#include "wafermesh/util/param_spec.hpp"

namespace wm {

struct MachineParams {
  int64_t width_pes = 750;             // mesh.width_pes: PEs along X
  int64_t height_pes = 994;            // mesh.height_pes: PEs along Y
  double clock_ghz = 1.1;              // pe.clock_ghz: cycles -> seconds
  int64_t sram_bytes = 48 * 1024;      // pe.sram_bytes: private SRAM per PE
  int64_t macs_per_cycle = 1;          // pe.macs_per_cycle: multiply-accumulates per cycle per PE (fp32, integer)
  int64_t fp16_macs_per_cycle = 0;     // pe.fp16_macs_per_cycle: fp16/bf16 MACs per cycle, 0 = pe.macs_per_cycle
  int64_t ternary_ops_per_cycle = 0;   // pe.ternary_ops_per_cycle: ternary weight add/subtracts per cycle, 0 = pe.macs_per_cycle
  int64_t task_overhead_cycles = 72;   // pe.task_overhead_cycles: fixed cost of each compute task
  int64_t alpha_cycles = 2;            // noc.alpha_cycles: per hop along a configured route
  int64_t beta_cycles = 11;            // noc.beta_cycles: per software relay / reduction stage
  double link_bytes_per_cycle = 3.608; // noc.link_bytes_per_cycle: per direction per link
  int64_t receive_cycles = 48;         // noc.receive_cycles: core cycles to take in each arriving message
  double inject_fraction = 0.0;        // noc.inject_fraction: share of a message's wire time its sender's core pays
  bool stream_reductions = true;       // noc.stream_reductions: reduction chains stream through the cores
  int64_t route_entries = 24;          // noc.route_entries: route table entries ("colors") per PE
  std::string route_fallback = "strict";  // noc.route_fallback: strict | relay
  std::string wafer_dtype = "fp32";    // wafer.dtype: fp32 | fp16 | bf16, the width of fp data on the wafer
  std::string wafer_ternary_format = "2bit";  // wafer.ternary_format: 2bit | base3, ternary weights on the wafer
  double inject_ns_per_cycle = 0.0;    // emu.inject_ns_per_cycle: real delay per modelled cycle, 0 = off
  bool replay_timing = true;           // emu.replay_timing: timing-only collectives apply their recorded runs
  int64_t ranks_x = 0;                 // emu.ranks_x: rank grid extent along X, 0 = automatic
  int64_t ranks_y = 0;                 // emu.ranks_y: rank grid extent along Y, 0 = automatic
  // The energy model (noc/energy.hpp); sources and assumptions in configs/wse2.ini.
  double fp32_mac_pj = 4.6;             // energy.fp32_mac_pj: one fp32 multiply-accumulate (or fp32 element operation)
  double fp16_mac_pj = 1.5;             // energy.fp16_mac_pj: the same at wafer.dtype fp16
  double bf16_mac_pj = 1.5;             // energy.bf16_mac_pj: the same at wafer.dtype bf16
  double int_add_pj = 0.1;              // energy.int_add_pj: one ternary weight applied, or one integer operation
  double sram_read_pj_per_byte = 1.25;  // energy.sram_read_pj_per_byte
  double sram_write_pj_per_byte = 1.25; // energy.sram_write_pj_per_byte
  int64_t sram_read_bytes_per_mac = 8;  // energy.sram_read_bytes_per_mac: operand bytes a MAC reads from SRAM
  int64_t sram_write_bytes_per_mac = 4; // energy.sram_write_bytes_per_mac: bytes a MAC writes back
  double hop_pj_per_byte = 0.2;         // energy.hop_pj_per_byte: one byte over one link of the fabric
  double static_mw_per_pe = 5.0;        // energy.static_mw_per_pe: leakage and clock of a PE, busy or idle

  // The declarations of all fields above (names, units, help, limits), bound to this object.
  std::vector<ParamSpec> specs();
  double cycles_to_us(uint64_t cycles) const { return double(cycles) / (clock_ghz * 1e3); }
  // The wafer's representation (DESIGN.md section 3), whatever the host stores: bytes of one
  // floating-point element (4 for fp32, 2 for fp16 and bf16), and of n ternary weights
  // (2bit: ceil(n / 4); base3, five weights per byte as 3^5 = 243 <= 256: ceil(n / 5)).
  uint64_t wafer_fp_bytes() const { return wafer_dtype == "fp32" ? 4 : 2; }
  // The energy of one fp multiply-accumulate at the wafer's dtype (energy.fp32/fp16/bf16_mac_pj).
  double wafer_fp_mac_pj() const {
    return wafer_dtype == "fp16" ? fp16_mac_pj : wafer_dtype == "bf16" ? bf16_mac_pj : fp32_mac_pj;
  }
  uint64_t wafer_ternary_bytes(uint64_t n) const { return wafer_ternary_format == "base3" ? (n + 4) / 5 : (n + 3) / 4; }
};

}  // namespace wm
