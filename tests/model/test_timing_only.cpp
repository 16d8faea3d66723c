// Timing-only runs (weights = none, ShapeOnlySource): no weights held, every projection charged but
// not computed. Every virtual figure must equal the full run's of the same shape: each position's
// cycles (total, per layer and phase, hand-offs, classifier), every PE's clock and counters over
// the whole mesh, the peak SRAM and route entries. Checked on stories260K (fp32 and ternarised)
// and on a synthetic BitNet shape (ternary, relu2 with sub-norms, grouped-query attention), with
// the prompt prefilled as MeshGEMMs and token by token, on one and on several layer regions, with
// the fitted and with round cost figures, and with an fp16 wafer. Run at 1, 2 and 4 ranks.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fabric_test_util.hpp"
#include "stories260K.hpp"
#include "wafermesh/model/mesh_transformer.hpp"
#include "wafermesh/model/weights.hpp"

using namespace wm;
using namespace wm::model;
using namespace wm::model::testing_support;
using wm::test::world_rank;

namespace {

ModelConfig bitnet_shape() {
  ModelConfig cfg;
  cfg.name = "bitnet-shape";
  cfg.dim = 64;
  cfg.hidden_dim = 160;
  cfg.layers = 3;
  cfg.heads = 4;
  cfg.kv_heads = 2;
  cfg.vocab = 96;
  cfg.seq_len = 64;
  cfg.ffn = "relu2";
  cfg.ternary = true;
  cfg.rope_theta = 500000.0;
  cfg.weights = "synthetic";
  return cfg;
}

struct Step {
  TokenCycles tc;
  std::vector<PeCounters> pes;  // rank 0: every PE of the mesh
};

struct Run {
  std::vector<Step> steps;
  uint64_t peak_sram = 0, peak_routes = 0;
  MeshPlacement pl;
  uint64_t replays = 0;  // timing-only collectives applied from a recording (Fabric::replay)
};

// Prefill `prompt` (as one MeshGEMM pass, or token by token) and decode `decode` more tokens.
Run run(const MachineParams& mp, const WeightSource& src, int32_t P, const std::vector<int>& prompt, int decode,
        bool gemm_prefill) {
  Fabric f(MPI_COMM_WORLD, mp);
  MeshPlacementSpec spec;
  spec.P = P;
  spec.context = int64_t(prompt.size()) + decode;
  MeshTransformer mt(f, src, spec);
  Run r;
  r.pl = mt.placement();
  auto record = [&] { r.steps.push_back({mt.last_token(), f.gather_counters(f.mesh().full())}); };
  int pos = 0;
  if (gemm_prefill) {
    mt.prefill(prompt);
    record();
    pos = int(prompt.size());
  } else {
    for (; pos < int(prompt.size()); ++pos) {
      mt.forward(prompt[size_t(pos)], pos);
      record();
    }
  }
  for (int i = 0; i < decode; ++i, ++pos) {
    mt.forward(5 + i, pos);  // any token: the figures do not depend on it
    record();
  }
  r.peak_sram = mt.peak_sram_bytes();
  r.peak_routes = mt.peak_route_entries();
  r.replays = f.replays();
  return r;
}

void expect_same(const Run& full, const Run& timing, const std::string& what) {
  ASSERT_EQ(full.steps.size(), timing.steps.size()) << what;
  EXPECT_EQ(full.pl.layer_regions.size(), timing.pl.layer_regions.size()) << what;
  EXPECT_EQ(full.pl.layers_per_region, timing.pl.layers_per_region) << what;
  for (size_t i = 0; i < full.steps.size(); ++i) {
    const TokenCycles& a = full.steps[i].tc;
    const TokenCycles& b = timing.steps[i].tc;
    const std::string at = what + ", call " + std::to_string(i);
    EXPECT_EQ(a.total, b.total) << at;
    EXPECT_EQ(a.handoff, b.handoff) << at;
    EXPECT_EQ(a.classifier, b.classifier) << at;
    ASSERT_EQ(a.layers.size(), b.layers.size()) << at;
    for (size_t l = 0; l < a.layers.size(); ++l) {
      EXPECT_EQ(a.layers[l].compute, b.layers[l].compute) << at << " layer " << l;
      EXPECT_EQ(a.layers[l].allreduce, b.layers[l].allreduce) << at << " layer " << l;
      EXPECT_EQ(a.layers[l].kv, b.layers[l].kv) << at << " layer " << l;
    }
    if (world_rank() == 0) {
      ASSERT_EQ(full.steps[i].pes.size(), timing.steps[i].pes.size()) << at;
      size_t differ = 0, first = 0;
      for (size_t p = 0; p < full.steps[i].pes.size(); ++p)
        if (!(full.steps[i].pes[p] == timing.steps[i].pes[p]) && differ++ == 0) first = p;
      EXPECT_EQ(differ, 0u) << at << ": PE counters differ, first at PE index " << first << " (clock "
                            << full.steps[i].pes[first].clock_cycles << " vs "
                            << timing.steps[i].pes[first].clock_cycles << ")";
    }
  }
  EXPECT_EQ(full.peak_sram, timing.peak_sram) << what;
  EXPECT_EQ(full.peak_routes, timing.peak_routes) << what;
}

MachineParams fitted(int32_t w, int32_t h) {
  MachineParams mp;  // the built-in (fitted) cost figures
  mp.width_pes = w;
  mp.height_pes = h;
  return mp;
}

void check_model(const ModelConfig& cfg, const std::string& name) {
  const auto src = open_weight_source(cfg, 7);
  ModelConfig none = cfg;
  none.weights = "none";
  const auto shape = open_weight_source(none, 7);
  ASSERT_FALSE(shape->has_values());
  const std::vector<int> prompt{1, 9, 14, 3, 22, 7};
  struct Case {
    MachineParams mp;
    int32_t P;
    const char* what;
  };
  // 8 x 8 regions on a 40 x 8 mesh: a layer region or more and the classifier; 4 x 4 on 16 x 12
  // with a small SRAM so that the layers spread over several regions (hand-offs).
  MachineParams several = wm::test::small_machine(16, 12);
  // fp32 stories260K: 13,287 bytes a layer; with ternary weights at 2 bits (wafer.ternary_format),
  // ternarised stories260K 1,056 bytes a layer and 1,639 of scratch (3 layers a region), the BitNet
  // shape 1,244 and 1,496 (2 a region).
  several.sram_bytes = (cfg.ternary ? 5 : 24) * 1024;
  MachineParams fp16 = fitted(40, 8);  // the wafer's formats: 2-byte fp data, ternary 5 weights a byte
  fp16.wafer_dtype = "fp16";
  fp16.wafer_ternary_format = "base3";
  fp16.fp16_macs_per_cycle = 4;
  fp16.ternary_ops_per_cycle = 8;
  const std::vector<Case> cases{{fitted(40, 8), 8, "fitted costs, P = 8"},
                                {several, 4, "round costs, P = 4, small SRAM"},
                                {fp16, 8, "fitted costs, fp16 and base3 wafer, P = 8"}};
  for (const Case& c : cases)
    for (bool gemm : {true, false}) {
      const std::string what = name + ", " + c.what + (gemm ? ", MeshGEMM prefill" : ", token by token");
      const Run full = run(c.mp, *src, c.P, prompt, 3, gemm);
      const Run timing = run(c.mp, *shape, c.P, prompt, 3, gemm);
      expect_same(full, timing, what);
      if (c.P == 4) {
        EXPECT_GT(full.pl.layer_regions.size(), 1u) << what << ": meant to spread over regions";
      }
    }
}

}  // namespace

TEST(TimingOnly, ShapeOnlySourceRefusesToRead) {
  ModelConfig cfg = bitnet_shape();
  cfg.weights = "none";
  const auto src = open_weight_source(cfg, 1);
  std::vector<float> row(size_t(cfg.dim));
  EXPECT_THROW(src->read_rows(Tensor::token_embedding, 0, 0, 1, row.data()), std::logic_error);
}

TEST(TimingOnly, StoriesFp32GivesTheFullRunsFigures) {
  ASSERT_TRUE(stories_present("stories260K.bin"));
  check_model(stories_config(), "stories260K fp32");
}

TEST(TimingOnly, StoriesTernarisedGivesTheFullRunsFigures) {
  ASSERT_TRUE(stories_present("stories260K.bin"));
  ModelConfig cfg = stories_config();
  cfg.ternary = true;
  check_model(cfg, "stories260K ternarised");
}

TEST(TimingOnly, SyntheticBitNetShapeGivesTheFullRunsFigures) { check_model(bitnet_shape(), "BitNet shape"); }

// Decode steps take the figures of their allreduces (norms, attention, the BitLinear GEMVs'
// integer line sums, the fp32 GEMVs' sums) from recordings (emu.replay_timing): every figure of
// every token equals charging every step, with the prompt prefilled token by token and as
// MeshGEMMs (whose norms and softmax reduce along lines too), on one and on several regions.
TEST(TimingOnly, ReplayedAllreducesGiveEveryStepsFigures) {
  ASSERT_TRUE(stories_present("stories260K.bin"));
  const std::vector<int> prompt{1, 9, 14, 3};
  for (bool ternary : {true, false}) {
    const ModelConfig cfg = ternary ? bitnet_shape() : stories_config();
    const auto src = open_weight_source(cfg, 7);
    MachineParams several = wm::test::small_machine(16, 12);
    several.sram_bytes = (ternary ? 5 : 24) * 1024;
    for (const MachineParams& base : {fitted(40, 8), several})
      for (bool gemm : {false, true}) {
        MachineParams on = base, off = base;
        on.replay_timing = true;
        off.replay_timing = false;
        const int32_t P = base.width_pes == 40 ? 8 : 4;
        const ::Run replayed = run(on, *src, P, prompt, 4, gemm);
        const ::Run stepped = run(off, *src, P, prompt, 4, gemm);
        const std::string what = cfg.name + ", P = " + std::to_string(P) + (gemm ? ", MeshGEMM prefill" : ", token by token");
        expect_same(stepped, replayed, what);
        EXPECT_GT(replayed.replays, 0u) << what;
        EXPECT_EQ(stepped.replays, 0u) << what;
      }
  }
}
