// Checkpoint loaders (checkpoint_loader.hpp): stories260K written as GGUF (F32, F16, I2_S, TQ2_0,
// TQ1_0) and as Hugging Face directories (F32, sharded, BF16, BitNet-packed) reads back the values
// of the llama2.c checkpoints they were made from, row block by row block; ternary files give the
// codes and gamma of the in-memory ternarisation; the shape and vocabulary come from the metadata;
// a BitNet-architecture GGUF and a BitNet Hugging Face directory (split-half RoPE rows, sub-norms)
// give a synthetic BitNet model's values; every malformed model is one FileFormatError line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "checkpoint_files.hpp"
#include "gguf_writer.hpp"
#include "stories260K.hpp"
#include "wafermesh/io/format_error.hpp"
#include "wafermesh/kernels/quantize.hpp"
#include "wafermesh/model/checkpoint.hpp"
#include "wafermesh/model/checkpoint_loader.hpp"
#include "wafermesh/model/file_weight_source.hpp"
#include "wafermesh/model/synthetic_weights.hpp"
#include "wafermesh/model/tokenizer.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::model {
namespace {

using namespace testing_support;

std::string tmp(const std::string& name) {
  static const struct Dir {
    std::filesystem::path d = std::filesystem::temp_directory_path() / ("wm_test_ckpt_" + std::to_string(::getpid()));
    Dir() { std::filesystem::create_directories(d); }
    ~Dir() {
      std::error_code ec;
      std::filesystem::remove_all(d, ec);
    }
  } dir;
  return (dir.d / name).string();
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

// Every tensor of every layer equal bit for bit, whole and as an odd block of rows.
void expect_same_values(const WeightSource& a, const WeightSource& b, const std::string& what) {
  const ModelConfig& cfg = a.config();
  for (int i = 0; i < kTensorCount; ++i) {
    const auto t = static_cast<Tensor>(i);
    if (!tensor_is_used(cfg, t)) continue;
    const std::int64_t layers = tensor_is_per_layer(t) ? cfg.layers : 1;
    for (std::int64_t l = 0; l < layers; ++l) {
      EXPECT_TRUE(same_bits(a.read_tensor(t, l), b.read_tensor(t, l))) << what << ": " << tensor_name(t) << " layer " << l;
      const TensorShape s = tensor_shape(cfg, t);
      if (s.rows > 7) {
        std::vector<float> x(std::size_t(5 * s.cols)), y(x.size());
        a.read_rows(t, l, 3, 5, x.data());
        b.read_rows(t, l, 3, 5, y.data());
        EXPECT_TRUE(same_bits(x, y)) << what << ": rows 3..7 of " << tensor_name(t) << " layer " << l;
      }
    }
  }
}

ModelConfig with_weights(ModelConfig cfg, const std::string& w) {
  cfg.weights = w;
  return cfg;
}

TEST(Checkpoints, FloatFilesHoldTheValuesOfTheirLlama2cCheckpoints) {
  const ModelConfig stories = stories_config();
  const struct {
    const char* file;
    const char* reference;  // llama2.c checkpoint in the checkpoint folder, or "" for stories260K.bin
  } cases[] = {{"stories_f32.gguf", ""},   {"stories_f16.gguf", "stories_f16ref.bin"}, {"stories_hf", ""},
               {"stories_hf_sharded", ""}, {"stories_hf_bf16", "stories_bf16ref.bin"}};
  for (const auto& c : cases) {
    ASSERT_TRUE(checkpoint_present(c.file));
    const auto file = open_weight_source(with_weights(stories, checkpoint_path(c.file)), 1);
    const std::string ref = *c.reference ? checkpoint_path(c.reference) : stories.weights;
    const CheckpointSource reference(ref, stories);
    expect_same_values(*file, reference, c.file);
  }
}

TEST(Checkpoints, TernaryFilesGiveTheCodesAndGammaOfTheInMemoryTernarisation) {
  const ModelConfig stories = stories_config();
  const struct {
    const char* file;
    const char* reference;  // its codes and gamma are the absmean ternarisation of this checkpoint
  } cases[] = {{"stories_i2s.gguf", ""},
               {"stories_tq2.gguf", "stories_tqref.bin"},
               {"stories_tq1.gguf", "stories_tqref.bin"},
               {"stories_hf_packed", "stories_packedref.bin"}};
  for (const auto& c : cases) {
    ASSERT_TRUE(checkpoint_present(c.file));
    const ModelConfig fcfg = read_checkpoint_config(checkpoint_path(c.file));
    EXPECT_TRUE(fcfg.ternary) << c.file;
    const auto file = open_weight_source(with_weights(stories, checkpoint_path(c.file)), 1);
    const CheckpointSource ref(*c.reference ? checkpoint_path(c.reference) : stories.weights, stories);
    for (Tensor t : {Tensor::wq, Tensor::wk, Tensor::wv, Tensor::wo, Tensor::w1, Tensor::w2, Tensor::w3})
      for (std::int64_t l = 0; l < stories.layers; ++l) {
        const TensorShape s = tensor_shape(stories, t);
        const std::vector<float> w = ref.read_tensor(t, l);
        std::vector<std::int8_t> want(w.size()), got(w.size());
        const float gamma = kernels::quantize_weights_absmean(w.data(), s.rows, s.cols, s.cols, want.data(), s.cols);
        float g = 0.0f;
        ASSERT_TRUE(file->read_ternary(t, l, got.data(), &g)) << c.file << " " << tensor_name(t) << " layer " << l;
        EXPECT_EQ(got, want) << c.file << " " << tensor_name(t) << " layer " << l;
        EXPECT_EQ(std::bit_cast<std::uint32_t>(g), std::bit_cast<std::uint32_t>(gamma))
            << c.file << " " << tensor_name(t) << " layer " << l;
        // As floats: code * gamma (the packed release divides by its 1/gamma scale).
        const std::vector<float> f = file->read_tensor(t, l);
        for (std::size_t i = 0; i < f.size(); i += 97) {
          const float expect = *c.file == 's' && std::string(c.file) == "stories_hf_packed"
                                   ? float(want[i]) / (1.0f / gamma)
                                   : float(want[i]) * gamma;
          ASSERT_EQ(f[i], expect) << c.file << " element " << i;
        }
      }
    // Norms and the embedding are stored as F32.
    EXPECT_TRUE(same_bits(file->read_tensor(Tensor::rms_att, 2), ref.read_tensor(Tensor::rms_att, 2)));
    EXPECT_TRUE(same_bits(file->read_tensor(Tensor::token_embedding, 0), ref.read_tensor(Tensor::token_embedding, 0)));
  }
  // A float file is not ternary unless its weights are: read_ternary declines.
  const auto f32 = open_weight_source(with_weights(stories, checkpoint_path("stories_f32.gguf")), 1);
  std::vector<std::int8_t> codes(64 * 64);
  float g;
  EXPECT_FALSE(f32->read_ternary(Tensor::wq, 0, codes.data(), &g));
}

TEST(Checkpoints, ShapeAndVocabularyComeFromTheMetadata) {
  const ModelConfig stories = stories_config();
  for (const char* f : {"stories_f32.gguf", "stories_hf"}) {
    ASSERT_TRUE(checkpoint_present(f));
    const ModelConfig c = read_checkpoint_config(checkpoint_path(f));
    EXPECT_EQ(c.dim, stories.dim) << f;
    EXPECT_EQ(c.hidden_dim, stories.hidden_dim) << f;
    EXPECT_EQ(c.layers, stories.layers) << f;
    EXPECT_EQ(c.heads, stories.heads) << f;
    EXPECT_EQ(c.kv_heads, stories.kv_heads) << f;
    EXPECT_EQ(c.vocab, stories.vocab) << f;
    EXPECT_EQ(c.seq_len, stories.seq_len) << f;
    EXPECT_EQ(c.ffn, "swiglu") << f;
    EXPECT_EQ(float(c.norm_eps), 1e-5f) << f;
    EXPECT_EQ(c.rope_theta, 10000.0) << f;
    EXPECT_FALSE(c.ternary) << f;
    EXPECT_EQ(checkpoint_format(checkpoint_path(f)), *f == 's' && std::string(f).find("gguf") != std::string::npos
                                                          ? CheckpointFormat::gguf
                                                          : CheckpointFormat::safetensors);
  }
  EXPECT_EQ(read_checkpoint_config(checkpoint_path("stories_f32.gguf")).name, "stories260K");
  EXPECT_EQ(read_checkpoint_config(checkpoint_path("stories_f32.gguf")).tokenizer, checkpoint_path("stories_f32.gguf"));
  EXPECT_EQ(read_checkpoint_config(checkpoint_path("stories_hf")).tokenizer, "");  // no tokenizer.json
  EXPECT_EQ(checkpoint_format(stories.weights), CheckpointFormat::llama2c);
  EXPECT_EQ(checkpoint_format("synthetic"), CheckpointFormat::synthetic);
}

TEST(Checkpoints, TheGgufSentencePieceVocabularyIsTok512) {
  const ModelConfig stories = stories_config();
  const Tokenizer ref(stories.tokenizer, stories.vocab);
  const auto t = open_tokenizer(read_checkpoint_config(checkpoint_path("stories_f32.gguf")));
  ASSERT_TRUE(t);
  const auto* tok = dynamic_cast<const Tokenizer*>(t.get());
  ASSERT_TRUE(tok);
  for (int i = 0; i < 512; ++i) {
    EXPECT_EQ(tok->piece(i), ref.piece(i)) << i;
    EXPECT_EQ(tok->score(i), ref.score(i)) << i;
  }
  for (const char* p : {"Once upon a time", "The dragon's 3 eggs!", "héllo wörld", ""})
    EXPECT_EQ(tok->encode(p), ref.encode(p)) << p;
}

// ---- BitNet architectures, from synthetic weights

ModelConfig tiny_bitnet() {
  ModelConfig c;
  c.name = "tiny-bitnet";
  c.dim = 64;
  c.hidden_dim = 96;
  c.layers = 2;
  c.heads = 4;
  c.kv_heads = 2;
  c.vocab = 100;
  c.seq_len = 128;
  c.ffn = "relu2";
  c.rope_theta = 500000.0;
  c.ternary = true;
  c.weights = "synthetic";
  return c;
}

// Rows of W_q / W_k as checkpoints with split-half RoPE store them: stored row h*hd + t*hd/2 + j
// is row h*hd + 2j + t.
std::vector<float> split_half(const std::vector<float>& w, std::int64_t rows, std::int64_t cols, std::int64_t heads) {
  std::vector<float> out(w.size());
  const std::int64_t hd = rows / heads;
  for (std::int64_t h = 0; h < heads; ++h)
    for (std::int64_t j = 0; j < hd / 2; ++j)
      for (std::int64_t t = 0; t < 2; ++t)
        std::copy_n(w.begin() + (h * hd + 2 * j + t) * cols, cols, out.begin() + (h * hd + t * (hd / 2) + j) * cols);
  return out;
}

std::string gguf_name(Tensor t, std::int64_t l) {
  static const char* names[] = {"token_embd", "attn_norm", "attn_q",   "attn_k",        "attn_v",
                                "attn_output", "ffn_norm", "ffn_gate", "ffn_down",      "ffn_up",
                                "attn_sub_norm", "ffn_sub_norm", "output_norm"};
  const std::string n = names[static_cast<int>(t)];
  return tensor_is_per_layer(t) ? "blk." + std::to_string(l) + "." + n + ".weight" : n + ".weight";
}

test::GgufWriter bitnet_gguf(const ModelConfig& c, const WeightSource& src) {
  test::GgufWriter w;
  w.add_string("general.architecture", "bitnet-b1.58");
  w.add_u32("bitnet-b1.58.block_count", std::uint32_t(c.layers));
  w.add_u32("bitnet-b1.58.context_length", std::uint32_t(c.seq_len));
  w.add_u32("bitnet-b1.58.embedding_length", std::uint32_t(c.dim));
  w.add_u32("bitnet-b1.58.feed_forward_length", std::uint32_t(c.hidden_dim));
  w.add_u32("bitnet-b1.58.attention.head_count", std::uint32_t(c.heads));
  w.add_u32("bitnet-b1.58.attention.head_count_kv", std::uint32_t(c.kv_heads));
  w.add_f32("bitnet-b1.58.rope.freq_base", float(c.rope_theta));
  w.add_f32("bitnet-b1.58.attention.layer_norm_rms_epsilon", 1e-5f);
  w.add_u32("bitnet-b1.58.rope.dimension_count", std::uint32_t(c.head_dim()));
  for (int i = 0; i < kTensorCount; ++i) {
    const auto t = static_cast<Tensor>(i);
    const TensorShape s = tensor_shape(c, t);
    for (std::int64_t l = 0; l < (tensor_is_per_layer(t) ? c.layers : 1); ++l) {
      std::vector<float> v = src.read_tensor(t, l);
      if (t == Tensor::wq || t == Tensor::wk) v = split_half(v, s.rows, s.cols, t == Tensor::wq ? c.heads : c.kv_heads);
      const bool vec = s.rows == 1 && t != Tensor::token_embedding;
      w.add_f32_tensor(gguf_name(t, l), vec ? std::vector<std::uint64_t>{std::uint64_t(s.cols)}
                                            : std::vector<std::uint64_t>{std::uint64_t(s.cols), std::uint64_t(s.rows)},
                       v);
    }
  }
  return w;
}

TEST(Checkpoints, BitnetGgufWithSplitHalfRopeRowsGivesTheModelsValues) {
  const ModelConfig c = tiny_bitnet();
  const SyntheticWeightSource syn(c, 7);
  const std::string path = tmp("tiny_bitnet.gguf");
  bitnet_gguf(c, syn).write(path);
  const ModelConfig fc = read_checkpoint_config(path);
  EXPECT_EQ(fc.ffn, "relu2");
  EXPECT_TRUE(fc.ternary);
  EXPECT_EQ(fc.rope_theta, 500000.0);
  EXPECT_EQ(fc.vocab, 100);
  const auto src = open_checkpoint(fc);
  expect_same_values(*src, syn, "bitnet-b1.58 GGUF");
  // Without the row map the attention rows would be in the wrong order: the test can tell.
  EXPECT_FALSE(same_bits(split_half(syn.read_tensor(Tensor::wq, 0), 64, 64, 4), syn.read_tensor(Tensor::wq, 0)));
}

// ---- one-line errors

std::string load_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const io::FileFormatError& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    return m;
  } catch (const UsageError& e) {
    return std::string("usage: ") + e.what();
  }
  return "";
}

std::string gguf_error(const test::GgufWriter& w, const std::string& name = "bad.gguf", bool tokenizer = false) {
  const std::string p = tmp(name);
  w.write(p);
  return load_error([&] {
    const ModelConfig c = read_checkpoint_config(p);
    if (tokenizer) (void)open_tokenizer(c);
    (void)open_checkpoint(c);
  });
}

TEST(Checkpoints, MalformedModelsAreOneLineNamingFileTensorAndProblem) {
  const ModelConfig c = tiny_bitnet();
  const SyntheticWeightSource syn(c, 7);
  const std::string p = tmp("bad.gguf");
  EXPECT_EQ(gguf_error(bitnet_gguf(c, syn)), "");

  test::GgufWriter w = bitnet_gguf(c, syn);
  w.add_tensor("blk.0.attn_q.weight", {64, 64}, 0, std::string(64 * 64 * 4, '\0'));  // a duplicate
  EXPECT_NE(gguf_error(w).find("tensor blk.0.attn_q.weight appears twice"), std::string::npos);

  auto without = [&](const std::string& drop, std::uint32_t type = 0, std::vector<std::uint64_t> ne = {}) {
    // The tiny model again with one tensor left out, or replaced by one of another type or shape.
    test::GgufWriter x;
    test::GgufWriter full = bitnet_gguf(c, syn);
    x.add_string("general.architecture", "bitnet-b1.58");
    for (auto [k, v] : {std::pair{"block_count", c.layers}, {"context_length", c.seq_len}, {"embedding_length", c.dim},
                        {"feed_forward_length", c.hidden_dim}, {"attention.head_count", c.heads},
                        {"attention.head_count_kv", c.kv_heads}})
      x.add_u32(std::string("bitnet-b1.58.") + k, std::uint32_t(v));
    for (int i = 0; i < kTensorCount; ++i) {
      const auto t = static_cast<Tensor>(i);
      const TensorShape s = tensor_shape(c, t);
      for (std::int64_t l = 0; l < (tensor_is_per_layer(t) ? c.layers : 1); ++l) {
        const std::string n = gguf_name(t, l);
        const bool vec = s.rows == 1 && t != Tensor::token_embedding;
        std::vector<std::uint64_t> shape = vec ? std::vector<std::uint64_t>{std::uint64_t(s.cols)}
                                               : std::vector<std::uint64_t>{std::uint64_t(s.cols), std::uint64_t(s.rows)};
        if (n == drop && ne.empty() && type == 0) continue;
        if (n == drop && !ne.empty()) shape = ne;
        std::int64_t count = 1;
        for (auto d : shape) count *= std::int64_t(d);
        x.add_tensor(n, shape, n == drop ? type : 0, std::string(std::size_t(count) * (n == drop && type == 12 ? 1 : 4), '\0'));
      }
    }
    return gguf_error(x);
  };
  EXPECT_NE(without("blk.1.ffn_down.weight").find("bad.gguf: tensor blk.1.ffn_down.weight is missing"), std::string::npos);
  EXPECT_NE(without("blk.0.attn_k.weight", 0, {64, 33}).find(
                "tensor blk.0.attn_k.weight: shape [64, 33] does not match [64, 32] from the metadata"),
            std::string::npos);
  EXPECT_NE(without("blk.0.attn_v.weight", 12, {64, 32}).find("tensor blk.0.attn_v.weight: type Q4_K is not supported"),
            std::string::npos);
  EXPECT_NE(without("token_embd.weight", 0, {63, 100}).find("token_embd.weight: shape [63, 100], expected [64, vocab]"),
            std::string::npos);

  auto kv = [&](auto edit) {
    test::GgufWriter x;
    edit(x);
    return gguf_error(x);
  };
  EXPECT_NE(kv([](auto& x) { x.add_string("general.architecture", "gpt2"); }).find("architecture \"gpt2\" is not supported"),
            std::string::npos);
  EXPECT_NE(kv([](auto&) {}).find("key general.architecture is missing"), std::string::npos);
  EXPECT_NE(kv([](auto& x) { x.add_string("general.architecture", "llama"); }).find("key llama.block_count is missing"),
            std::string::npos);
  EXPECT_NE(kv([](auto& x) {
              x.add_string("general.architecture", "llama");
              x.add_u32("llama.block_count", 0);
            }).find("key llama.block_count = 0 is out of range [1, 65536]"),
            std::string::npos);
  EXPECT_NE(kv([](auto& x) {
              x.add_string("general.architecture", "llama");
              x.add_string("llama.block_count", "two");
            }).find("key llama.block_count has type string, expected an integer"),
            std::string::npos);

  auto llama = [&](auto extra) {
    test::GgufWriter x;
    x.add_string("general.architecture", "llama");
    for (auto [k, v] : {std::pair{"block_count", 1}, {"context_length", 16}, {"embedding_length", 8},
                        {"feed_forward_length", 8}, {"attention.head_count", 2}})
      x.add_u32(std::string("llama.") + k, std::uint32_t(v));
    x.add_f32_tensor("token_embd.weight", {8, 5}, std::vector<float>(40));
    extra(x);
    return gguf_error(x);
  };
  EXPECT_NE(llama([](auto& x) { x.add_f32_tensor("output.weight", {8, 5}, std::vector<float>(40)); })
                .find("tensor output.weight: a separate classifier (untied embeddings) is not supported"),
            std::string::npos);
  EXPECT_NE(llama([](auto& x) { x.add_f32_tensor("rope_freqs.weight", {2}, std::vector<float>(2)); })
                .find("tensor rope_freqs.weight: RoPE frequency scaling"),
            std::string::npos);
  EXPECT_NE(llama([](auto& x) { x.add_u32("llama.rope.dimension_count", 2); }).find("partial RoPE is not supported"),
            std::string::npos);
  EXPECT_NE(llama([](auto& x) { x.add_string("llama.rope.scaling.type", "yarn"); }).find("RoPE scaling is not supported"),
            std::string::npos);
  // Tokenizers: of another kind, or not the size of the model's vocabulary.
  auto tok = [&](auto extra) {
    test::GgufWriter x;
    x.add_string("general.architecture", "llama");
    for (auto [k, v] : {std::pair{"block_count", 1}, {"context_length", 16}, {"embedding_length", 8},
                        {"feed_forward_length", 8}, {"attention.head_count", 2}})
      x.add_u32(std::string("llama.") + k, std::uint32_t(v));
    x.add_f32_tensor("token_embd.weight", {8, 5}, std::vector<float>(40));
    extra(x);
    const std::string path = tmp("tok.gguf");
    x.write(path);
    return load_error([&] { (void)open_tokenizer(read_checkpoint_config(path)); });
  };
  EXPECT_NE(tok([](auto& x) { x.add_string("tokenizer.ggml.model", "bert"); })
                .find("key tokenizer.ggml.model = \"bert\" is not supported"),
            std::string::npos);
  EXPECT_NE(tok([](auto& x) {
              x.add_string("tokenizer.ggml.model", "llama");
              x.add_strings("tokenizer.ggml.tokens", {"a", "b", "c"});
            }).find("the vocabulary has 3 tokens, the model 5"),
            std::string::npos);
  EXPECT_NE(tok([](auto& x) {
              x.add_string("tokenizer.ggml.model", "gpt2");
              x.add_string("tokenizer.ggml.pre", "qwen2");
            }).find("tokenizer.ggml.pre = \"qwen2\": only the LLaMA-3 pre-tokeniser"),
            std::string::npos);
  EXPECT_NE(tok([](auto& x) {
              x.add_string("tokenizer.ggml.model", "llama");
              x.add_strings("tokenizer.ggml.tokens", {"a", "b", "c", "d", "e"});
              x.add_u32("tokenizer.ggml.bos_token_id", 0);
            }).find("key tokenizer.ggml.bos_token_id = 0: the SentencePiece tokenizer uses 1"),
            std::string::npos);
}

TEST(Checkpoints, MalformedHuggingFaceDirectoriesAreOneLine) {
  const std::string dir = tmp("hf_bad");
  std::filesystem::create_directories(dir);
  auto err = [&](const std::string& config) {
    std::ofstream(dir + "/config.json") << config;
    return load_error([&] { (void)open_checkpoint(read_checkpoint_config(dir)); });
  };
  EXPECT_NE(err("{}").find("needs config.json and model.safetensors"), std::string::npos);
  std::filesystem::copy_file(checkpoint_path("stories_hf/model.safetensors"), dir + "/model.safetensors");
  const std::string good = R"("hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 5,
      "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 512, "max_position_embeddings": 512,
      "rms_norm_eps": 1e-05)";
  EXPECT_EQ(err(R"({"model_type": "llama", "hidden_act": "silu", "tie_word_embeddings": true, )" + good + "}"), "");
  EXPECT_NE(err(R"({"model_type": "mistral", )" + good + "}").find("model_type \"mistral\" is not supported"),
            std::string::npos);
  EXPECT_NE(err(R"({"model_type": "llama", "hidden_act": "silu", )" + good + "}").find("tie_word_embeddings is false"),
            std::string::npos);
  EXPECT_NE(err(R"({"model_type": "llama", "hidden_act": "gelu", "tie_word_embeddings": true, )" + good + "}")
                .find("hidden_act \"gelu\""),
            std::string::npos);
  EXPECT_NE(err(R"({"model_type": "llama", "hidden_act": "silu", "tie_word_embeddings": true, "rope_scaling": {"rope_type": "llama3"}, )" +
                good + "}")
                .find("rope_scaling"),
            std::string::npos);
  EXPECT_NE(err(R"({"model_type": "llama", "hidden_act": "silu", "tie_word_embeddings": true, "hidden_size": 64,
      "intermediate_size": 173, "num_hidden_layers": 5, "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 512,
      "max_position_embeddings": 512})")
                .find("/model.safetensors: tensor model.layers.0.mlp.gate_proj.weight: shape [172, 64] does not match [173, 64] from config.json"),
            std::string::npos);
  EXPECT_NE(err(R"({"model_type": "llama", "hidden_act": "silu", "tie_word_embeddings": true, "num_attention_heads": 8})")
                .find("key \"hidden_size\" is missing"),
            std::string::npos);
}

}  // namespace
}  // namespace wm::model
