// The placement tuner: each candidate's probes (two layers, timing only) predict the whole model's
// decode cycles of the second decoded token within 0.1% (exactly on one region), as the full
// decode placement at that side gives them (its caches loaded with the prompt), and its time to
// first token within 0.1% (token by token) or 0.2% (MeshGEMM prefill), as the full prefill
// placement gives it; the decode side has the least decode time, the prefill side the least time
// to first token, independently; sides the model does not fit are kept with the reason. At 1, 2
// and 4 ranks.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "fabric_test_util.hpp"
#include "stories260K.hpp"
#include "wafermesh/model/generate.hpp"
#include "wafermesh/model/placement_tuning.hpp"
#include "wafermesh/model/weights.hpp"

using namespace wm;
using namespace wm::model;
using namespace wm::model::testing_support;

namespace {

struct Actual {
  uint64_t prefill = 0, decode = 0;
  size_t regions = 0, prefill_regions = 0;
};

// The full placements at side P (timing only): the prompt on the prefill placement (`spec`); two
// tokens on the decode placement (spec without the prefill's room) after its caches are loaded
// with the prompt, the second's cycles.
Actual actual(const MachineParams& mp, const ModelConfig& cfg, const MeshPlacementSpec& spec,
              const std::vector<int>& prompt, bool gemm) {
  ModelConfig none = cfg;
  none.weights = "none";
  const ShapeOnlySource src(none);
  Actual a;
  {
    Fabric f(MPI_COMM_WORLD, mp);
    MeshTransformer mt(f, src, spec);
    a.prefill_regions = mt.placement().layer_regions.size();
    if (gemm) {
      mt.prefill(prompt);
      a.prefill = mt.last_token().total;
    } else {
      for (int pos = 0; pos < int(prompt.size()); ++pos) {
        mt.forward(prompt[size_t(pos)], pos);
        a.prefill += mt.last_token().total;
      }
    }
  }
  MeshPlacementSpec ds = spec;
  ds.prefill_tokens = 0;
  Fabric f(MPI_COMM_WORLD, mp);
  MeshTransformer mt(f, src, ds);
  a.regions = mt.placement().layer_regions.size();
  mt.load_kv(int64_t(prompt.size()), {});
  mt.forward(0, int(prompt.size()));
  mt.forward(0, int(prompt.size()) + 1);
  a.decode = mt.last_token().total;
  return a;
}

void check(const MachineParams& mp, const ModelConfig& cfg, const std::vector<int32_t>& sides, bool gemm,
           const std::string& what) {
  MeshPlacementSpec spec;
  const int64_t n = 6;
  spec.context = n + 2;
  spec.prefill_tokens = gemm ? n : 0;  // as generate places for a MeshGEMM prefill
  const std::vector<int> prompt = synthetic_prompt(n, 1, cfg.vocab, spec.context, spec.context);
  const PlacementChoice c = tune_placement(MPI_COMM_WORLD, mp, cfg, spec, n, gemm, sides);
  ASSERT_EQ(c.candidates.size(), sides.size()) << what;
  uint64_t best = 0, best_prefill = 0;
  bool several = false;
  for (const PlacementCandidate& k : c.candidates) {
    if (!k.ok()) continue;
    ASSERT_TRUE(k.prefill_ok()) << what << ": " << k.prefill_status;
    if (best == 0 || k.decode_cycles < best) best = k.decode_cycles;
    if (best_prefill == 0 || k.prefill_cycles < best_prefill) best_prefill = k.prefill_cycles;
    MeshPlacementSpec s = spec;
    s.P = k.P;
    if (gemm) {  // the measured working set: below plan()'s upper estimate, and what the full placement reserves
      EXPECT_GT(k.prefill_reserve_bytes, 0u) << what;
      MachineParams roomy = mp;  // plan()'s estimate, whether or not it fits
      roomy.sram_bytes = 1 << 30;
      EXPECT_LE(k.prefill_reserve_bytes,
                MeshTransformer::plan({int32_t(mp.width_pes), int32_t(mp.height_pes)}, roomy, cfg, s).prefill_bytes_per_pe)
          << what << ", side " << k.P;
      s.prefill_reserve_bytes = k.prefill_reserve_bytes;
    }
    const Actual a = actual(mp, cfg, s, prompt, gemm);
    const std::string at = what + ", side " + std::to_string(k.P);
    EXPECT_EQ(int64_t(a.regions), k.layer_regions) << at;
    EXPECT_EQ(int64_t(a.prefill_regions), k.prefill_layer_regions) << at;
    several = several || a.regions > 2 || a.prefill_regions > 2;
    if (a.regions == 1) {  // no hand-off: the probe's layer is every layer
      EXPECT_EQ(k.decode_cycles, a.decode) << at;
    }
    // hand-offs between bands, and the classifier's chain, cross a little more or less
    EXPECT_LE(std::llabs(int64_t(k.decode_cycles) - int64_t(a.decode)) * 1000, int64_t(a.decode))
        << at << ": decode estimate " << k.decode_cycles << " vs " << a.decode;
    if (gemm) {  // the MeshGEMM pass's layers differ by a few cycles: the probe's mean, within 0.2%
      EXPECT_LE(std::llabs(int64_t(k.prefill_cycles) - int64_t(a.prefill)) * 500, int64_t(a.prefill))
          << at << ": prompt estimate " << k.prefill_cycles << " vs " << a.prefill;
    } else {
      EXPECT_LE(std::llabs(int64_t(k.prefill_cycles) - int64_t(a.prefill)) * 1000, int64_t(a.prefill))
          << at << ": prompt estimate " << k.prefill_cycles << " vs " << a.prefill;
    }
  }
  EXPECT_TRUE(several) << what << ": meant to include a placement over more than two regions (either phase)";
  for (const PlacementCandidate& k : c.candidates) {
    if (k.P == c.P) {
      EXPECT_EQ(k.decode_cycles, best) << what;
    }
    if (k.P == c.prefill_P) {
      EXPECT_EQ(k.prefill_cycles, best_prefill) << what;
    }
  }
}

}  // namespace

TEST(PlacementTuning, ProbesPredictTheFullPlacement) {
  ASSERT_TRUE(stories_present("stories260K.bin"));
  MachineParams mp;  // fitted costs
  mp.width_pes = 24;
  mp.height_pes = 20;
  for (bool gemm : {true, false}) {
    const std::string how = gemm ? ", MeshGEMM prefill" : ", token by token";
    mp.sram_bytes = 24 * 1024;  // one stories260K layer per 4 x 4 region: five regions, hand-offs
    check(mp, stories_config(), {4, 5, 6, 8}, gemm, "stories260K fp32" + how);  // 5: odd kv blocks
    ModelConfig t = stories_config();
    t.ternary = true;
    // Ternary weights at 2 bits: a layer of 992 bytes on 4 x 4 PEs beside 1,607 bytes of decode
    // scratch (2 layers a region: three regions) or the MeshGEMM prefill's working set of the 6
    // tokens as measured (plan()'s upper estimate, 4,254 bytes, would not fit at all).
    mp.sram_bytes = 4 * 1024;
    check(mp, t, {4, 6, 8}, gemm, "stories260K ternarised" + how);
  }
}

TEST(PlacementTuning, SidesThatDoNotFitAreKeptWithTheReason) {
  MachineParams mp;
  mp.width_pes = 24;
  mp.height_pes = 20;
  ModelConfig cfg = stories_config();
  MeshPlacementSpec spec;
  spec.context = 8;
  // 1: a layer is more than a PE's SRAM; 12: kv_dim 32 in blocks of 3 (RoPE pairs over the NoC);
  // 30: larger than the mesh.
  const PlacementChoice c = tune_placement(MPI_COMM_WORLD, mp, cfg, spec, 4, true, {1, 8, 12, 30});
  ASSERT_EQ(c.candidates.size(), 4u);
  EXPECT_NE(c.candidates[0].status.find("pe.sram_bytes = 49152"), std::string::npos) << c.candidates[0].status;
  EXPECT_TRUE(c.candidates[1].ok()) << c.candidates[1].status;
  EXPECT_TRUE(c.candidates[2].ok()) << c.candidates[2].status;
  EXPECT_NE(c.candidates[3].status.find("does not fit"), std::string::npos) << c.candidates[3].status;
  EXPECT_TRUE(c.P == 8 || c.P == 12);
  mp.sram_bytes = 1000;
  EXPECT_THROW(tune_placement(MPI_COMM_WORLD, mp, cfg, spec, 4, true, {8, 12}), LimitError);
}
