// The transformer on the mesh: stories260K prints the golden greedy text on two mesh sizes; other
// prompts give the single-process fp32 reference's text; logits (fp32 and ternarised) equal the
// mesh-order reference bit for bit at every position, for both KV policies and several region
// sizes (1 x 1 too: even there the order differs from llama2.c's, as W_o's columns are summed in
// the query layout); impossible placements are one-line errors with the numbers. Run at 1, 2 and 4 ranks.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "fabric_test_util.hpp"
#include "stories260K.hpp"
#include "wafermesh/model/checkpoint.hpp"
#include "wafermesh/model/generate.hpp"
#include "wafermesh/model/mesh_order_reference.hpp"
#include "wafermesh/model/mesh_transformer.hpp"
#include "wafermesh/model/reference_transformer.hpp"
#include "wafermesh/model/sampler.hpp"
#include "wafermesh/model/tokenizer.hpp"
#include "wafermesh/util/error.hpp"

using namespace wm;
using namespace wm::model;
using namespace wm::model::testing_support;
using wm::test::world_rank;

namespace {

MachineParams mesh_of(int32_t w, int32_t h) {
  MachineParams p = wm::test::small_machine(w, h);
  p.sram_bytes = 48 * 1024;
  return p;
}

std::string mesh_text(const MachineParams& mp, const ModelConfig& cfg, int32_t P, const std::string& prompt,
                      int64_t steps) {
  Fabric f(MPI_COMM_WORLD, mp);
  const auto src = open_weight_source(cfg, 1);
  MeshPlacementSpec spec;
  spec.P = P;
  spec.context = steps;
  MeshTransformer mt(f, *src, spec);
  const Tokenizer tok(cfg.tokenizer, cfg.vocab);
  Sampler s(cfg.vocab, 0.0f, 0.9f, 1);
  const PrefillFn prefill = [&](const std::vector<int>& tokens) { return mt.prefill(tokens); };  // MeshGEMM
  return generate_text([&](int t, int p) { return mt.forward(t, p); }, &tok, s, prompt, steps, cfg.seq_len,
                       nullptr, &prefill);
}

// stories260K's placement on a w x h mesh in 4 x 4 regions, KV reserved for 200 tokens.
MeshPlacement stories_plan(int32_t w, int32_t h) {
  MeshPlacementSpec spec;
  spec.P = 4;
  spec.context = 200;
  return MeshTransformer::plan({w, h}, mesh_of(w, h), stories_config(), spec);
}

// A position's figures add up: the layers' compute, allreduce and KV cycles, the hand-offs and the
// classifier cover the time from the token entering the first region to its logits, exactly.
void expect_figures_add_up(const TokenCycles& tc, const std::string& what) {
  uint64_t sum = tc.handoff + tc.classifier;
  for (const LayerCycles& l : tc.layers) sum += l.total();
  EXPECT_EQ(sum, tc.total) << what;
  EXPECT_GT(tc.classifier, 0u) << what;
  for (const LayerCycles& l : tc.layers) {
    EXPECT_GT(l.compute, 0u) << what;
    EXPECT_GT(l.allreduce, 0u) << what;
    EXPECT_GT(l.kv, 0u) << what;
  }
}

}  // namespace

TEST(MeshTransformer, StoriesGreedyPrintsTheExpectedTextOnTwoMeshes) {
  ASSERT_TRUE(stories_present("stories260K.bin"));
  ASSERT_TRUE(stories_present("expected_t0_n200.txt"));
  const std::string expected = read_bytes(stories_path("expected_t0_n200.txt"));
  const ModelConfig cfg = stories_config();
  // 48 x 32 with 16 x 16 regions (one region holds the layers), 20 x 12 with 4 x 4 regions
  // (layers spread over several regions, hand-offs between them), and the tall 12 x 20, where the
  // bands of regions are columns.
  for (auto [w, h, P] : {std::tuple{48, 32, 16}, std::tuple{20, 12, 4}, std::tuple{12, 20, 4}}) {
    const MachineParams mp = mesh_of(w, h);
    EXPECT_EQ(mesh_text(mp, cfg, P, "", 200), expected) << w << " x " << h << " mesh, " << P << " x " << P << " regions";
  }
}

TEST(MeshTransformer, PlacementSpreadsLayersWhenARegionIsFull) {
  const ModelConfig cfg = stories_config();
  const MeshPlacement pl = stories_plan(20, 12);
  EXPECT_GT(pl.layer_regions.size(), 1u);
  EXPECT_EQ(pl.region_of_layer.size(), size_t(cfg.layers));
  int64_t rows = 0;
  for (int64_t r : pl.classifier_rows) rows += r;
  EXPECT_EQ(rows, cfg.vocab);
}

// On a tall mesh the bands of regions are columns: the layers fill the middle column band first,
// and the classifier's regions lie on both sides of it, each side a chain of adjacent regions fed
// from the end of the middle band.
TEST(MeshTransformer, PlacementOnATallMeshUsesColumnBandsAndSpreadsTheClassifier) {
  const MeshPlacement pl = stories_plan(12, 20);
  const int32_t mid = 4;  // (12 - 4) / 2
  ASSERT_LE(pl.layer_regions.size(), 5u);  // the middle column band holds 20 / 4 = 5 regions
  for (size_t i = 0; i < pl.layer_regions.size(); ++i) {
    EXPECT_EQ(pl.layer_regions[i].x0, mid) << "layer region " << i;
    EXPECT_EQ(pl.layer_regions[i].y0, int32_t(4 * i)) << "layer region " << i;  // snake down the band
  }
  ASSERT_EQ(pl.classifier_source.size(), pl.classifier_regions.size());
  bool left = false, right = false;
  for (size_t i = 0; i < pl.classifier_regions.size(); ++i) {
    const Region& r = pl.classifier_regions[i];
    left |= r.x0 < mid;
    right |= r.x0 > mid;
    const int32_t src = pl.classifier_source[i];
    ASSERT_LT(src, int32_t(i)) << "classifier region " << i << " is fed by a later one";
    if (src >= 0 && r.x0 != mid) {
      const Region& s = pl.classifier_regions[size_t(src)];
      // Same side: the previous region of its chain, one region away; or the middle band's end.
      if (s.x0 != mid) {
        EXPECT_EQ(s.x0, r.x0) << "classifier region " << i;
        EXPECT_EQ(std::abs(s.y0 - r.y0), 4) << "classifier region " << i;
      }
    }
  }
  if (pl.classifier_regions.size() > 1) {
    EXPECT_TRUE(left && right) << "the classifier sits on one side of the middle band only";
  }
}

TEST(MeshTransformer, PreferredRankGridSplitsAcrossTheBands) {
  auto grid = [](int32_t w, int32_t h, int ranks) {
    const RankGrid g = MeshTransformer::preferred_rank_grid({w, h}, ranks);
    return std::pair{g.px, g.py};
  };
  EXPECT_EQ(grid(750, 994, 1), (std::pair{1, 1}));
  EXPECT_EQ(grid(750, 994, 2), (std::pair{2, 1}));  // tall: column bands, ranks side by side
  EXPECT_EQ(grid(994, 750, 2), (std::pair{1, 2}));  // wide: row bands, ranks one above the other
  EXPECT_EQ(grid(750, 994, 4), (std::pair{2, 2}));
  EXPECT_EQ(grid(750, 994, 8), (std::pair{2, 4}));
  EXPECT_EQ(grid(1, 100, 2), (std::pair{1, 2}));  // no room across: the default grid
}

// (The mesh side runs the prompt as a MeshGEMM prefill.)
TEST(MeshTransformer, OtherPromptsGiveTheFp32ReferenceText) {
  ASSERT_TRUE(stories_present("stories260K.bin"));
  const ModelConfig cfg = stories_config();
  const Tokenizer tok(cfg.tokenizer, cfg.vocab);
  for (const std::string prompt : {"Once upon a time, a dragon", "The little cat", "Tom and Lily went to the"}) {
    ReferenceTransformer ref(cfg, materialize(*open_weight_source(cfg, 1)));
    Sampler s(cfg.vocab, 0.0f, 0.9f, 1);
    const std::string want =
        generate_text([&](int t, int p) { return ref.forward(t, p); }, &tok, s, prompt, 80, cfg.seq_len);
    EXPECT_EQ(mesh_text(mesh_of(20, 12), cfg, 8, prompt, 80), want) << "prompt: " << prompt;
  }
}

TEST(MeshTransformer, LogitsEqualTheMeshOrderReferenceBitForBit) {
  ASSERT_TRUE(stories_present("stories260K.bin"));
  const int tokens[] = {1, 403, 407, 261, 378, 11, 3, 29, 300, 17, 42, 2};
  for (bool ternary : {false, true})
    // P = 5 and 3: kv blocks of 7 and 11, RoPE pairs across neighbouring PEs
    for (auto [P, policy] : {std::pair{4, dist::KvPolicy::shift}, std::pair{8, dist::KvPolicy::concat},
                             std::pair{1, dist::KvPolicy::shift}, std::pair{5, dist::KvPolicy::shift},
                             std::pair{3, dist::KvPolicy::concat}}) {
      ModelConfig cfg = stories_config();
      cfg.ternary = ternary;
      MeshPlacementSpec spec;
      spec.P = P;
      spec.kv_policy = policy;
      spec.context = 12;
      MachineParams mp = mesh_of(20, 12);
      if (P == 1) mp.sram_bytes = 1 << 20;  // the whole model on one PE
      Fabric f(MPI_COMM_WORLD, mp);
      const auto src = open_weight_source(cfg, 1);
      MeshTransformer mt(f, *src, spec);
      MeshOrderReference ref(cfg, materialize(*src), spec, MeshTransformer::plan(f.mesh(), mp, cfg, spec));
      ReferenceTransformer plain(cfg, materialize(*src));
      for (int pos = 0; pos < 12; ++pos) {
        const float* got = mt.forward(tokens[pos], pos);
        const float* want = ref.forward(tokens[pos], pos);
        const float* near = plain.forward(tokens[pos], pos);
        for (int64_t v = 0; v < cfg.vocab; ++v) {
          ASSERT_EQ(std::memcmp(got + v, want + v, sizeof(float)), 0)
              << (ternary ? "ternary" : "fp32") << " P " << P << " " << dist::kv_policy_name(policy) << " pos "
              << pos << " logit " << v << ": " << got[v] << " vs " << want[v];
          ASSERT_NEAR(got[v], near[v], 2e-3f) << "far from the llama2.c-order reference";
        }
      }
    }
}

// Prefill as MeshGEMM (projections, Q.K^T and A.V): logits equal the mesh-order reference's
// prefill bit for bit, fp32 and ternary, and decode continues from the prefilled caches exactly as
// the reference's; both stay near token-by-token decode (the same model summed in another order).
TEST(MeshTransformer, PrefillMatchesTheMeshOrderReference) {
  ASSERT_TRUE(stories_present("stories260K.bin"));
  const std::vector<int> prompt = {1, 403, 407, 261, 378, 11, 3, 29, 300};
  for (bool ternary : {true, false})
    for (auto [P, policy] : {std::pair{4, dist::KvPolicy::shift}, std::pair{8, dist::KvPolicy::concat},
                             std::pair{5, dist::KvPolicy::shift}}) {  // 5: odd kv blocks
      ModelConfig cfg = stories_config();
      cfg.ternary = ternary;
      MeshPlacementSpec spec;
      spec.P = P;
      spec.kv_policy = policy;
      spec.context = 16;
      const MachineParams mp = mesh_of(20, 12);
      Fabric f(MPI_COMM_WORLD, mp);
      const auto src = open_weight_source(cfg, 1);
      uint64_t ttft_prefill = 0, ttft_decode = 0;
      std::vector<std::vector<float>> mesh, ref, tbt;
      {
        MeshTransformer mt(f, *src, spec);
        MeshOrderReference mor(cfg, materialize(*src), spec, MeshTransformer::plan(f.mesh(), mp, cfg, spec));
        const float* a = mt.prefill(prompt);
        ttft_prefill = mt.last_token().total;
        expect_figures_add_up(mt.last_token(), "prefill");
        const float* b = mor.prefill(prompt);
        mesh.emplace_back(a, a + cfg.vocab);
        ref.emplace_back(b, b + cfg.vocab);
        for (int pos = int(prompt.size()); pos < int(prompt.size()) + 3; ++pos) {
          const int tok = argmax(ref.back().data(), cfg.vocab);
          a = mt.forward(tok, pos);
          b = mor.forward(tok, pos);
          mesh.emplace_back(a, a + cfg.vocab);
          ref.emplace_back(b, b + cfg.vocab);
        }
      }
      {
        MeshTransformer mt(f, *src, spec);  // the same prompt token by token
        const float* c = nullptr;
        for (size_t i = 0; i < prompt.size(); ++i) {
          c = mt.forward(prompt[i], int(i));
          ttft_decode += mt.last_token().total;
          expect_figures_add_up(mt.last_token(), "token " + std::to_string(i));
        }
        tbt.emplace_back(c, c + cfg.vocab);
      }
      if (world_rank() == 0)
        std::printf("P %d %s: time to first token %llu cycles with MeshGEMM prefill, %llu token by token\n", P,
                    ternary ? "ternary" : "fp32", (unsigned long long)ttft_prefill, (unsigned long long)ttft_decode);
      EXPECT_GT(ttft_prefill, 0u);
      for (size_t step = 0; step < mesh.size(); ++step)
        for (int64_t v = 0; v < cfg.vocab; ++v)
          ASSERT_EQ(std::memcmp(&mesh[step][size_t(v)], &ref[step][size_t(v)], sizeof(float)), 0)
              << (ternary ? "ternary" : "fp32") << " P " << P << " step " << step << " logit " << v << ": "
              << mesh[step][size_t(v)] << " vs " << ref[step][size_t(v)];
      for (int64_t v = 0; v < cfg.vocab; ++v) ASSERT_NEAR(mesh[0][size_t(v)], tbt[0][size_t(v)], 2e-3f) << "P " << P;
    }
}

TEST(MeshTransformer, ImpossiblePlacementsAreOneLineErrorsWithTheNumbers) {
  const ModelConfig cfg = stories_config();
  MeshPlacementSpec spec;
  spec.context = 64;
  MachineParams mp = mesh_of(20, 12);
  spec.P = 2;
  mp.sram_bytes = 4096;  // a layer needs more
  try {
    (void)MeshTransformer::plan({20, 12}, mp, cfg, spec);
    ADD_FAILURE() << "layer larger than a PE accepted";
  } catch (const LimitError& e) {
    EXPECT_NE(std::string(e.what()).find("pe.sram_bytes = 4096"), std::string::npos) << e.what();
  }
  mp.sram_bytes = 48 * 1024;
  spec.P = 4;
  try {
    (void)MeshTransformer::plan({8, 4}, mp, cfg, spec);  // two 4 x 4 regions: too few
    ADD_FAILURE() << "model larger than the mesh accepted";
  } catch (const LimitError& e) {
    EXPECT_NE(std::string(e.what()).find("mesh holds 2"), std::string::npos) << e.what();
  }
  spec.P = 40;
  EXPECT_THROW((void)MeshTransformer::plan({20, 12}, mp, cfg, spec), UsageError);
}

namespace {
// A greedy stories260K run on `comm`: its text, every position's cycles, and the peaks.
struct StoriesRun {
  std::string text;
  std::vector<uint64_t> cycles;  // per position (the prompt's prefill is one)
  uint64_t sram = 0, routes = 0;
};
StoriesRun stories_run(MPI_Comm comm, const MachineParams& mp, int32_t P, int64_t steps) {
  const ModelConfig cfg = stories_config();
  Fabric f(comm, mp);
  const auto src = open_weight_source(cfg, 1);
  MeshPlacementSpec spec;
  spec.P = P;
  spec.context = steps;
  MeshTransformer mt(f, *src, spec);
  const Tokenizer tok(cfg.tokenizer, cfg.vocab);
  Sampler s(cfg.vocab, 0.0f, 0.9f, 1);
  StoriesRun r;
  const PrefillFn prefill = [&](const std::vector<int>& tokens) {
    const float* l = mt.prefill(tokens);
    r.cycles.push_back(mt.last_token().total);
    return l;
  };
  r.text = generate_text(
      [&](int t, int p) {
        const float* l = mt.forward(t, p);
        r.cycles.push_back(mt.last_token().total);
        return l;
      },
      &tok, s, "Once upon a time", steps, cfg.seq_len, nullptr, &prefill);
  r.sram = mt.peak_sram_bytes();
  r.routes = mt.peak_route_entries();
  return r;
}
}  // namespace

// wafer.dtype fp16 charges the wafer for 2-byte fp data while the host computes in fp32: the text
// is fp32's, and with the same placement (one 16 x 16 region holds every layer either way) every
// SRAM figure halves, as all of this model's data on the wafer is fp; the tiles cross the wires in
// fewer cycles. (Figures at every rank count: tests/cli/test_generate.sh.)
TEST(MeshTransformer, Fp16WaferGivesTheFp32TextWithHalfTheSram) {
  ASSERT_TRUE(stories_present("stories260K.bin"));
  const MachineParams fp32 = mesh_of(48, 32);
  MachineParams fp16 = fp32;
  fp16.wafer_dtype = "fp16";
  MeshPlacementSpec spec;
  spec.P = 16;
  spec.context = 40;
  const ModelConfig cfg = stories_config();
  const MeshPlacement p32 = MeshTransformer::plan({48, 32}, fp32, cfg, spec);
  const MeshPlacement p16 = MeshTransformer::plan({48, 32}, fp16, cfg, spec);
  ASSERT_EQ(p32.layer_regions.size(), 1u);
  ASSERT_EQ(p16.layer_regions.size(), 1u);
  ASSERT_EQ(p32.classifier_regions.size(), p16.classifier_regions.size());
  const StoriesRun want = stories_run(MPI_COMM_WORLD, fp32, spec.P, spec.context);
  const StoriesRun got = stories_run(MPI_COMM_WORLD, fp16, spec.P, spec.context);
  EXPECT_EQ(got.text, want.text);
  EXPECT_GT(want.text.size(), 40u);
  EXPECT_EQ(2 * got.sram, want.sram);
  EXPECT_EQ(got.routes, want.routes);
  ASSERT_EQ(got.cycles.size(), want.cycles.size());
  for (size_t i = 0; i < got.cycles.size(); ++i) EXPECT_LT(got.cycles[i], want.cycles[i]) << "position " << i;
}
