#include "wafermesh/noc/params.hpp"

namespace wm {

std::vector<ParamSpec> MachineParams::specs() {
  // Ranges: wide around any real wafer, and narrow enough that virtual clocks (uint64 cycles) and
  // the figures printed from them stay far from overflow and from meaningless magnitudes.
  constexpr int64_t kMaxExtent = 1 << 20;  // coordinates are int32; a million PEs per axis is plenty
  constexpr int64_t kMaxCycles = 1 << 20;  // one hop, relay stage or task overhead: up to ~a million cycles
  return {
      param_int("mesh.width_pes", &width_pes, "PEs", "mesh width W, PEs along X", 1, kMaxExtent),
      param_int("mesh.height_pes", &height_pes, "PEs", "mesh height H, PEs along Y", 1, kMaxExtent),
      param_real("pe.clock_ghz", &clock_ghz, "GHz", "PE clock, converts virtual cycles to seconds",
                 1e-3, 1e3),
      param_int("pe.sram_bytes", &sram_bytes, "bytes", "private SRAM per PE; exceeding it is an error", 1,
                int64_t(1) << 31),
      param_int("pe.macs_per_cycle", &macs_per_cycle, "MAC/cycle",
                "multiply-accumulates a PE retires per cycle: fp32 work (wafer.dtype fp32) and integer work", 1, 1 << 20),
      param_int("pe.fp16_macs_per_cycle", &fp16_macs_per_cycle, "MAC/cycle",
                "fp16/bf16 multiply-accumulates a PE retires per cycle (fp work when wafer.dtype is fp16 or bf16); "
                "0 = pe.macs_per_cycle, the default, as no fp16 rate is fitted (the calibration's measurements do "
                "not record their element width); the WSE-2's fp16 SIMD is 4 wide and the WSE-3's 8 wide, an upper bound",
                0, 1 << 20),
      param_int("pe.ternary_ops_per_cycle", &ternary_ops_per_cycle, "ops/cycle",
                "ternary weights a PE applies per cycle (one add or subtract of an int8 activation each) in a "
                "BitLinear GEMV or GEMM; 0 = pe.macs_per_cycle, the default",
                0, 1 << 20),
      param_int("pe.task_overhead_cycles", &task_overhead_cycles, "cycles",
                "fixed cost charged for every compute task on a PE", 0, kMaxCycles),
      param_int("noc.alpha_cycles", &alpha_cycles, "cycles/hop", "router forwarding cost per hop on a configured route",
                0, kMaxCycles),
      param_int("noc.beta_cycles", &beta_cycles, "cycles/stage",
                "cost of a stage where a PE core takes a message in and sends it on (software relay or reduction)",
                0, kMaxCycles),
      param_real("noc.link_bytes_per_cycle", &link_bytes_per_cycle, "bytes/cycle",
                 "link bandwidth per direction per link", 1e-3, 1 << 20),
      param_int("noc.receive_cycles", &receive_cycles, "cycles/message",
                "core cycles a PE spends taking in each message that arrives (a receive task, after the data is "
                "there; counted as compute)",
                0, kMaxCycles),
      param_real("noc.inject_fraction", &inject_fraction, "",
                 "share of a message's wire time its sending core spends pushing it (1: the core sends every word; "
                 "0: the router's data movers do, overlapping the core's work)",
                 0, 1),
      param_flag("noc.stream_reductions", &stream_reductions,
                 "reduction chains stream through the cores (DESIGN.md section 3): a stage costs alpha*hops + beta, "
                 "its add overlaps the stream (no task overhead), the wire time is paid once at the chain's end"),
      param_int("noc.route_entries", &route_entries, "entries/PE", "route table entries (colors) per router", 1,
                1 << 20),
      param_text("noc.route_fallback", &route_fallback,
                 "when a pattern needs more routes than a PE has: strict = error; relay = it goes core to core over neighbour links (no route entries, beta per intermediate PE)",
                 {"strict", "relay"}),
      param_text("wafer.dtype", &wafer_dtype,
                 "width of floating-point data on the wafer (fp weights, KV cache, activations): SRAM and wire bytes "
                 "are charged at 4 bytes (fp32) or 2 (fp16, bf16) per element; the host computes in fp32 either way",
                 {"fp32", "fp16", "bf16"}),
      param_text("wafer.ternary_format", &wafer_ternary_format,
                 "storage of ternary weights on the wafer, charged per PE block whatever the host kernel packs: "
                 "2bit = 2 bits per weight, base3 = 5 weights per byte; plus the tensor's scale at wafer.dtype",
                 {"2bit", "base3"}),
      param_real("emu.inject_ns_per_cycle", &inject_ns_per_cycle, "ns/cycle",
                 "hold inter-rank messages back in real time by this much per modelled cycle of latency (0 = off)",
                 0, 1e6),
      param_flag("emu.replay_timing", &replay_timing,
                 "a line allreduce (norms, attention, the BitLinear GEMVs' integer line sums) that starts again from "
                 "the clocks an allreduce of its structure started from, shifted by a constant, applies that run's "
                 "recorded clock and counter changes in one pass instead of charging its steps (its data still moves "
                 "and adds step by step): the same figures, as virtual time is max-plus; false charges every step"),
      param_int("emu.ranks_x", &ranks_x, "ranks", "MPI rank grid extent along X (0 = choose automatically)", 0,
                kMaxExtent),
      param_int("emu.ranks_y", &ranks_y, "ranks", "MPI rank grid extent along Y (0 = choose automatically)", 0,
                kMaxExtent),
      param_real("energy.fp32_mac_pj", &fp32_mac_pj, "pJ/MAC",
                 "energy of one fp32 multiply-accumulate, with wafer.dtype fp32 (an fp element operation, e.g. "
                 "an add of a reduction or a step of a norm, is charged as one)",
                 0, 1e6),
      param_real("energy.fp16_mac_pj", &fp16_mac_pj, "pJ/MAC",
                 "energy of one fp16 multiply-accumulate, with wafer.dtype fp16 (and of each fp element operation)",
                 0, 1e6),
      param_real("energy.bf16_mac_pj", &bf16_mac_pj, "pJ/MAC",
                 "energy of one bf16 multiply-accumulate, with wafer.dtype bf16 (and of each fp element operation)",
                 0, 1e6),
      param_real("energy.int_add_pj", &int_add_pj, "pJ/op",
                 "energy of one integer add or subtract: a ternary weight applied (its int8 activation added to or "
                 "subtracted from the 32-bit accumulator) and each integer element operation (an add of an "
                 "integer reduction)",
                 0, 1e6),
      param_real("energy.sram_read_pj_per_byte", &sram_read_pj_per_byte, "pJ/byte", "energy of reading a byte of SRAM",
                 0, 1e6),
      param_real("energy.sram_write_pj_per_byte", &sram_write_pj_per_byte, "pJ/byte",
                 "energy of writing a byte of SRAM", 0, 1e6),
      param_int("energy.sram_read_bytes_per_mac", &sram_read_bytes_per_mac, "bytes/MAC",
                "SRAM bytes a multiply-accumulate reads (its operands; a message sent reads its bytes too)", 0,
                1 << 20),
      param_int("energy.sram_write_bytes_per_mac", &sram_write_bytes_per_mac, "bytes/MAC",
                "SRAM bytes a multiply-accumulate writes (its result; a message received writes its bytes too)", 0,
                1 << 20),
      param_real("energy.hop_pj_per_byte", &hop_pj_per_byte, "pJ/(byte*hop)",
                 "energy of moving one byte over one link of the fabric (a multicast pays each link it uses once)",
                 0, 1e6),
      param_real("energy.static_mw_per_pe", &static_mw_per_pe, "mW/PE",
                 "static power of every PE of the mesh, busy or idle, while the wafer runs", 0, 1e6),
  };
}

}  // namespace wm
