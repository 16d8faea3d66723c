#pragma once
// Choosing the placement as wafer systems do (DESIGN.md section 4, "Layer placement"): for every
// candidate region side P, the emulator itself measures what a layer, a hand-off between regions
// and the classifier cost at that side, and the side with the smallest modelled decode time per
// token wins (the prompt's time is reported beside it).
//
// The probe of a side P is a timing-only run (weights = none: nothing is allocated for weights,
// every figure is a full run's, see weights.hpp) of the same shape cut to two layers on two regions
// of P x P (one layer each) with the model's classifier: the prompt (prefilled as MeshGEMMs or
// token by token, as the real run will), then two decoded tokens. Every layer of a decode position
// costs the same on any region (the regions are alike and the costs depend on distances only), and
// so does every hand-off between consecutive regions, so with `per` layers on each of the model's
// R = ceil(layers / per) regions
//   decode(P, per) = layers * layer + (R - 1) * hand-off + classifier     (second decoded token)
// and the same for the prompt. The classifier's cost depends on P and the vocabulary only. For a
// given side, more layers per region means fewer hand-offs, so `per` is as many as the SRAM holds;
// the estimate is exact on one region and within 0.1% otherwise (hand-offs between bands and the
// classifier's chain cross slightly different distances; the MeshGEMM prompt within 0.2%, its
// layers differ by a few cycles; tested), and the real run prints its own figures.
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
  double probe_wall_s = 0;         // emulation time of the probe
  bool ok() const { return status == "ok"; }
};

struct PlacementChoice {
  int32_t P = 0;  // the chosen side (decode time, then the prompt's, then the smaller side)
  std::vector<PlacementCandidate> candidates;  // every side tried, in the order given
};

// Sides to try: a geometric ladder from 8 to the mesh's shorter side, and the smallest and the
// largest side the model fits (by MeshTransformer::plan, without emulating).
std::vector<int32_t> candidate_sides(const MeshShape& mesh, const MachineParams& mp, const ModelConfig& cfg,
                                     const MeshPlacementSpec& spec);

// Probes every side (collective over the fabric's communicator; `mp` as the real run's, rank grid
// included) for a prompt of `prompt_tokens` tokens (BOS included) and `spec` (P ignored). A side
// the model does not fit is kept as infeasible with the reason. LimitError when no side fits.
// `progress` receives one line per side.
PlacementChoice tune_placement(MPI_Comm comm, const MachineParams& mp, const ModelConfig& cfg,
                               const MeshPlacementSpec& spec, int64_t prompt_tokens, bool gemm_prefill,
                               const std::vector<int32_t>& sides,
                               const std::function<void(const std::string&)>& progress = {});

}  // namespace wm::model
