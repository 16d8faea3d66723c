// The placement tuner: every candidate side probed by a timing-only run of two layers (see
// placement_tuning.hpp for the model of the estimate).
#include "wafermesh/model/placement_tuning.hpp"

#include <algorithm>
#include <chrono>
#include <exception>

#include "wafermesh/dist/host_io.hpp"
#include "wafermesh/model/generate.hpp"
#include "wafermesh/model/weights.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::model {

std::vector<int32_t> candidate_sides(const MeshShape& mesh, const MachineParams& mp, const ModelConfig& cfg,
                                     const MeshPlacementSpec& spec) {
  const int32_t most = std::min(mesh.width, mesh.height);
  std::vector<int32_t> sides;
  for (int32_t P : {8, 12, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 448, 512, 640, 720})
    if (P <= most) sides.push_back(P);
  if (sides.empty() || sides.back() != most) sides.push_back(most);
  // The smallest and the largest side the model fits (plan() only: no emulation), which a ladder
  // can miss when only a narrow band of sides fits.
  int32_t lo = 0, hi = 0;
  for (int32_t P = 1; P <= most; ++P) {
    MeshPlacementSpec s = spec;
    s.P = P;
    try {
      (void)MeshTransformer::plan(mesh, mp, cfg, s);
    } catch (const std::exception&) {
      continue;
    }
    if (!lo) lo = P;
    hi = P;
  }
  for (int32_t P : {lo, hi})
    if (P && std::find(sides.begin(), sides.end(), P) == sides.end()) sides.push_back(P);
  std::sort(sides.begin(), sides.end());
  return sides;
}

namespace {

// A position's cycles with the layers, hand-offs and classifier of the whole model: `layers` layers
// costing what the probe's layers cost on average, `handoffs` hand-offs at the probe's price.
uint64_t whole_model(const TokenCycles& tc, int64_t layers, int64_t handoffs) {
  uint64_t sum = 0;
  for (const LayerCycles& l : tc.layers) sum += l.total();
  const uint64_t per_layer = tc.layers.empty() ? 0 : sum / uint64_t(tc.layers.size());
  return uint64_t(layers) * per_layer + uint64_t(handoffs) * tc.handoff + tc.classifier;
}

}  // namespace

PlacementChoice tune_placement(MPI_Comm comm, const MachineParams& mp, const ModelConfig& cfg,
                               const MeshPlacementSpec& spec, int64_t prompt_tokens, bool gemm_prefill,
                               const std::vector<int32_t>& sides,
                               const std::function<void(const std::string&)>& progress) {
  const MeshShape mesh{int32_t(mp.width_pes), int32_t(mp.height_pes)};
  const bool gemm = gemm_prefill && prompt_tokens > 1;
  PlacementChoice choice;
  std::string last_error;
  // The probe's model: two layers (one when the whole model sits on one region), timing only.
  auto probe_config = [&](int64_t layer_regions) {
    ModelConfig pc = cfg;
    pc.layers = layer_regions > 1 ? 2 : 1;
    pc.weights = "none";
    return pc;
  };
  auto probe_spec = [&](MeshPlacementSpec s) {
    s.max_layers_per_region = 1;
    s.context = std::max<int64_t>(s.context, prompt_tokens + 2);
    return s;
  };
  for (int32_t P : sides) {
    PlacementCandidate c;
    c.P = P;
    MeshPlacementSpec ds = spec, ps = spec;  // the decode and the prefill placement
    ds.P = ps.P = P;
    ds.prefill_tokens = 0;
    if (!gemm) ps.prefill_tokens = 0;
    MeshPlacement dpl, ppl;
    try {
      dpl = MeshTransformer::plan(mesh, mp, cfg, ds);
    } catch (const std::exception& e) {
      c.status = c.prefill_status = std::string("infeasible: ") + e.what();
      last_error = e.what();
      choice.candidates.push_back(c);
      if (progress) progress("side " + std::to_string(P) + ": " + c.status);
      continue;
    }
    c.layers_per_region = dpl.layers_per_region;
    c.layer_regions = int64_t(dpl.layer_regions.size());
    c.classifier_regions = int64_t(dpl.classifier_regions.size());
    try {
      ppl = MeshTransformer::plan(mesh, mp, cfg, ps);
      c.prefill_layers_per_region = ppl.layers_per_region;
      c.prefill_layer_regions = int64_t(ppl.layer_regions.size());
    } catch (const std::exception& e) {
      c.prefill_status = std::string("infeasible: ") + e.what();
    }
    const std::vector<int> prompt =
        synthetic_prompt(prompt_tokens, 1, cfg.vocab, probe_spec(ds).context, probe_spec(ds).context);
    const auto w0 = std::chrono::steady_clock::now();
    // Decodes two tokens after the prompt on `mt` (whose caches hold the prompt) into c.
    auto decode_two = [&](MeshTransformer& mt, int pos) {
      mt.forward(0, pos);
      mt.forward(0, pos + 1);
      const TokenCycles& tc = mt.last_token();
      c.decode_cycles = whole_model(tc, cfg.layers, c.layer_regions - 1);
      c.layer_decode_cycles = whole_model(tc, 1, 0) - tc.classifier;
      c.handoff_decode_cycles = tc.handoff;
      c.classifier_decode_cycles = tc.classifier;
    };
    // The prompt on `mt` (empty caches) into c.prefill_cycles, with `handoffs` hand-offs.
    auto run_prompt = [&](MeshTransformer& mt, int64_t handoffs) {
      if (gemm) {
        mt.prefill(prompt);
        c.prefill_cycles = whole_model(mt.last_token(), cfg.layers, handoffs);
        return int(prompt.size());
      }
      int pos = 0;
      for (; pos < int(prompt.size()); ++pos) {
        mt.forward(prompt[size_t(pos)], pos);
        c.prefill_cycles += whole_model(mt.last_token(), cfg.layers, handoffs);
      }
      return pos;
    };
    // With a MeshGEMM prefill the prefill placement's stacking depends on its measured working set:
    // the probes are separate (below).
    bool joint = !gemm && c.prefill_ok() && c.same_stacking();
    if (joint) {  // one placement serves both phases: one probe
      try {
        const ModelConfig pc = probe_config(c.layer_regions);
        const ShapeOnlySource src(pc);
        Fabric f(comm, mp);
        MeshTransformer mt(f, src, probe_spec(ps));
        const int pos = run_prompt(mt, c.layer_regions - 1);
        decode_two(mt, pos);
      } catch (const LimitError& e) {  // e.g. the prompt's MeshGEMM tiles beside the weights
        c.prefill_status = std::string("infeasible: ") + e.what();
        c.prefill_cycles = 0;
        joint = false;
        if (!gemm) {  // the prompt ran through the decode path: the side does not fit at all
          c.status = c.prefill_status;
          last_error = e.what();
        }
      }
    }
    if (!joint && c.ok()) {
      try {  // the decode placement: the caches loaded with the prompt, then two tokens
        const ModelConfig pc = probe_config(c.layer_regions);
        const ShapeOnlySource src(pc);
        Fabric f(comm, mp);
        MeshTransformer mt(f, src, probe_spec(ds));
        mt.load_kv(int64_t(prompt.size()), {});
        decode_two(mt, int(prompt.size()));
      } catch (const LimitError& e) {
        c.status = std::string("infeasible: ") + e.what();
        last_error = e.what();
      }
      if (gemm) {
        // The prefill placement: the prompt on two layers, one a region, with nothing reserved for
        // the prefill beyond the decode scratch (the fabric enforces every PE's real SRAM); its
        // working set is the most any layer PE then holds above what it held before the prompt.
        // The placement of the whole model reserves that much and stacks its layers accordingly.
        c.prefill_status = "ok";
        try {
          const ModelConfig pc = probe_config(cfg.layers);
          const ShapeOnlySource src(pc);
          Fabric f(comm, mp);
          MeshPlacementSpec s1 = probe_spec(ps);
          s1.prefill_reserve_bytes = 1;
          MeshTransformer mt(f, src, s1);
          const std::vector<Region> regions = mt.placement().layer_regions;
          std::vector<uint64_t> before;
          for (const Region& R : regions)
            for (const PeCounters& k : f.gather_counters(R)) before.push_back(k.sram_bytes);
          mt.prefill(prompt);
          const TokenCycles tc = mt.last_token();
          std::vector<uint64_t> ws(1, 0);
          size_t i = 0;
          for (const Region& R : regions)
            for (const PeCounters& k : f.gather_counters(R)) ws[0] = std::max(ws[0], k.sram_peak_bytes - before[i++]);
          dist::broadcast_from_rank0(f, ws);
          c.prefill_reserve_bytes = std::max<uint64_t>(ws[0], 1);
          MeshPlacementSpec full = ps;
          full.prefill_reserve_bytes = c.prefill_reserve_bytes;
          const MeshPlacement ppl2 = MeshTransformer::plan(mesh, mp, cfg, full);
          c.prefill_layers_per_region = ppl2.layers_per_region;
          c.prefill_layer_regions = int64_t(ppl2.layer_regions.size());
          c.prefill_cycles = whole_model(tc, cfg.layers, c.prefill_layer_regions - 1);
        } catch (const LimitError& e) {
          c.prefill_status = std::string("infeasible: ") + e.what();
        } catch (const UsageError& e) {
          c.prefill_status = std::string("infeasible: ") + e.what();
        }
      } else if (c.prefill_ok()) {
        try {  // the prefill placement: the prompt
          const ModelConfig pc = probe_config(c.prefill_layer_regions);
          const ShapeOnlySource src(pc);
          Fabric f(comm, mp);
          MeshTransformer mt(f, src, probe_spec(ps));
          (void)run_prompt(mt, c.prefill_layer_regions - 1);
        } catch (const LimitError& e) {
          c.prefill_status = std::string("infeasible: ") + e.what();
        }
      }
    }
    if (!c.prefill_ok()) c.prefill_cycles = 0;
    c.probe_wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
    if (progress)
      progress("side " + std::to_string(P) + ": " +
               (c.ok() ? std::to_string(c.decode_cycles) + " cycles per token" : c.status) + "; " +
               (c.prefill_ok() ? std::to_string(c.prefill_cycles) + " to first token" : "prefill " + c.prefill_status));
    choice.candidates.push_back(c);
  }
  const PlacementCandidate *best = nullptr, *best_prefill = nullptr;
  for (const PlacementCandidate& c : choice.candidates) {
    if (c.ok() && (!best || c.decode_cycles < best->decode_cycles ||
                   (c.decode_cycles == best->decode_cycles && c.prefill_cycles < best->prefill_cycles)))
      best = &c;
    if (c.prefill_ok() && (!best_prefill || c.prefill_cycles < best_prefill->prefill_cycles)) best_prefill = &c;
  }
  if (!best)
    throw LimitError("model " + cfg.name + ": no region side of " + std::to_string(sides.size()) +
                     " tried fits the " + std::to_string(mesh.width) + " x " + std::to_string(mesh.height) +
                     " mesh (the last: " + last_error + ")");
  choice.P = best->P;
  // Without a MeshGEMM prefill the prompt runs through the decode placement.
  choice.prefill_P = !gemm ? best->P : best_prefill ? best_prefill->P : 0;
  return choice;
}

}  // namespace wm::model
