// The reference transformer: the golden stories260K output (fp32), BitLinear against a hand-worked
// example, and the whole ternary / relu2 forward at position 0 against a second computation
// written here from the formulas (DESIGN.md §5), not from the code under test.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "stories260K.hpp"
#include "wafermesh/kernels/ternary_naive.hpp"
#include "wafermesh/model/bitlinear.hpp"
#include "wafermesh/model/checkpoint.hpp"
#include "wafermesh/model/generate.hpp"
#include "wafermesh/model/reference_transformer.hpp"
#include "wafermesh/model/sampler.hpp"
#include "wafermesh/model/synthetic_weights.hpp"
#include "wafermesh/model/tokenizer.hpp"

namespace wm::model {
namespace {

using namespace testing_support;

std::string run_generate(ReferenceTransformer& model, const Tokenizer& tok, const std::string& prompt,
                         int steps) {
  Sampler greedy(model.config().vocab, 0.0f, 0.9f, 1);
  return generate_text([&](int token, int pos) { return model.forward(token, pos); }, &tok, greedy,
                       prompt, steps, model.config().seq_len);
}

// The end-to-end check of DESIGN.md §6: the exact bytes llama2.c prints.
TEST(ReferenceTransformer, Stories260KGreedy200StepsIsTheGoldenOutput) {
  ASSERT_TRUE(stories_present("stories260K.bin"));
  ASSERT_TRUE(stories_present("tok512.bin"));
  ASSERT_TRUE(stories_present("expected_t0_n200.txt"));
  const ModelConfig cfg = stories_config();
  ReferenceTransformer model(cfg, load_checkpoint(cfg.weights, cfg));
  const Tokenizer tok(cfg.tokenizer, cfg.vocab);
  const std::string expected = read_bytes(stories_path("expected_t0_n200.txt"));
  EXPECT_EQ(run_generate(model, tok, "", 200), expected);
}

// A prompt that spells what the model would say anyway takes the same path through the KV cache,
// so the output is a prefix of the golden text (plus the final newline).
TEST(ReferenceTransformer, PromptIsEchoedAndContinuedConsistently) {
  ASSERT_TRUE(stories_present("stories260K.bin"));
  ASSERT_TRUE(stories_present("tok512.bin"));
  ASSERT_TRUE(stories_present("expected_t0_n200.txt"));
  const ModelConfig cfg = stories_config();
  ReferenceTransformer model(cfg, load_checkpoint(cfg.weights, cfg));
  const Tokenizer tok(cfg.tokenizer, cfg.vocab);
  const std::string expected = read_bytes(stories_path("expected_t0_n200.txt"));
  const std::string out = run_generate(model, tok, "Once upon a time", 30);
  ASSERT_EQ(out.back(), '\n');
  EXPECT_EQ(expected.rfind(out.substr(0, out.size() - 1), 0), 0u) << out;
  EXPECT_GT(out.size(), std::string("Once upon a time").size() + 20);
}

TEST(ReferenceTransformer, RejectsTokenAndPositionOutOfRange) {
  ASSERT_TRUE(stories_present("stories260K.bin"));
  const ModelConfig cfg = stories_config();
  ReferenceTransformer model(cfg, load_checkpoint(cfg.weights, cfg));
  EXPECT_THROW(model.forward(512, 0), std::out_of_range);
  EXPECT_THROW(model.forward(-1, 0), std::out_of_range);
  EXPECT_THROW(model.forward(1, 512), std::out_of_range);
}

// ---------------------------------------------------------------------------------------------
// A second computation, from the formulas. BitLinear: gamma = max(mean|W|, 1e-5) with mean|W| in
// double; W_q = clamp(round(W / gamma)); s = 127 / max(max|x|, 1e-5); q = clamp(round(x s));
// y = float(dot) / s * gamma. Integer dot products through the frozen naive kernel.
struct HandTernary {
  std::vector<std::int8_t> codes;
  float gamma;
};

HandTernary hand_ternarize(const float* w, std::int64_t n) {
  double sum = 0.0;
  for (std::int64_t i = 0; i < n; ++i) sum += std::fabs(static_cast<double>(w[i]));
  HandTernary t;
  t.gamma = std::max(static_cast<float>(sum / static_cast<double>(n)), 1e-5f);
  for (std::int64_t i = 0; i < n; ++i)
    t.codes.push_back(static_cast<std::int8_t>(std::clamp(std::nearbyint(w[i] / t.gamma), -1.0f, 1.0f)));
  return t;
}

std::vector<float> hand_bitlinear(const HandTernary& w, std::int64_t rows, std::int64_t cols,
                                  const std::vector<float>& x) {
  float amax = 0.0f;
  for (float v : x) amax = std::max(amax, std::fabs(v));
  const float s = 127.0f / std::max(amax, 1e-5f);
  std::vector<std::int8_t> q;
  for (float v : x) q.push_back(static_cast<std::int8_t>(std::clamp(std::nearbyint(v * s), -127.0f, 127.0f)));
  std::vector<std::int32_t> dot(static_cast<std::size_t>(rows));
  kernels::ternary_gemm_i32_naive(w.codes.data(), rows, cols, cols, q.data(), 1, cols, dot.data(), rows);
  std::vector<float> y;
  for (std::int32_t d : dot) y.push_back(static_cast<float>(d) / s * w.gamma);
  return y;
}

// W = [[0.5, -1, 0], [2, 0.25, -0.5]]: mean|W| = 4.25 / 6, W / gamma = [.71 -1.41 0; 2.82 .35 -.71]
// -> codes [1 -1 0; 1 0 -1]. x = (1, -0.5, 0.25): s = 127, x s = (127, -63.5, 31.75) -> q = (127,
// -64 (half to even), 32). dots: 127 + 64 = 191 and 127 - 32 = 95.
TEST(BitLinear, HandWorkedExample) {
  const float w[6] = {0.5f, -1.0f, 0.0f, 2.0f, 0.25f, -0.5f};
  const float x[3] = {1.0f, -0.5f, 0.25f};
  const TernaryWeight t = ternarize(w, 2, 3);
  EXPECT_EQ(t.codes, (std::vector<std::int8_t>{1, -1, 0, 1, 0, -1}));
  const float gamma = static_cast<float>(4.25 / 6.0);
  EXPECT_EQ(t.gamma, gamma);
  float y[2];
  bitlinear_ref(t, x, y);
  EXPECT_EQ(y[0], 191.0f / 127.0f * gamma);
  EXPECT_EQ(y[1], 95.0f / 127.0f * gamma);
}

std::vector<float> hand_rmsnorm(const std::vector<float>& x, const float* weight, float eps) {
  float ss = 0.0f;
  for (float v : x) ss += v * v;
  ss = 1.0f / std::sqrt(ss / static_cast<float>(x.size()) + eps);
  std::vector<float> o;
  for (std::size_t j = 0; j < x.size(); ++j) o.push_back(weight[j] * (ss * x[j]));
  return o;
}

std::vector<float> hand_matvec(const float* w, std::int64_t rows, std::int64_t cols, const std::vector<float>& x) {
  std::vector<float> y;
  for (std::int64_t i = 0; i < rows; ++i) {
    float acc = 0.0f;
    for (std::int64_t k = 0; k < cols; ++k) acc = acc + w[i * cols + k] * x[static_cast<std::size_t>(k)];
    y.push_back(acc);
  }
  return y;
}

// Logits at position 0. There the attention of every head is exactly its kv head's v (softmax of a
// single score is exactly 1, and RoPE at angle 0 is the identity), so q and k drop out: this
// checks the value path, the sub-norms, the FFN, every BitLinear and the classifier.
std::vector<float> hand_logits_pos0(const ModelConfig& cfg, const Weights& w, int token) {
  const std::int64_t d = cfg.dim, h = cfg.hidden_dim, kv = cfg.kv_dim(), hs = cfg.head_dim();
  const float eps = static_cast<float>(cfg.norm_eps);
  const bool relu2 = cfg.ffn == "relu2";
  auto proj = [&](const std::vector<float>& all, std::int64_t l, std::int64_t rows, std::int64_t cols,
                  const std::vector<float>& x) {
    const float* m = all.data() + l * rows * cols;
    if (!cfg.ternary) return hand_matvec(m, rows, cols, x);
    return hand_bitlinear(hand_ternarize(m, rows * cols), rows, cols, x);
  };
  std::vector<float> x(w.token_embedding.begin() + token * d, w.token_embedding.begin() + (token + 1) * d);
  for (std::int64_t l = 0; l < cfg.layers; ++l) {
    const std::vector<float> v = proj(w.wv, l, kv, d, hand_rmsnorm(x, w.rms_att.data() + l * d, eps));
    std::vector<float> att(static_cast<std::size_t>(d));  // head i reads kv head i / (heads / kv_heads)
    for (std::int64_t i = 0; i < d; ++i)
      att[static_cast<std::size_t>(i)] = v[static_cast<std::size_t>((i / hs) / (cfg.heads / cfg.kv_heads) * hs + i % hs)];
    if (relu2) att = hand_rmsnorm(att, w.attn_sub_norm.data() + l * d, eps);
    const std::vector<float> o = proj(w.wo, l, d, d, att);
    for (std::int64_t i = 0; i < d; ++i) x[static_cast<std::size_t>(i)] += o[static_cast<std::size_t>(i)];

    const std::vector<float> xn = hand_rmsnorm(x, w.rms_ffn.data() + l * d, eps);
    const std::vector<float> gate = proj(w.w1, l, h, d, xn), up = proj(w.w3, l, h, d, xn);
    std::vector<float> hid;
    for (std::int64_t i = 0; i < h; ++i) {
      const float g = gate[static_cast<std::size_t>(i)];
      const float a = relu2 ? (g > 0.0f ? g * g : 0.0f) : g * (1.0f / (1.0f + std::exp(-g)));
      hid.push_back(a * up[static_cast<std::size_t>(i)]);
    }
    if (relu2) hid = hand_rmsnorm(hid, w.ffn_sub_norm.data() + l * h, eps);
    const std::vector<float> down = proj(w.w2, l, d, h, hid);
    for (std::int64_t i = 0; i < d; ++i) x[static_cast<std::size_t>(i)] += down[static_cast<std::size_t>(i)];
  }
  x = hand_rmsnorm(x, w.rms_final.data(), eps);
  return hand_matvec(w.token_embedding.data(), cfg.vocab, d, x);  // tied, fp32 classifier
}

void expect_pos0_matches(const ModelConfig& cfg, const Weights& w, int token) {
  const std::vector<float> expected = hand_logits_pos0(cfg, w, token);
  ReferenceTransformer model(cfg, w);
  const float* got = model.forward(token, 0);
  // Same formulas in the same float order: the results must agree bit for bit (a quantisation
  // rounding that flipped would show up here too).
  for (std::int64_t i = 0; i < cfg.vocab; ++i)
    ASSERT_EQ(got[i], expected[static_cast<std::size_t>(i)]) << "logit " << i;
}

TEST(ReferenceTransformer, TernaryStories260KPosition0MatchesTheFormulas) {
  ASSERT_TRUE(stories_present("stories260K.bin"));
  ModelConfig cfg = stories_config();
  cfg.ternary = true;
  const Weights w = load_checkpoint(cfg.weights, cfg);
  expect_pos0_matches(cfg, w, Tokenizer::kBos);
  expect_pos0_matches(cfg, w, 403);
}

ModelConfig synthetic_relu2() {
  ModelConfig cfg;
  cfg.dim = 64;
  cfg.hidden_dim = 96;
  cfg.layers = 2;
  cfg.heads = 4;
  cfg.kv_heads = 2;
  cfg.vocab = 50;
  cfg.seq_len = 8;
  cfg.ffn = "relu2";
  cfg.rope_theta = 500000.0;
  return cfg;
}

TEST(ReferenceTransformer, Relu2Position0MatchesTheFormulasFp32AndTernary) {
  ModelConfig cfg = synthetic_relu2();
  const Weights w = synthetic_weights(cfg, 5);
  expect_pos0_matches(cfg, w, 7);
  cfg.ternary = true;
  expect_pos0_matches(cfg, w, 7);
}

// Beyond position 0 (attention over several positions, GQA, RoPE) the ternary and relu2 paths have
// no golden output: they must run, stay finite, and actually differ from the fp32 model.
TEST(ReferenceTransformer, TernaryRunsAllPathsAndDiffersFromFp32) {
  for (const char* ffn : {"swiglu", "relu2"}) {
    ModelConfig cfg = synthetic_relu2();
    cfg.ffn = ffn;
    const Weights w = synthetic_weights(cfg, 9);
    ReferenceTransformer fp32(cfg, w);
    cfg.ternary = true;
    ReferenceTransformer tern(cfg, w);
    const int tokens[] = {1, 17, 3, 42, 8, 8, 0, 49};
    double max_diff = 0.0;
    for (int pos = 0; pos < 8; ++pos) {
      const float* a = fp32.forward(tokens[pos], pos);
      const float* b = tern.forward(tokens[pos], pos);
      for (std::int64_t i = 0; i < cfg.vocab; ++i) {
        ASSERT_TRUE(std::isfinite(a[i]) && std::isfinite(b[i])) << ffn << " pos " << pos;
        max_diff = std::max(max_diff, std::fabs(static_cast<double>(a[i]) - b[i]));
      }
    }
    EXPECT_GT(max_diff, 1e-3) << ffn;
  }
}

}  // namespace
}  // namespace wm::model
