#pragma once
// The switch from the prefill placement to the decode placement (DESIGN.md section 4, "Layer
// placement"; placement_tuning.hpp chooses the two). After the prompt, every layer's weights and
// its KV cache move from the layer's prefill region to its decode region over the NoC, charged as
// a re-placement (dist/replace.hpp): each destination PE receives its bytes from the source PEs at
// the modelled distance, bandwidth and link load, every piece leaving its PE at that PE's clock
// when the prompt is done.
//
// What is moved, as the wafer holds it: per layer, the seven projections as row-major block
// tilings of the model's matrices (W_q, W_k, W_v, W_1, W_3 rows x dim; W_o, W_2 dim x columns),
// at the wafer's dtype or ternary format; the keys and values of every prompt token, tokens along
// Y in the rows the decode cache's policy leaves after that many tokens, kv_dim along X. Layers
// whose source and destination regions match move in the same steps (copies of one tiling). The
// norm weights (a vector per layer) and the classifier (on regions of its own, placed at the same
// side only when both phases share it) are not moved: the classifier regions of both placements
// are charged as the decode placement's from the start.
//
// SRAM. The prefill placement releases its SRAM before the decode placement charges its own: the
// data in flight is staged outside the PEs' SRAM (an idealisation: a wafer would stream it from
// memory that the arriving data overwrites, or stage through free PEs). Values: the KV caches'
// values move exactly (read off the prefill placement, loaded into the decode placement in the
// layout decoding leaves); the weights' values come from the weight source, as the placement of
// any model's weights does.
#include <cstdint>
#include <memory>
#include <vector>

#include "wafermesh/dist/replace.hpp"
#include "wafermesh/model/mesh_transformer.hpp"

namespace wm::model {

struct PhaseSwitchReport {
  uint64_t start_cycles = 0;  // the prompt's logits ready (the prefill placement's end)
  uint64_t end_cycles = 0;    // every piece arrived
  uint64_t weight_bytes = 0;  // moved between PEs
  uint64_t kv_bytes = 0;
  size_t rounds = 0;          // fabric steps
  WorkCounts work;            // what the mesh did for it (its dynamic energy: noc/energy.hpp)
  double wall_s = 0;          // emulation time of the switch (placing the decode placement included)
  uint64_t cycles() const { return end_cycles - start_cycles; }
};

// The items of the re-placement between two placements of cfg at sides Pa and Pb for `tokens`
// cached tokens (per pair of regions: the weights, then the KV caches, flagged in *is_kv). Empty
// when nothing would move.
std::vector<dist::ReplaceItem> switch_items(const ModelConfig& cfg, const MachineParams& mp, const MeshPlacement& from,
                                            const MeshPlacement& to, dist::KvPolicy policy, int64_t tokens,
                                            std::vector<bool>* is_kv = nullptr);

// Destroys `from` (its SRAM released), places the model again with `to` (weights from `source`),
// loads the KV caches' values, charges the re-placement, and returns the decode placement, whose
// next position starts after the switch. Collective.
std::unique_ptr<MeshTransformer> switch_placement(Fabric& f, const WeightSource& source,
                                                  std::unique_ptr<MeshTransformer> from, const MeshPlacementSpec& to,
                                                  PhaseSwitchReport& report, const ProgressFn& progress = {});

}  // namespace wm::model
