// The transformer on the mesh fed from GGUF and Hugging Face checkpoints computes, position by
// position, exactly the logits (bit for bit) it computes from the llama2.c checkpoints the files
// were written from: F32 and Hugging Face (split-half RoPE rows) against stories260K.bin, F16 and
// BF16 against llama2.c checkpoints of the same rounded values; the ternary files (their own
// codes and gamma) against the in-memory absmean ternarisation (--quantize ternary) of
// stories260K.bin (I2_S) or of a checkpoint that ternarises to the files' codes and F16 scales
// (TQ2_0, TQ1_0) or 1 / weight_scale (BitNet-packed). Prefill as MeshGEMM, then decode.
// Run at 1 and 2 ranks.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "checkpoint_files.hpp"
#include "fabric_test_util.hpp"
#include "stories260K.hpp"
#include "wafermesh/model/checkpoint_loader.hpp"
#include "wafermesh/model/mesh_transformer.hpp"
#include "wafermesh/model/tokenizer.hpp"

using namespace wm;
using namespace wm::model;
using namespace wm::model::testing_support;

namespace {

// Logits of a prompt's prefill and of `decode` greedy positions after it, concatenated.
std::vector<float> run_logits(const ModelConfig& cfg, const std::vector<int>& prompt, int decode) {
  MachineParams mp = wm::test::small_machine(20, 12);
  mp.sram_bytes = 48 * 1024;
  Fabric f(MPI_COMM_WORLD, mp);
  const auto src = open_weight_source(cfg, 1);
  MeshPlacementSpec spec;
  spec.P = 4;
  spec.context = int64_t(prompt.size()) + decode;
  MeshTransformer mt(f, *src, spec);
  std::vector<float> all;
  const float* l = mt.prefill(prompt);
  all.insert(all.end(), l, l + cfg.vocab);
  int pos = int(prompt.size());
  for (int k = 0; k < decode; ++k, ++pos) {
    int next = 0;
    for (int i = 1; i < cfg.vocab; ++i)
      if (all[all.size() - size_t(cfg.vocab) + size_t(i)] > all[all.size() - size_t(cfg.vocab) + size_t(next)]) next = i;
    l = mt.forward(next, pos);
    all.insert(all.end(), l, l + cfg.vocab);
  }
  return all;
}

struct Case {
  const char* file;
  const char* reference;  // in the checkpoint folder; "" = stories260K.bin
  bool ternary;
};

class CheckpointLogits : public ::testing::TestWithParam<Case> {};

TEST_P(CheckpointLogits, EqualTheLlama2cPathBitForBit) {
  const Case& c = GetParam();
  ASSERT_TRUE(checkpoint_present(c.file));
  const ModelConfig stories = stories_config();
  const Tokenizer tok(stories.tokenizer, stories.vocab);
  const std::vector<int> prompt = tok.encode("Once upon a time, a little dragon");
  ModelConfig file = stories;
  file.weights = checkpoint_path(c.file);
  ModelConfig ref = stories;
  if (*c.reference) ref.weights = checkpoint_path(c.reference);
  ref.ternary = c.ternary;  // --quantize ternary of the llama2.c path
  if (c.ternary) {
    EXPECT_TRUE(read_checkpoint_config(file.weights).ternary);
    file.ternary = true;
  }
  const std::vector<float> a = run_logits(file, prompt, 12);
  const std::vector<float> b = run_logits(ref, prompt, 12);
  ASSERT_EQ(a.size(), b.size());
  for (size_t p = 0; p < a.size() / size_t(stories.vocab); ++p)
    ASSERT_EQ(std::memcmp(a.data() + p * size_t(stories.vocab), b.data() + p * size_t(stories.vocab),
                          size_t(stories.vocab) * 4),
              0)
        << c.file << ": logits differ at step " << p;
}

INSTANTIATE_TEST_SUITE_P(
    Files, CheckpointLogits,
    ::testing::Values(Case{"stories_f32.gguf", "", false}, Case{"stories_f16.gguf", "stories_f16ref.bin", false},
                      Case{"stories_hf", "", false}, Case{"stories_hf_sharded", "", false},
                      Case{"stories_hf_bf16", "stories_bf16ref.bin", false}, Case{"stories_i2s.gguf", "", true},
                      Case{"stories_tq2.gguf", "stories_tqref.bin", true},
                      Case{"stories_tq1.gguf", "stories_tqref.bin", true},
                      Case{"stories_hf_packed", "stories_packedref.bin", true}),
    [](const ::testing::TestParamInfo<Case>& i) {
      std::string n = i.param.file;
      for (char& ch : n)
        if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return n;
    });

}  // namespace
