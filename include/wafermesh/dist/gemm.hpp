#pragma once
// Distributed GEMM on a P x P region of the mesh (DESIGN.md §4): MeshGEMM, with Cannon and SUMMA
// as baselines, behind one interface.
//
// Tiling: M, K and N are padded up to multiples of P (zeros; never seen by the caller) and cut
// into P x P blocks of mt x kt (A), kt x nt (B) and mt x nt (C). Logical PE (r, c) holds block
// (r, c) of every operand. Cannon and SUMMA place logical (r, c) at physical (x0 + c, y0 + r);
// MeshGEMM places rows and columns on the interleaved ring (line_plans.hpp), so logical
// neighbours are at most two hops apart.
//
//   meshgemm / cannon, C = A B:   skew row r of A by r and column c of B by c on the ring (at most
//     P/2 steps, each way round), then P steps of C += A B with A shifting one place along X and
//     B along Y, the next shift in flight while the PE computes (double buffering).
//   meshgemm / cannon, C = A B^T (B stored N x K, never transposed): skew column c of B by c; then
//     P steps: the PE adds A[r][c] B[j][c]^T into the travelling partial sum of C[r][j], B shifts
//     along Y and the partial sums along X the other way; a final skew puts C[r][j] at column j.
//   summa: for k = 0..P-1, column k broadcasts its A tiles along the rows and row k its B tiles
//     along the columns (the next broadcast in flight during compute). All P broadcast patterns
//     stay configured: O(P) route entries per PE, as on the wafer. C = A B^T: row k broadcasts its
//     B tiles along the columns, every PE multiplies, and a chain reduction along each row puts
//     C[r][k] at column k.
//
// Summation order (fixed by the logical grid, so results are bit-identical for every rank count):
// every block product is one kernel call (fp32: acc = 0; acc += a*b over k; C = C + acc), and the
// block products of C[r][j] are added in the order the algorithm visits them; gemm_reference
// reproduces that order in one process.
#include <cstdint>
#include <string>
#include <vector>

#include "wafermesh/noc/fabric.hpp"
#include "wafermesh/noc/line_plans.hpp"
#include "wafermesh/noc/tile_buf.hpp"

namespace wm::dist {

enum class GemmAlgo { meshgemm, cannon, summa };
GemmAlgo gemm_algo_from_name(const std::string& name);  // throws UsageError listing the names
const char* gemm_algo_name(GemmAlgo a);

struct GemmSpec {
  GemmAlgo algo = GemmAlgo::meshgemm;
  int32_t P = 1;              // region side, PEs
  PeCoord origin{0, 0};       // region's top-left PE
  int64_t M = 1, K = 1, N = 1;
  bool transpose_b = false;   // C = A B^T, B stored (N, K)
  bool double_buffer = true;  // overlap the next transfer with compute (needs twice the operand SRAM)
  // false: timing only. Tiles of zeros move exactly as the operands' tiles would and every block
  // product is charged, but none is computed (A, B and C may be null): the same virtual figures
  // as the full run, for calibrating and sizing without the host arithmetic.
  bool compute = true;
  // meshgemm / cannon, C = A B only: the operands are loaded already aligned (the host writes row r
  // of A rotated by r and column c of B by c), so the skew moves nothing and costs nothing. The
  // published MeshGEMM cycles are of this phase alone (DESIGN.md section 3, "Calibration").
  bool preskewed = false;
};

// Figures of one run. Cycles are virtual (the wafer); wall time is the emulation's.
struct GemmReport {
  uint64_t total_cycles = 0;             // last PE done minus start (all PEs of the region start together)
  uint64_t compute_cycles = 0;           // most compute cycles any PE spent
  uint64_t comm_cycles = 0;              // on the critical PE: total minus its compute
  uint64_t max_hops = 0;                 // longest single transfer
  uint64_t max_route_entries = 0;        // peak route entries on any PE
  uint64_t peak_sram_bytes = 0;          // peak SRAM on any PE
  uint64_t noc_bytes = 0;                // bytes injected into the NoC, all PEs
  uint64_t max_step_latency_cycles = 0;  // longest modelled latency of one main-loop transfer
  uint64_t steps = 0;                    // main-loop steps (P)
  double wall_s = 0;                     // emulation wall time of the algorithm (tiles in -> tiles out)
};

// Throws UsageError when the region does not fit the mesh or a dimension is < 1.
void check_gemm_spec(const MeshShape& mesh, const GemmSpec& s);

// A (M, K) and B (K, N), or (N, K) with transpose_b, row-major, present on every rank (each rank
// takes the tiles of its PEs). C (M, N) is written on rank 0 only; pass nullptr to skip the gather.
// Collective over the fabric. Throws UsageError for a region outside the mesh, LimitError when
// the tiles exceed a PE's SRAM (naming the PE, the need and the limit).
GemmReport gemm_f32(Fabric& f, const GemmSpec& s, const float* A, const float* B, float* C);
// int8 activations x ternary weights {-1, 0, +1}, exact int32 results; B tiles travel packed in
// the lookup-table format (kernels/pack.hpp).
GemmReport gemm_ternary(Fabric& f, const GemmSpec& s, const int8_t* A, const int8_t* B, int32_t* C);

// The operands as tiles, for callers whose data already lives on the PEs (the prefill of a model,
// where one GEMM's output is the next one's input). Logical block (r, c) of every operand sits on
// PE (origin.x + perm.phys(c), origin.y + perm.phys(r)) with perm = gemm_line_perm(s): interleaved
// for meshgemm, natural for cannon and summa. Tiles hold mt x kt (A), kt x nt or nt x kt (B, as
// above; ternary B tiles in the packed form of the host path's) and mt x nt (C) elements, zero
// beyond the matrix. The steps, clocks and results are those of gemm_f32 / gemm_ternary on the
// same matrices; only the loading from and the gathering to the host are left out. A is left as it
// was for C = A B^T and summa; cannon and meshgemm C = A B skew and shift A (and B always) in place.
// Collective. `rep` (optional) receives the run's figures; without it the run skips the report's
// collectives and passes over the region (the PEs' figures are the same). With s.compute = false (timing only) the
// tiles move and every product is charged but none is computed (C is zero, B may be nullptr);
// s.preskewed is not accepted here.
LinePerm gemm_line_perm(const GemmSpec& s);
// B (weights) from the host, present on every rank, as for gemm_f32.
TileBuf<float> gemm_f32_tiles(Fabric& f, const GemmSpec& s, TileBuf<float>& a, const float* B,
                              GemmReport* rep = nullptr);
TileBuf<float> gemm_f32_tiles(Fabric& f, const GemmSpec& s, TileBuf<float>& a, TileBuf<float>& b,
                              GemmReport* rep = nullptr);
TileBuf<int32_t> gemm_ternary_tiles(Fabric& f, const GemmSpec& s, TileBuf<int8_t>& a, const int8_t* B,
                                    GemmReport* rep = nullptr);

// One process, no fabric: C in exactly the summation order of s.algo (bitwise equal to gemm_f32).
void gemm_f32_reference(const GemmSpec& s, const float* A, const float* B, float* C);

}  // namespace wm::dist
