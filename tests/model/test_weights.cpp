// Weights: the llama2.c checkpoint reader (values, block reads, every error line) and the synthetic
// source (deterministic, random access, the documented distributions, BitNet shapes on demand).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "stories260K.hpp"
#include "wafermesh/model/checkpoint.hpp"
#include "wafermesh/model/synthetic_weights.hpp"
#include "wafermesh/model/weights.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::model {
namespace {

using namespace testing_support;

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The message of the UsageError (bad input, exit code 2) that opening `path` as a checkpoint of
// `cfg` throws ("" if none).
std::string open_error(const std::string& path, const ModelConfig& cfg) {
  try {
    CheckpointSource src(path, cfg);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

// Every tensor equals the floats at the offsets the README's table gives (computed here from the
// table, independently of the reader), and the RoPE tables are what is left over.
TEST(Checkpoint, Stories260KMatchesTheReadmeLayout) {
  ASSERT_TRUE(stories_present("stories260K.bin"));
  const ModelConfig cfg = stories_config();
  const std::string bytes = read_bytes(cfg.weights);
  std::vector<float> f((bytes.size() - 28) / 4);  // everything after the 7-int header
  std::memcpy(f.data(), bytes.data() + 28, f.size() * 4);

  const Weights w = load_checkpoint(cfg.weights, cfg);
  // README: dim 64, hidden 172, L 5, kv_dim 32, vocab 512, seq_len 512, head_size 8.
  struct Expect {
    const std::vector<float>* got;
    std::size_t count;
  } table[] = {
      {&w.token_embedding, 512 * 64}, {&w.rms_att, 5 * 64},       {&w.wq, 5 * 64 * 64},
      {&w.wk, 5 * 32 * 64},           {&w.wv, 5 * 32 * 64},        {&w.wo, 5 * 64 * 64},
      {&w.rms_ffn, 5 * 64},           {&w.w1, 5 * 172 * 64},       {&w.w2, 5 * 64 * 172},
      {&w.w3, 5 * 172 * 64},          {&w.rms_final, 64},
  };
  std::size_t at = 0;
  for (const auto& e : table) {
    ASSERT_EQ(e.got->size(), e.count) << "tensor at float offset " << at;
    EXPECT_EQ(std::memcmp(e.got->data(), f.data() + at, e.count * 4), 0) << "float offset " << at;
    at += e.count;
  }
  EXPECT_EQ(f.size() - at, std::size_t{2 * 512 * 4}) << "RoPE tables 2 x (seq_len, head_size/2)";
  // The format has no sub-norms: they read as ones (a plain RMSNorm).
  ASSERT_EQ(w.attn_sub_norm.size(), std::size_t{5 * 64});
  ASSERT_EQ(w.ffn_sub_norm.size(), std::size_t{5 * 172});
  for (float v : w.attn_sub_norm) ASSERT_EQ(v, 1.0f);
  for (float v : w.ffn_sub_norm) ASSERT_EQ(v, 1.0f);
}

TEST(Checkpoint, BlockReadsEqualTheWholeTensor) {
  ASSERT_TRUE(stories_present("stories260K.bin"));
  const ModelConfig cfg = stories_config();
  const CheckpointSource src(cfg.weights, cfg);
  const Weights w = materialize(src);
  std::vector<float> block(4 * 64);
  src.read_rows(Tensor::wk, 3, 8, 4, block.data());  // layer 3, rows 8..11 of (32, 64)
  EXPECT_EQ(std::memcmp(block.data(), w.wk.data() + (3 * 32 + 8) * 64, block.size() * 4), 0);
  std::vector<float> emb(2 * 64);
  src.read_rows(Tensor::token_embedding, 0, 510, 2, emb.data());
  EXPECT_EQ(std::memcmp(emb.data(), w.token_embedding.data() + 510 * 64, emb.size() * 4), 0);
  EXPECT_THROW(src.read_rows(Tensor::wk, 5, 0, 1, block.data()), std::out_of_range);   // layer 5 of 5
  EXPECT_THROW(src.read_rows(Tensor::wk, 0, 30, 4, block.data()), std::out_of_range);  // rows past 32
}

TEST(Checkpoint, ErrorsAreOneLineNamingFileAndSizes) {
  ASSERT_TRUE(stories_present("stories260K.bin"));
  const ModelConfig cfg = stories_config();
  const std::string good = read_bytes(cfg.weights);
  const std::string real_size = std::to_string(good.size());  // the true size, from the file system
  const std::string dir = scratch_dir("checkpoint");

  const std::string truncated = dir + "/truncated.bin";
  write_bytes(truncated, good.substr(0, 1000));
  EXPECT_EQ(open_error(truncated, cfg),
            truncated + ": checkpoint has 1000 bytes, expected " + real_size +
                " for this model config (truncated)");

  const std::string oversized = dir + "/oversized.bin";
  write_bytes(oversized, good + "abcd");
  EXPECT_EQ(open_error(oversized, cfg),
            oversized + ": checkpoint has " + std::to_string(good.size() + 4) + " bytes, expected " +
                real_size + " for this model config (oversized)");

  const std::string tiny = dir + "/tiny.bin";  // not even a header
  write_bytes(tiny, good.substr(0, 10));
  EXPECT_EQ(open_error(tiny, cfg), tiny + ": checkpoint has 10 bytes, less than its 28-byte header (truncated)");

  const std::string wrong_layers = dir + "/wrong_layers.bin";
  std::string bad = good;
  const std::int32_t six = 6;
  std::memcpy(bad.data() + 2 * 4, &six, 4);  // header int 2 is n_layers
  write_bytes(wrong_layers, bad);
  EXPECT_EQ(open_error(wrong_layers, cfg),
            wrong_layers + ": header field n_layers = 6 does not match model.layers = 5 of the model config");

  const std::string untied = dir + "/untied.bin";
  bad = good;
  const std::int32_t minus_vocab = -512;
  std::memcpy(bad.data() + 5 * 4, &minus_vocab, 4);  // header int 5 is vocab_size
  write_bytes(untied, bad);
  EXPECT_EQ(open_error(untied, cfg),
            untied + ": header field vocab_size = -512 marks an untied classifier, which is not "
                     "supported (only tied embeddings)");

  const std::string missing = dir + "/missing.bin";
  EXPECT_EQ(open_error(missing, cfg), missing + ": cannot open checkpoint: No such file or directory");
  EXPECT_EQ(open_error(dir, cfg), dir + ": cannot open checkpoint: not a regular file");

  // A NaN or an Inf anywhere in the weights: one line naming the tensor, the layer and the place.
  // Layer 2's wk starts after token_embedding (512 x 64), rms_att (5 x 64), wq (5 x 64 x 64) and
  // layers 0..1 of wk (2 x 32 x 64); row 3, column 5 of it.
  const std::int64_t wk_l2_r3_c5 = 28 + 4 * (512 * 64 + 5 * 64 + 5 * 64 * 64 + 2 * 32 * 64 + 3 * 64 + 5);
  for (const float v : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                        -std::numeric_limits<float>::infinity()}) {
    const std::string nonfinite = dir + "/nonfinite.bin";
    bad = good;
    std::memcpy(bad.data() + wk_l2_r3_c5, &v, 4);
    write_bytes(nonfinite, bad);
    EXPECT_EQ(open_error(nonfinite, cfg), nonfinite + ": tensor wk of layer 2 holds " +
                                              (std::isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf") +
                                              " at row 3, column 5 (byte offset " + std::to_string(wk_l2_r3_c5) +
                                              "): the weights must be finite");
  }
  // The last weight (rms_final's last value) is read too; the RoPE tables after it are not.
  bad = good;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::int64_t rope = std::int64_t(good.size()) - 2 * 512 * 4 * 4;
  std::memcpy(bad.data() + rope - 4, &nan, 4);
  write_bytes(dir + "/last.bin", bad);
  EXPECT_EQ(open_error(dir + "/last.bin", cfg), dir + "/last.bin: tensor rms_final holds NaN at row 0, column 63 (byte offset " +
                                                    std::to_string(rope - 4) + "): the weights must be finite");
  std::memcpy(bad.data() + rope - 4, good.data() + rope - 4, 4);
  std::memcpy(bad.data() + rope, &nan, 4);
  write_bytes(dir + "/rope.bin", bad);
  EXPECT_EQ(open_error(dir + "/rope.bin", cfg), "");

  // The config side of the check: the real file against a config with a different width.
  ModelConfig wide = cfg;
  wide.hidden_dim = 256;
  EXPECT_EQ(open_error(cfg.weights, wide),
            cfg.weights + ": header field hidden_dim = 172 does not match model.hidden_dim = 256 of the model config");
  std::filesystem::remove_all(dir);
}

// Sizes never wrap: a config whose checkpoint would exceed 2^63 bytes is an error quoting the
// dims (the header is checked first, so a real file names its mismatching field instead).
TEST(Checkpoint, SizesOfHugeConfigsDoNotWrap) {
  ModelConfig huge;
  huge.name = "huge";
  huge.dim = int64_t(1) << 31;
  huge.hidden_dim = int64_t(1) << 31;
  huge.layers = 1 << 16;
  huge.heads = 1;
  huge.kv_heads = 1;
  try {
    (void)CheckpointSource::expected_bytes(huge);
    ADD_FAILURE() << "no error for a checkpoint of more than 2^63 bytes";
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()), "model huge: its checkpoint would hold more than 2^63 bytes (dim 2147483648, "
                                     "hidden_dim 2147483648, layers 65536, vocab 32)");
  }
  ASSERT_TRUE(stories_present("stories260K.bin"));
  huge.weights = stories_config().weights;
  EXPECT_EQ(open_error(huge.weights, huge),
            huge.weights + ": header field dim = 64 does not match model.dim = 2147483648 of the model config");
  // The stories260K config's size, by the README's layout.
  EXPECT_EQ(CheckpointSource::expected_bytes(stories_config()),
            28 + 4 * (512 * 64 + 5 * (64 + 2 * 64 * 64 + 2 * 32 * 64 + 64 + 3 * 172 * 64) + 64 + 512 * 8));
}

ModelConfig small_relu2_config() {
  ModelConfig cfg;
  cfg.dim = 48;
  cfg.hidden_dim = 80;
  cfg.layers = 2;
  cfg.heads = 6;
  cfg.kv_heads = 2;
  cfg.vocab = 37;
  cfg.seq_len = 16;
  cfg.ffn = "relu2";
  return cfg;
}

TEST(SyntheticWeights, DeterministicForASeedAndDifferentAcrossSeeds) {
  const ModelConfig cfg = small_relu2_config();
  const Weights a = synthetic_weights(cfg, 7), b = synthetic_weights(cfg, 7), c = synthetic_weights(cfg, 8);
  for (int i = 0; i < kTensorCount; ++i) {
    const auto t = static_cast<Tensor>(i);
    const std::size_t n = a.tensor(t).size();
    const TensorShape s = tensor_shape(cfg, t);
    ASSERT_EQ(n, static_cast<std::size_t>((tensor_is_per_layer(t) ? cfg.layers : 1) * s.size()))
        << tensor_name(t);
    EXPECT_EQ(std::memcmp(a.tensor(t).data(), b.tensor(t).data(), n * 4), 0) << tensor_name(t);
    EXPECT_NE(std::memcmp(a.tensor(t).data(), c.tensor(t).data(), n * 4), 0) << tensor_name(t);
  }
  // Layers and tensors of one shape are not copies of each other.
  EXPECT_NE(std::memcmp(a.wq.data(), a.wq.data() + 48 * 48, 48 * 48 * 4), 0);
  EXPECT_NE(std::memcmp(a.wq.data(), a.wo.data(), 48 * 48 * 4), 0);
}

TEST(SyntheticWeights, AnyBlockEqualsTheSameRowsOfTheWholeTensor) {
  const ModelConfig cfg = small_relu2_config();
  const SyntheticWeightSource src(cfg, 11);
  const std::vector<float> whole = src.read_tensor(Tensor::w2, 1);  // (48, 80)
  // Read backwards in blocks of 5 rows: order and block size must not matter.
  std::vector<float> block(5 * 80);
  for (std::int64_t r0 = 45; r0 >= 0; r0 -= 5) {
    const std::int64_t rows = std::min<std::int64_t>(5, 48 - r0);
    src.read_rows(Tensor::w2, 1, r0, rows, block.data());
    ASSERT_EQ(std::memcmp(block.data(), whole.data() + r0 * 80, static_cast<std::size_t>(rows * 80 * 4)), 0)
        << "rows from " << r0;
  }
}

// The distributions the header documents: fan-in scaled normals, norms around 1.
TEST(SyntheticWeights, DocumentedDistributions) {
  ModelConfig cfg = small_relu2_config();
  cfg.dim = 256;
  cfg.heads = 8;
  cfg.kv_heads = 8;
  cfg.hidden_dim = 1024;
  const SyntheticWeightSource src(cfg, 3);
  auto moments = [](const std::vector<float>& v) {
    double s = 0, s2 = 0;
    for (float x : v) {
      s += x;
      s2 += double{x} * x;
    }
    const double mean = s / static_cast<double>(v.size());
    return std::pair{mean, std::sqrt(s2 / static_cast<double>(v.size()) - mean * mean)};
  };
  const auto [m_w2, sd_w2] = moments(src.read_tensor(Tensor::w2, 0));  // (256, 1024): fan-in 1024
  EXPECT_NEAR(m_w2, 0.0, 0.002);
  EXPECT_NEAR(sd_w2, 1.0 / 32.0, 0.01 / 32.0);
  const auto [m_wq, sd_wq] = moments(src.read_tensor(Tensor::wq, 0));  // (256, 256): fan-in 256
  EXPECT_NEAR(sd_wq, 1.0 / 16.0, 0.02 / 16.0);
  const auto [m_norm, sd_norm] = moments(src.read_tensor(Tensor::ffn_sub_norm, 1));
  EXPECT_NEAR(m_norm, 1.0, 0.02);
  EXPECT_NEAR(sd_norm, 0.1, 0.015);
  // Every value is a bf16: the low 16 bits of the float are zero.
  for (Tensor t : {Tensor::token_embedding, Tensor::w2, Tensor::rms_att}) {
    const std::vector<float> v = src.read_tensor(t, 0);
    for (float x : v) {
      uint32_t b;
      std::memcpy(&b, &x, 4);
      ASSERT_EQ(b & 0xFFFFu, 0u) << tensor_name(t) << " value " << x;
    }
  }
}

// BitNet 2B4T (~2.4G parameters) never fits: the source hands out single blocks on demand.
TEST(SyntheticWeights, BitNet2B4TBlocksOnDemand) {
  const ModelConfig cfg =
      load_model_config(std::string(WM_PROJECT_SOURCE_DIR) + "/configs/models/bitnet_2b4t.ini");
  const auto src = open_weight_source(cfg, 1);
  EXPECT_EQ(tensor_shape(cfg, Tensor::w2).cols, 6912);
  EXPECT_EQ(tensor_shape(cfg, Tensor::wk).rows, 640);  // 5 kv heads x 128
  std::vector<float> down(2 * 6912), emb(3 * 2560);
  src->read_rows(Tensor::w2, 29, 2558, 2, down.data());  // last layer, last rows
  src->read_rows(Tensor::token_embedding, 0, 128253, 3, emb.data());
  for (float v : down) ASSERT_TRUE(std::isfinite(v) && std::fabs(v) < 1.0f);
  for (float v : emb) ASSERT_TRUE(std::isfinite(v) && std::fabs(v) < 1.0f);
  EXPECT_THROW(src->read_rows(Tensor::w2, 30, 0, 1, down.data()), std::out_of_range);
}

}  // namespace
}  // namespace wm::model
