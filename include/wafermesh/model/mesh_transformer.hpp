#pragma once
// The transformer placed on the wafer (DESIGN.md §4): every layer's weights live on the PEs of a
// P x P region, one token at a time flows through the layers, and every figure comes from the
// virtual clocks.
//
// Placement. Regions of P x P PEs are cut from the mesh in bands along its longer axis (rows of
// regions on a wide mesh, columns on a tall one such as WSE-2), in snake order so consecutive
// regions touch; the first band runs through the middle of the mesh, then bands alternately on
// either side. Decode works on one region at a time, and a region split between ranks keeps them
// all busy: preferred_rank_grid puts rank blocks side by side across the bands, so the middle band
// straddles their boundary. Consecutive layers share a region as long as their weights, norm
// weights and KV cache (reserved for `context` tokens) fit a PE's SRAM next to the activation
// scratch; further layers continue on the next region (layer pipelining). The tied classifier
// (vocab x dim, fp32, each PE's block in row panels) follows on its own regions, cut by vocabulary
// rows and taken alternately from both sides of the middle band (they compute at once, so both
// halves of the mesh share the work), fed by two chains of adjacent regions.
// A model that does not fit is a LimitError with the numbers (per-PE need, limit, regions).
//
// Decode layout (no re-layout between projections). Vectors are either "split along Y" (block r
// on every PE of row r: the residual stream x, dim) or "split along X" (block c on every PE of
// column c: q, k, v, the attention output, the FFN hidden vector). Every projection is a MeshGEMV
// (dist/gemv.hpp) whose reduction axis alternates:
//   x --rmsnorm--> W_q, W_k, W_v (reduce Y) --> RoPE --> GQA attention + KV cache (dist/kv_cache)
//     [--sub-norm] --> W_o (reduce X) --> x +=
//   x --rmsnorm--> W_1, W_3 (reduce Y) --> silu(a) * b | relu(a)^2 * b [--sub-norm] --> W_2 (reduce X) --> x +=
// W_q's rows and W_o's columns are laid out so that query head (kvh, j) sits on the PEs of key head
// kvh (see kv_cache.hpp). Norm sums and absmax scales are allreduces of one element; the
// vector moves to the next region through one column (P transfers) and a row broadcast.
//
// Numerics. fp32 models: the fp32 MeshGEMV and fp32 elementwise code. Ternary models: every
// projection is BitLinear (ternary weights with the tensor's absmean scale, int8 activations with
// the token's absmax scale, exact int32 sums), with bitlinear.hpp's epilogue `dot / s * gamma`.
// Norms, RoPE, attention, residuals and the classifier are fp32. Sums follow the virtual PEs (a
// block's elements in index order, then the allreduce tree), so logits are bit-identical for every
// rank count and layout; they differ from the single-process reference only in the order of fp32
// sums (model/mesh_order_reference.hpp reproduces that order).
//
// Prefill (prefill()): all prompt tokens at once, on the mesh. The prompt's activations live as
// tiles on the PEs of the region that computes them, tokens along Y and features along X, in the
// MeshGEMM's placement (src/model/prompt_tiles.hpp); a rank holds its own PEs' tiles only. Every
// projection is a MeshGEMM of the transposed variant, C = X W^T (dist/gemm.hpp; the weights are
// never transposed), whose output layout is the next one's input layout. Norm sums, absmax scales
// and the softmax's maxima and sums are allreduces along the rows of PEs, one value per token of
// the row. RoPE, the gate and the residuals work on the tiles in place. Per query head the head's
// queries, keys and values move along the rows into the layout of a GEMM over head_dim, S = Q_h
// K_kvh^T is a transposed MeshGEMM, the causal softmax runs on S's tiles, O_h = S V_kvh a MeshGEMM,
// and O_h moves back into the query layout. Each token's key and value then travel to the row of
// the decode KV cache that takes it (the layout switch to decode), the prompt's tiles move to the
// next layer region when the layers continue there, and the last token's vector switches to the
// decode layout for the classifier: all of it fabric steps, charged. fp32 sums follow MeshGEMM's
// order and the rows' allreduce trees (MeshOrderReference::prefill reproduces both); ternary
// projections stay exact. The GEMM holds its own tiles of the weights (its data flow moves them),
// so it needs free SRAM beside the resident decode weights and the prompt's tiles: a region
// without it is a LimitError naming the PE (generate --prefill decode runs the prompt through the
// decode path instead).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "wafermesh/dist/allreduce.hpp"
#include "wafermesh/dist/kv_cache.hpp"
#include "wafermesh/model/model_config.hpp"
#include "wafermesh/model/weights.hpp"
#include "wafermesh/noc/fabric.hpp"

namespace wm::model {

struct MeshPlacementSpec {
  int32_t P = 8;                                // region side, PEs
  dist::KvPolicy kv_policy = dist::KvPolicy::shift;
  dist::AllreduceSpec allreduce;                // every allreduce of the model
  int64_t context = 0;                          // tokens the KV caches must hold (prompt + generated)
  int32_t max_layers_per_region = 0;            // 0: as many consecutive layers as a region's SRAM holds
  // A prompt of this many tokens will be prefilled as MeshGEMMs (0 or 1: none): every layer region
  // keeps room for the prefill's working set beside its layers.
  int64_t prefill_tokens = 0;
  // The prefill's working set per PE as measured (placement_tuning.hpp: the peak SRAM of a probe's
  // prefill above what its PEs held before), reserved instead of plan()'s upper estimate; 0: the
  // estimate.
  uint64_t prefill_reserve_bytes = 0;
};

// Where the model sits.
struct MeshPlacement {
  std::vector<Region> layer_regions;           // one per region used by layers
  std::vector<int32_t> region_of_layer;        // (layers) index into layer_regions
  std::vector<Region> classifier_regions;
  std::vector<int64_t> classifier_rows;        // vocabulary rows per classifier region
  // The classifier region that hands the final vector on to region i, or -1 for the last layer
  // region: chains on both sides of the middle band, fed from its end.
  std::vector<int32_t> classifier_source;
  uint64_t layer_bytes_per_pe = 0;             // one layer's weights + norm weights + KV reserve
  uint64_t kv_reserve_bytes_per_pe = 0;        // of which the KV cache (per layer)
  uint64_t scratch_bytes_per_pe = 0;           // activation scratch reserved per region (decode)
  uint64_t prefill_bytes_per_pe = 0;           // the MeshGEMM prefill's working set, when reserved
  int32_t layers_per_region = 0;
};

// Virtual cycles of one forward() (one token), split by what the wafer was doing.
struct LayerCycles {
  uint64_t compute = 0;    // local GEMV blocks and elementwise work (critical PE)
  uint64_t allreduce = 0;  // the projections' reductions, norm sums, absmax scales
  uint64_t kv = 0;         // KV append (with the shift step) and attention (its allreduces included)
  uint64_t total() const { return compute + allreduce + kv; }
};
// One span of a position's virtual time, between two of the stamps its figures come from (see
// PositionClock): a phase of a layer (its cycles are in the layer's compute, allreduce or kv), a
// hand-off between regions, or the classifier. The spans of a layer follow one another without
// gaps and their cycles add up to the layer's LayerCycles::total().
struct PhaseSpan {
  enum class Kind : uint8_t { compute, allreduce, kv, gemv, handoff, classifier };
  const char* name = "";  // e.g. "rmsnorm", "W_q", "attention"
  Kind kind = Kind::compute;
  int32_t layer = -1;     // -1: not in a layer
  int32_t region = -1;    // index into MeshPlacement::layer_regions; -1: the classifier regions
  uint64_t start = 0, end = 0;  // cycles
  uint64_t compute = 0;   // gemv: the first `compute` cycles are its block's multiply-accumulates, the rest its reduction
  WorkCounts work;        // what every PE of the mesh did during the span (energy)
};
// SRAM in use on a layer region at one stamp (traces): the most any of its PEs holds.
struct SramSample {
  int32_t region = 0;
  uint64_t at = 0, bytes = 0;
};
struct TokenCycles {
  uint64_t start = 0;             // virtual time the token (or prompt) entered the first region
  uint64_t total = 0;             // from the token entering the first region to its logits
  std::vector<LayerCycles> layers;
  uint64_t handoff = 0;           // moving the vector between regions
  uint64_t classifier = 0;        // final norm and logits
  double wall_s = 0;              // emulation wall time of forward() (slowest rank)
  WorkCounts work;                // what every PE of the mesh did meanwhile (its energy: noc/energy.hpp)
  std::vector<PhaseSpan> spans;   // every lap of the position, in order
  std::vector<SramSample> sram;   // with MeshTransformer::set_tracing(true) only
  std::vector<uint64_t> noc_bytes;  // with tracing: bytes each layer region sent during the position
};

using ProgressFn = std::function<void(const std::string& line)>;  // rank 0 prints, others ignore

class MeshTransformer {
 public:
  // Places every layer (reads the weights this rank's PEs hold from `source`; every rank reads the
  // tensors it needs whole, one at a time). Collective. UsageError for a spec that cannot run
  // (region larger than the mesh, RoPE pairs cut by the blocks), LimitError when the model does not
  // fit.
  MeshTransformer(Fabric& f, const WeightSource& source, const MeshPlacementSpec& spec,
                  const ProgressFn& progress = {});
  ~MeshTransformer();
  // Logits (vocab) for `token` at `pos` on every rank; pos = 0, 1, 2, ... in order (pos = tokens in
  // the KV caches). Collective.
  const float* forward(int token, int pos);
  // Logits (vocab) of the last of `tokens` at positions 0 .. n-1, all at once (see above); the KV
  // caches must be empty. One token is forward(token, 0). `progress` hears of every layer done.
  // Collective.
  const float* prefill(const std::vector<int>& tokens, const ProgressFn& progress = {});
  const TokenCycles& last_token() const;
  // The switch between placements (a prefill placement and a decode placement, model/phase_switch.hpp):
  // the KV cache of `layer`, (tokens, kv_dim) keys and values, on every rank (empty in a
  // timing-only run). Collective.
  void read_kv(int64_t layer, std::vector<float>& keys, std::vector<float>& values) const;
  // Fills the empty KV caches with n tokens, layer by layer from fill(layer, keys, values) ((n,
  // kv_dim) each; not called in a timing-only run, whose caches hold zeros), in the layout n
  // decoded positions leave: the next position is n. Charges SRAM, moves no clock. Collective.
  using KvFill = std::function<void(int64_t layer, std::vector<float>& keys, std::vector<float>& values)>;
  void load_kv(int64_t n, const KvFill& fill);
  // Virtual time the last position's logits were ready (0 before any), and a later time the next
  // position may not start before (the end of a switch between placements).
  uint64_t end_cycles() const;
  int64_t kv_tokens() const;  // tokens in every layer's KV cache
  void start_after(uint64_t cycles);
  // Records, for traces, what TokenCycles keeps only when tracing (SRAM samples, NoC bytes per
  // region). Changes no figure.
  void set_tracing(bool on);
  const MeshPlacement& placement() const;
  const ModelConfig& config() const;
  // Largest peak SRAM bytes / route entries of any PE since construction.
  uint64_t peak_sram_bytes() const;
  uint64_t peak_route_entries() const;
  // The classifier's weights are kept in bf16 on the host (exact in bf16, see MeshGemvF32).
  bool classifier_host_bf16() const;
  // The rank grid under which decode keeps the most ranks busy: the bands of regions run along the
  // mesh's longer axis, so at least two ranks across them put the middle band on both sides of a
  // block boundary. The default grid (choose_rank_grid) when it has two across, else the fewest
  // ranks across (at least two) that fit, else the default. Virtual figures do not depend on it.
  static RankGrid preferred_rank_grid(const MeshShape& mesh, int ranks);
  // Sets mp's rank grid to preferred_rank_grid when the user left it automatic (emu.ranks_x and
  // emu.ranks_y both 0) and there are several ranks; otherwise leaves mp alone.
  static void use_preferred_rank_grid(MachineParams& mp, int ranks);
  // The placement a spec would get, without placing anything (for errors before any work).
  static MeshPlacement plan(const MeshShape& mesh, const MachineParams& mp, const ModelConfig& cfg,
                            const MeshPlacementSpec& spec);

  struct Impl;  // the state, defined inside src/model (opaque here)

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace wm::model
