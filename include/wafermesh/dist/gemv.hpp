#pragma once
// MeshGEMV (DESIGN.md §4): y = W x on a P x P region, W tiled 2D and kept in place, x split along
// one mesh axis and replicated along the other, a local GEMV on every PE, then an allreduce of the
// partial sums along the split axis.
//
//   reduce_axis X: logical PE (r, c) at physical (x0 + c, y0 + r) holds W block (r, c) and x block c;
//                  after the allreduce along its row every PE of row r holds y block r
//                  (y split along Y, replicated along X).
//   reduce_axis Y: PE (r, c) holds W block (c, r) and x block r; the allreduce runs along columns
//                  and every PE of column c holds y block c (split along X, replicated along Y).
// So the output of one GEMV is the input layout of the next GEMV with the other axis: consecutive
// projections alternate axes without any re-layout (the decode layout).
//
// Blocks are mt = ceil(M/P) by kt = ceil(K/P), zero-padded. Ternary weights are packed once per PE
// in the host kernel's lookup-table format; every PE's SRAM is charged for its block in the wafer's
// format (wafer.ternary_format) and the tensor's scale, fp weights at wafer.dtype.
#include <cstdint>
#include <memory>
#include <vector>

#include "wafermesh/dist/allreduce.hpp"
#include "wafermesh/noc/fabric.hpp"
#include "wafermesh/noc/tile_buf.hpp"

namespace wm::dist {

struct GemvSpec {
  int32_t P = 1;
  PeCoord origin{0, 0};
  int64_t M = 1, K = 1;
  Axis reduce_axis = Axis::X;
  AllreduceSpec allreduce;
  // false: run_tiles takes no measurement window (no report, fewer collectives: a transformer runs
  // hundreds of GEMVs per token and measures them itself); every virtual figure is the same.
  bool report = true;
};

struct GemvReport {
  uint64_t total_cycles = 0;      // from the common start to the last PE holding its y block
  uint64_t compute_cycles = 0;    // most compute cycles of any PE (local GEMV and the adds)
  uint64_t comm_cycles = 0;       // on the critical PE: total minus its compute
  uint64_t critical_hops = 0;     // allreduce: hops along its sequential steps
  uint64_t critical_stages = 0;   // allreduce: relay stages along its sequential steps
  uint64_t max_route_entries = 0; // peak route entries of any PE
  uint64_t peak_sram_bytes = 0;   // peak SRAM of any PE (weights included)
  double wall_s = 0;              // emulation wall time of the GEMV (weights already placed)
};

void check_gemv_spec(const MeshShape& mesh, const GemvSpec& s);  // UsageError when it cannot run

// SRAM bytes one PE holds for its weight block on the wafer: fp, mt x kt elements at wafer.dtype;
// ternary, mt x kt weights in wafer.ternary_format plus the scale at wafer.dtype.
//   Example: BitNet 2B4T's W_1 (6912 x 2560) on 32 x 32 PEs: blocks of 216 x 80 = 17,280 weights,
//   4,320 + 4 bytes in 2bit, 3,456 + 4 in base3 (fp32 scale).
uint64_t gemv_block_bytes(const GemvSpec& s, bool ternary, const MachineParams& mp);
// Host bytes of one PE's LUT-packed ternary block (the host's storage, never charged to a PE).
uint64_t gemv_host_block_bytes(const GemvSpec& s);

// Ternary weights, int8 activations, exact int32 y. The constructor packs every local PE's block
// (collective; LimitError if the packed blocks exceed a PE's SRAM).
class MeshGemvTernary {
 public:
  // W: (M, K) int8 in {-1, 0, 1}, row-major, on every rank. W == nullptr: timing only (nothing
  // allocated for weights; the SRAM is charged and every block GEMV is charged but not computed, so
  // the partial sums are zero; every virtual figure equals a run with weights).
  MeshGemvTernary(Fabric& f, const GemvSpec& s, const int8_t* W);
  ~MeshGemvTernary();
  // x: (K) on every rank. y: (M) written on rank 0 (nullptr: not gathered). Collective.
  GemvReport run(const int8_t* x, int32_t* y);
  // On tiles already in place: x_tiles holds kt = ceil(K/P) elements per PE of the region in the
  // x layout of the spec; returns y tiles (mt = ceil(M/P) per PE) in the y layout. Collective.
  TileBuf<int32_t> run_tiles(const TileBuf<int8_t>& x_tiles, GemvReport* rep);
  // When every PE of a line ends with the line's y block (a broadcasting allreduce): run_tiles
  // without building the y tiles on the host, for a caller that turns them into something else at
  // once. The same steps, charges and figures (no report): the y tiles' SRAM is charged as
  // run_tiles charges it, and stays held while the caller keeps `tiles` (as long as it would keep
  // run_tiles' result). `sums`: every line's y block, (P, mt) in line order, valid until the next
  // run; PE (x, y)'s y tile is the block of line_of(x, y). Collective.
  struct LineSums {
    const int32_t* sums;
    SramCharge tiles;
  };
  bool has_line_sums() const;
  LineSums run_line_sums(const TileBuf<int8_t>& x_tiles);
  int64_t line_of(int32_t x, int32_t y) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// fp32 weights and activations. y is bit-identical for every rank count (fixed summation order).
class MeshGemvF32 {
 public:
  // W: (M, K) fp32, row-major, on every rank; nullptr: timing only (as MeshGemvTernary).
  MeshGemvF32(Fabric& f, const GemvSpec& s, const float* W);
  ~MeshGemvF32();
  GemvReport run(const float* x, float* y);
  TileBuf<float> run_tiles(const TileBuf<float>& x_tiles, GemvReport* rep);
  // The host keeps the blocks in bf16 (every weight is exact in bf16; see kernels::gemv_bf16_panels).
  bool host_bf16() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One process: y in the summation order of MeshGemvF32 (block GEMVs, then the allreduce's order).
std::vector<float> gemv_f32_reference(const GemvSpec& s, const float* W, const float* x);

}  // namespace wm::dist
