#pragma once
// Choosing the placement as wafer systems do (DESIGN.md section 4, "Layer placement"): for every
// candidate region side P, the emulator itself measures what a layer, a hand-off between regions
// and the classifier cost at that side, for each phase on its own placement. The decode side is
// the one with the least modelled decode time per token, the prefill side the one with the least
// modelled time to first token for the prompt, independently; when they differ (or their layers
// stack differently), generate prefills on one placement and decodes on the other, re-placing the
// KV cache and the weights over the NoC between them (phase_switch.hpp).
//
// The two placements of a side P differ in what a layer region keeps free: the decode placement
// only the decode scratch, the prefill placement the MeshGEMM prefill's working set
// (MeshPlacementSpec::prefill_tokens), so the decode placement may stack more layers per region.
//
// The probe of a placement is a timing-only run (weights = none: nothing is allocated for weights,
// every figure is a full run's, see weights.hpp) of the same shape cut to two layers on two regions
// of P x P (one layer each) with the model's classifier. Prefill placement: the prompt (prefilled
// as MeshGEMMs). Decode placement: the KV caches loaded with the prompt's tokens in the layout
// decoding leaves (MeshTransformer::load_kv), then two decoded tokens. When both placements of a
// side stack the same layers, one probe serves both (the prompt, then two decoded tokens; the
// decode figures equal the loaded caches', tested). Every layer of a decode position costs the
// same on any region (the regions are alike and the costs depend on distances only), and so does
// every hand-off between consecutive regions, so with `per` layers on each of the model's
// R = ceil(layers / per) regions
//   decode(P, per) = layers * layer + (R - 1) * hand-off + classifier     (second decoded token)
// and the same for the prompt. The classifier's cost depends on P and the vocabulary only. For a
// given side, more layers per region means fewer hand-offs, so `per` is as many as the SRAM holds;
// the estimate is exact on one region and within 0.1% otherwise (hand-offs between bands and the
// classifier's chain cross slightly different distances; the MeshGEMM prompt within 0.2%, its
// layers differ by a few cycles; tested), and the real run prints its own figures. The switch
// between placements is not part of either phase's estimate (generate reports it).
//
// Without a MeshGEMM prefill (the prompt through the decode path, or a one-token prompt) there is
// one placement per side and both phases use the decode side.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "wafermesh/model/mesh_transformer.hpp"
#include "wafermesh/model/model_config.hpp"

namespace wm::model {

struct PlacementCandidate {
  int32_t P = 0;                   // region side, PEs
  std::string status = "ok";       // or "infeasible: <reason>"
  int32_t layers_per_region = 0;
  int64_t layer_regions = 0;
  int64_t classifier_regions = 0;
  uint64_t layer_decode_cycles = 0;   // one layer, second decoded token
  uint64_t handoff_decode_cycles = 0; // one hand-off between consecutive regions
  uint64_t classifier_decode_cycles = 0;
  uint64_t decode_cycles = 0;      // the whole model per decoded token (formula above)
  uint64_t prefill_cycles = 0;     // the whole model's time to first token for the prompt
  // The prefill placement of this side (MeshGEMM prefill only; else the decode placement's).
  std::string prefill_status = "ok";  // or "infeasible: <reason>"
  int32_t prefill_layers_per_region = 0;
  int64_t prefill_layer_regions = 0;
  uint64_t prefill_reserve_bytes = 0;  // the prefill's measured working set per PE (MeshGEMM prefill)
  double probe_wall_s = 0;         // emulation time of the probes
  bool ok() const { return status == "ok"; }
  bool prefill_ok() const { return prefill_status == "ok"; }
  // The prefill placement stacks its layers as the decode placement does (one placement serves both).
  bool same_stacking() const {
    return prefill_layers_per_region == layers_per_region && prefill_layer_regions == layer_regions;
  }
};

struct PlacementChoice {
  int32_t P = 0;          // the decode side (least decode time, then the prompt's, then the smaller side)
  int32_t prefill_P = 0;  // the prefill side (least time to first token, then the smaller side); 0: none fits
  std::vector<PlacementCandidate> candidates;  // every side tried, in the order given
  const PlacementCandidate* find(int32_t side) const {
    for (const PlacementCandidate& c : candidates)
      if (c.P == side) return &c;
    return nullptr;
  }
  // The phases run on different placements (a switch between them): different sides, or the same
  // side with layers stacked differently.
  bool phases_differ() const {
    const PlacementCandidate* d = find(P);
    return prefill_P != 0 && (prefill_P != P || (d && !d->same_stacking()));
  }
};

// Sides to try: a geometric ladder from 8 to the mesh's shorter side, and the smallest and the
// largest side the model fits (by MeshTransformer::plan, without emulating).
std::vector<int32_t> candidate_sides(const MeshShape& mesh, const MachineParams& mp, const ModelConfig& cfg,
                                     const MeshPlacementSpec& spec);

// Probes every side (collective over the fabric's communicator; `mp` as the real run's, rank grid
// included) for a prompt of `prompt_tokens` tokens (BOS included) and `spec` (P ignored; its
// prefill_tokens the prefill placement's, the decode placement's is 0). A side a placement does not
// fit is kept as infeasible with the reason. LimitError when no side fits the decode placement;
// when none fits the prefill placement, prefill_P is 0. `progress` receives one line per side.
PlacementChoice tune_placement(MPI_Comm comm, const MachineParams& mp, const ModelConfig& cfg,
                               const MeshPlacementSpec& spec, int64_t prompt_tokens, bool gemm_prefill,
                               const std::vector<int32_t>& sides,
                               const std::function<void(const std::string&)>& progress = {});

}  // namespace wm::model
