#include "wafermesh/model/checkpoint_loader.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "wafermesh/io/format_error.hpp"
#include "wafermesh/io/gguf.hpp"
#include "wafermesh/io/json.hpp"
#include "wafermesh/io/safetensors.hpp"
#include "wafermesh/model/bpe_tokenizer.hpp"
#include "wafermesh/model/file_weight_source.hpp"
#include "wafermesh/model/tokenizer.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::model {

namespace fs = std::filesystem;
using io::FileFormatError;

namespace {

constexpr std::int64_t kBig = std::int64_t(1) << 40;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FileFormatError(path + ": cannot open");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The safetensors file (or index) of a Hugging Face directory, "" when it has none.
std::string hf_weights_file(const std::string& dir) {
  for (const char* f : {"model.safetensors.index.json", "model.safetensors"}) {
    const fs::path p = fs::path(dir) / f;
    if (fs::is_regular_file(p)) return p.string();
  }
  return "";
}

// ---- GGUF

struct GgufArch {
  bool bitnet = false;      // relu2 FFN with sub-norms, classifier = token embedding
  bool split_half = false;  // W_q, W_k stored for split-half RoPE
  std::string prefix;       // "<arch>."
};

GgufArch gguf_arch(const io::GgufFile& g) {
  const auto arch = g.get_string("general.architecture");
  if (!arch) throw FileFormatError(g.path() + ": key general.architecture is missing");
  GgufArch a;
  a.prefix = *arch + ".";
  if (*arch == "llama") return a;
  if (*arch == "bitnet-b1.58" || *arch == "bitnet-25") {
    a.bitnet = a.split_half = true;
    return a;
  }
  throw FileFormatError(g.path() + ": architecture \"" + *arch +
                        "\" is not supported (llama, bitnet-b1.58 and bitnet-25 are; \"bitnet\" has a SiLU FFN with "
                        "sub-norms, which the model layer does not have)");
}

std::int64_t gguf_int(const io::GgufFile& g, const std::string& key, std::optional<std::int64_t> dflt,
                      std::int64_t lo, std::int64_t hi) {
  const auto v = g.get_int(key);
  if (!v && !dflt) throw FileFormatError(g.path() + ": key " + key + " is missing");
  const std::int64_t x = v ? *v : *dflt;
  if (x < lo || x > hi)
    throw FileFormatError(g.path() + ": key " + key + " = " + std::to_string(x) + " is out of range [" +
                          std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

double gguf_real(const io::GgufFile& g, const std::string& key, double dflt, double lo, double hi) {
  const double x = g.get_real(key).value_or(dflt);
  if (!(x > lo && x <= hi))
    throw FileFormatError(g.path() + ": key " + key + " = " + std::to_string(x) + " is out of range (" +
                          std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

const char* gguf_name(Tensor t) {
  switch (t) {
    case Tensor::token_embedding: return "token_embd";
    case Tensor::rms_att: return "attn_norm";
    case Tensor::wq: return "attn_q";
    case Tensor::wk: return "attn_k";
    case Tensor::wv: return "attn_v";
    case Tensor::wo: return "attn_output";
    case Tensor::rms_ffn: return "ffn_norm";
    case Tensor::w1: return "ffn_gate";
    case Tensor::w2: return "ffn_down";
    case Tensor::w3: return "ffn_up";
    case Tensor::attn_sub_norm: return "attn_sub_norm";
    case Tensor::ffn_sub_norm: return "ffn_sub_norm";
    case Tensor::rms_final: return "output_norm";
  }
  return "?";
}

std::string gguf_tensor_name(Tensor t, std::int64_t layer) {
  if (tensor_is_per_layer(t)) return "blk." + std::to_string(layer) + "." + gguf_name(t) + ".weight";
  return std::string(gguf_name(t)) + ".weight";
}

std::string dims_text(const std::vector<std::int64_t>& d) {
  std::string s = "[";
  for (std::size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

bool is_projection(Tensor t) {
  return t == Tensor::wq || t == Tensor::wk || t == Tensor::wv || t == Tensor::wo || t == Tensor::w1 ||
         t == Tensor::w2 || t == Tensor::w3;
}

ModelConfig config_from_gguf(const io::GgufFile& g) {
  const GgufArch a = gguf_arch(g);
  const std::string& p = a.prefix;
  ModelConfig c;
  c.name = g.get_string("general.name").value_or(fs::path(g.path()).stem().string());
  c.layers = gguf_int(g, p + "block_count", std::nullopt, 1, 1 << 16);
  c.dim = gguf_int(g, p + "embedding_length", std::nullopt, 1, kBig);
  c.hidden_dim = gguf_int(g, p + "feed_forward_length", std::nullopt, 1, kBig);
  c.heads = gguf_int(g, p + "attention.head_count", std::nullopt, 1, 1 << 16);
  c.kv_heads = gguf_int(g, p + "attention.head_count_kv", c.heads, 1, 1 << 16);
  c.seq_len = gguf_int(g, p + "context_length", std::nullopt, 1, kBig);
  c.rope_theta = gguf_real(g, p + "rope.freq_base", 10000.0, 0.0, 1e12);
  c.norm_eps = gguf_real(g, p + "attention.layer_norm_rms_epsilon", 1e-5, 0.0, 1.0);
  c.ffn = a.bitnet ? "relu2" : "swiglu";
  c.weights = g.path();
  c.validate(g.path());
  const std::int64_t hd = c.dim / c.heads;
  if (hd % 2) throw FileFormatError(g.path() + ": head size " + std::to_string(hd) + " is odd (RoPE rotates pairs)");
  if (const auto rd = g.get_int(p + "rope.dimension_count"); rd && *rd != hd)
    throw FileFormatError(g.path() + ": key " + p + "rope.dimension_count = " + std::to_string(*rd) +
                          ": partial RoPE is not supported (the head size is " + std::to_string(hd) + ")");
  for (const char* k : {"attention.key_length", "attention.value_length"})
    if (const auto v = g.get_int(p + k); v && *v != hd)
      throw FileFormatError(g.path() + ": key " + p + k + " = " + std::to_string(*v) + " differs from the head size " +
                            std::to_string(hd));
  if (const auto st = g.get_string(p + "rope.scaling.type"); st && *st != "none") {
    const double f = g.get_real(p + "rope.scaling.factor").value_or(1.0);
    if (!(*st == "linear" && f == 1.0))
      throw FileFormatError(g.path() + ": key " + p + "rope.scaling.type = \"" + *st + "\": RoPE scaling is not supported");
  }
  if (g.find_tensor("rope_freqs.weight"))
    throw FileFormatError(g.path() + ": tensor rope_freqs.weight: RoPE frequency scaling (LLaMA-3.1 style) is not supported");
  const io::GgufTensor* emb = g.find_tensor("token_embd.weight");
  if (!emb) throw FileFormatError(g.path() + ": tensor token_embd.weight is missing");
  if (emb->ne.size() != 2 || emb->ne[0] != c.dim)
    throw FileFormatError(g.path() + ": tensor token_embd.weight: shape " + dims_text(emb->ne) + ", expected [" +
                          std::to_string(c.dim) + ", vocab]");
  c.vocab = emb->ne[1];
  if (c.vocab < 1) throw FileFormatError(g.path() + ": tensor token_embd.weight has no rows");
  if (!a.bitnet && g.find_tensor("output.weight"))
    throw FileFormatError(g.path() + ": tensor output.weight: a separate classifier (untied embeddings) is not "
                          "supported; the model layer's classifier is the token embedding");
  // Ternary: a BitNet architecture, or projections stored in a ternary type.
  c.ternary = a.bitnet;
  for (std::int64_t l = 0; l < c.layers && !c.ternary; ++l)
    for (Tensor t : {Tensor::wq, Tensor::w1}) {
      const io::GgufTensor* x = g.find_tensor(gguf_tensor_name(t, l));
      if (x && x->dtype && io::dtype_is_ternary(*x->dtype)) c.ternary = true;
    }
  c.tokenizer = g.find("tokenizer.ggml.model") ? g.path() : "";
  return c;
}

// The view of every tensor of cfg (each layer's, for a per-layer tensor) with its name
// name_of(t, l) and shape; a tensor the model does not use is Kind::ones, and fill(v, t, shape)
// completes the others from the file. With split_half, the query and key rows are stored with
// split-half RoPE pairs (their row map).
template <class NameOf, class Fill>
std::vector<TensorView> tensor_views(const ModelConfig& cfg, bool split_half, const NameOf& name_of, const Fill& fill) {
  std::vector<TensorView> views(static_cast<std::size_t>(kTensorCount * cfg.layers));
  for (int ti = 0; ti < kTensorCount; ++ti) {
    const auto t = static_cast<Tensor>(ti);
    const TensorShape s = tensor_shape(cfg, t);
    const std::int64_t layers = tensor_is_per_layer(t) ? cfg.layers : 1;
    for (std::int64_t l = 0; l < layers; ++l) {
      TensorView& v = views[static_cast<std::size_t>(ti * cfg.layers + l)];
      v.rows = s.rows;
      v.cols = s.cols;
      v.name = name_of(t, l);
      if (!tensor_is_used(cfg, t)) {
        v.kind = TensorView::Kind::ones;
        continue;
      }
      fill(v, t, s);
      if (split_half && (t == Tensor::wq || t == Tensor::wk))
        v.row_map = split_half_rope_row_map(t == Tensor::wq ? cfg.heads : cfg.kv_heads, cfg.head_dim());
    }
  }
  return views;
}

std::unique_ptr<WeightSource> open_gguf(const ModelConfig& cfg) {
  auto g = std::make_shared<io::GgufFile>(cfg.weights);
  const GgufArch a = gguf_arch(*g);
  auto fill = [&](TensorView& v, Tensor t, const TensorShape& s) {
    const std::string& name = v.name;
    const io::GgufTensor* x = g->find_tensor(name);
    auto fail = [&](const std::string& why) { throw FileFormatError(g->path() + ": tensor " + name + ": " + why); };
    if (!x) throw FileFormatError(g->path() + ": tensor " + name + " is missing");
    const std::vector<std::int64_t> want =
        s.rows == 1 && t != Tensor::token_embedding ? std::vector<std::int64_t>{s.cols}
                                                    : std::vector<std::int64_t>{s.cols, s.rows};
    if (x->ne != want)
      fail("shape " + dims_text(x->ne) + " does not match " + dims_text(want) + " from the metadata");
    if (!x->dtype)
      fail("type " + io::ggml_type_name(x->ggml_type) +
           " is not supported (F32, F16, BF16, TQ1_0, TQ2_0 and I2_S are)");
    v.data = x->data;
    v.dtype = *x->dtype;
    v.elements = x->elements;
  };
  return std::make_unique<FileWeightSource>(cfg, tensor_views(cfg, a.split_half, gguf_tensor_name, fill), g);
}

// ---- Hugging Face directories

const io::Json* hf_key(const io::Json& j, const char* key) { return j.is_object() ? j.find(key) : nullptr; }

std::int64_t hf_int(const io::Json& j, const std::string& src, const char* key, std::optional<std::int64_t> dflt,
                    std::int64_t lo, std::int64_t hi) {
  const io::Json* v = hf_key(j, key);
  if (!v && !dflt) throw FileFormatError(src + ": key \"" + key + "\" is missing");
  if (v && !v->is_integer()) throw FileFormatError(src + ": key \"" + key + "\" is not an integer");
  const std::int64_t x = v ? v->as_int() : *dflt;
  if (x < lo || x > hi)
    throw FileFormatError(src + ": key \"" + key + "\" = " + std::to_string(x) + " is out of range [" +
                          std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

double hf_real(const io::Json& j, const std::string& src, const char* key, double dflt, double lo, double hi) {
  const io::Json* v = hf_key(j, key);
  if (v && !v->is_number()) throw FileFormatError(src + ": key \"" + key + "\" is not a number");
  const double x = v ? v->as_double() : dflt;
  if (!(x > lo && x <= hi))
    throw FileFormatError(src + ": key \"" + key + "\" = " + std::to_string(x) + " is out of range");
  return x;
}

std::string hf_string(const io::Json& j, const char* key) {
  const io::Json* v = hf_key(j, key);
  return v && v->is_string() ? v->as_string() : "";
}

ModelConfig config_from_hf(const std::string& dir) {
  const std::string src = (fs::path(dir) / "config.json").string();
  const io::Json j = io::parse_json(read_text(src), src);
  if (!j.is_object()) throw FileFormatError(src + ": not a JSON object");
  const std::string type = hf_string(j, "model_type");
  if (type != "llama" && type != "bitnet")
    throw FileFormatError(src + ": model_type \"" + type + "\" is not supported (llama and bitnet are)");
  const bool bitnet = type == "bitnet";
  ModelConfig c;
  c.name = fs::path(dir).filename().string();
  if (c.name.empty()) c.name = fs::path(dir).parent_path().filename().string();
  c.dim = hf_int(j, src, "hidden_size", std::nullopt, 1, kBig);
  c.hidden_dim = hf_int(j, src, "intermediate_size", std::nullopt, 1, kBig);
  c.layers = hf_int(j, src, "num_hidden_layers", std::nullopt, 1, 1 << 16);
  c.heads = hf_int(j, src, "num_attention_heads", std::nullopt, 1, 1 << 16);
  c.kv_heads = hf_int(j, src, "num_key_value_heads", c.heads, 1, 1 << 16);
  c.vocab = hf_int(j, src, "vocab_size", std::nullopt, 1, kBig);
  c.seq_len = hf_int(j, src, "max_position_embeddings", std::nullopt, 1, kBig);
  c.rope_theta = hf_real(j, src, "rope_theta", 10000.0, 0.0, 1e12);
  c.norm_eps = hf_real(j, src, "rms_norm_eps", 1e-6, 0.0, 1.0);
  const std::string act = hf_string(j, "hidden_act");
  if (bitnet && act != "relu2")
    throw FileFormatError(src + ": hidden_act \"" + act + "\" with model_type bitnet is not supported (relu2 is)");
  if (!bitnet && act != "silu")
    throw FileFormatError(src + ": hidden_act \"" + act + "\" with model_type llama is not supported (silu is)");
  c.ffn = bitnet ? "relu2" : "swiglu";
  c.validate(src);
  const std::int64_t hd = c.dim / c.heads;
  if (hd % 2) throw FileFormatError(src + ": head size " + std::to_string(hd) + " is odd (RoPE rotates pairs)");
  if (const io::Json* h = hf_key(j, "head_dim"); h && !(h->is_integer() && h->as_int() == hd))
    throw FileFormatError(src + ": key \"head_dim\" differs from hidden_size / num_attention_heads = " + std::to_string(hd));
  if (const io::Json* rs = hf_key(j, "rope_scaling"); rs && !rs->is_null())
    throw FileFormatError(src + ": key \"rope_scaling\": RoPE scaling is not supported");
  const io::Json* tie = hf_key(j, "tie_word_embeddings");
  const bool tied = tie && tie->is_bool() ? tie->as_bool() : bitnet;
  if (!tied)
    throw FileFormatError(src + ": tie_word_embeddings is false: a separate classifier (lm_head) is not supported; "
                          "the model layer's classifier is the token embedding");
  const io::Json* q = hf_key(j, "quantization_config");
  c.ternary = bitnet || (q && hf_string(*q, "quant_method") == "bitnet");
  c.weights = dir;
  const fs::path tj = fs::path(dir) / "tokenizer.json";
  c.tokenizer = fs::is_regular_file(tj) ? tj.string() : "";
  return c;
}

std::string hf_tensor_name(Tensor t, std::int64_t layer) {
  const std::string L = "model.layers." + std::to_string(layer) + ".";
  switch (t) {
    case Tensor::token_embedding: return "model.embed_tokens.weight";
    case Tensor::rms_att: return L + "input_layernorm.weight";
    case Tensor::wq: return L + "self_attn.q_proj.weight";
    case Tensor::wk: return L + "self_attn.k_proj.weight";
    case Tensor::wv: return L + "self_attn.v_proj.weight";
    case Tensor::wo: return L + "self_attn.o_proj.weight";
    case Tensor::rms_ffn: return L + "post_attention_layernorm.weight";
    case Tensor::w1: return L + "mlp.gate_proj.weight";
    case Tensor::w2: return L + "mlp.down_proj.weight";
    case Tensor::w3: return L + "mlp.up_proj.weight";
    case Tensor::attn_sub_norm: return L + "self_attn.attn_sub_norm.weight";
    case Tensor::ffn_sub_norm: return L + "mlp.ffn_sub_norm.weight";
    case Tensor::rms_final: return "model.norm.weight";
  }
  return "?";
}

std::unique_ptr<WeightSource> open_hf(const ModelConfig& cfg) {
  const std::string file = hf_weights_file(cfg.weights);
  if (file.empty())
    throw FileFormatError(cfg.weights + ": no model.safetensors or model.safetensors.index.json in the directory");
  auto set = std::make_shared<io::SafetensorsSet>(file);
  auto fill = [&](TensorView& v, Tensor t, const TensorShape& s) {
    const std::string& name = v.name;
    const io::SafeTensor* x = set->find(name);
    if (!x) throw FileFormatError(file + ": tensor " + name + " is missing");
    auto fail = [&](const std::string& why) { throw FileFormatError(x->file + ": tensor " + name + ": " + why); };
    const std::vector<std::int64_t> want = s.rows == 1 && t != Tensor::token_embedding
                                               ? std::vector<std::int64_t>{s.cols}
                                               : std::vector<std::int64_t>{s.rows, s.cols};
    const io::SafeTensor* scale = set->find(name + "_scale");
    if (x->dtype == io::DType::u8 && scale && is_projection(t)) {
      // BitNet's packed projection: (rows / 4, cols) bytes and a one-element scale.
      const std::vector<std::int64_t> packed{s.rows / 4, s.cols};
      if (s.rows % 4 != 0 || x->shape != packed)
        fail("packed shape " + dims_text(x->shape) + " does not match " + dims_text(packed) +
             " (four rows per byte) from config.json");
      if (scale->elements != 1 || !scale->dtype || scale->dtype == io::DType::u8)
        throw FileFormatError(scale->file + ": tensor " + scale->name + ": expected one F32, F16 or BF16 value");
      float ws;
      io::decode_floats(*scale->dtype, scale->data, 1, 0, 1, &ws);
      if (!(std::isfinite(ws) && ws > 0.0f))
        throw FileFormatError(scale->file + ": tensor " + scale->name + ": scale " + std::to_string(ws) +
                              " is not a positive number");
      v.kind = TensorView::Kind::packed;
      v.data = x->data;
      v.weight_scale = ws;
      v.elements = x->elements;
    } else {
      if (x->shape != want) fail("shape " + dims_text(x->shape) + " does not match " + dims_text(want) + " from config.json");
      if (!x->dtype || x->dtype == io::DType::u8)
        fail("dtype " + x->dtype_name + " is not supported (F32, F16, BF16, and BitNet's packed U8 with a scale)");
      v.data = x->data;
      v.dtype = *x->dtype;
      v.elements = x->elements;
    }
  };
  return std::make_unique<FileWeightSource>(cfg, tensor_views(cfg, true, hf_tensor_name, fill), set);
}

// ---- tokenizers

std::unique_ptr<TextTokenizer> gguf_tokenizer(const std::string& path) {
  const io::GgufFile g(path);
  const auto model = g.get_string("tokenizer.ggml.model");
  if (!model) throw FileFormatError(path + ": key tokenizer.ggml.model is missing (the file has no vocabulary)");
  if (*model == "gpt2") return BpeTokenizer::from_gguf(g);
  if (*model != "llama")
    throw FileFormatError(path + ": key tokenizer.ggml.model = \"" + *model +
                          "\" is not supported (llama: SentencePiece; gpt2: byte-level BPE)");
  const io::GgufValue* tokens = g.find("tokenizer.ggml.tokens");
  if (!tokens || !tokens->is_array() || tokens->elem_type != io::GgufValueType::string ||
      std::int64_t(tokens->strings.size()) != tokens->count)
    throw FileFormatError(path + ": key tokenizer.ggml.tokens is missing or not an array of strings");
  const io::GgufValue* scores = g.find("tokenizer.ggml.scores");
  if (scores && (!scores->is_array() || std::int64_t(scores->numbers.size()) != tokens->count))
    throw FileFormatError(path + ": key tokenizer.ggml.scores does not hold one number per token");
  const std::pair<const char*, std::int64_t> ids[] = {{"tokenizer.ggml.bos_token_id", Tokenizer::kBos},
                                                        {"tokenizer.ggml.eos_token_id", Tokenizer::kEos}};
  for (const auto& [k, want] : ids) {
    if (const auto id = g.get_int(k); id && *id != want)
      throw FileFormatError(path + ": key " + k + " = " + std::to_string(*id) + ": the SentencePiece tokenizer uses " +
                            std::to_string(want));
  }
  // SentencePiece writes a word-initial space as U+2581; the llama2.c tokenizer works with ' '.
  std::vector<std::string> pieces;
  pieces.reserve(tokens->strings.size());
  for (const std::string& s : tokens->strings) {
    std::string p;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s.compare(i, 3, "\xE2\x96\x81") == 0) {
        p.push_back(' ');
        i += 2;
      } else {
        p.push_back(s[i]);
      }
    }
    pieces.push_back(std::move(p));
  }
  std::vector<float> sc(pieces.size(), 0.0f);
  if (scores)
    for (std::size_t i = 0; i < sc.size(); ++i) sc[i] = static_cast<float>(scores->numbers[i]);
  return std::make_unique<Tokenizer>(std::move(pieces), std::move(sc));
}

}  // namespace

CheckpointFormat checkpoint_format(const std::string& weights) {
  if (weights == "synthetic") return CheckpointFormat::synthetic;
  std::error_code ec;
  if (fs::is_directory(weights, ec)) return CheckpointFormat::safetensors;
  // A .gguf name is read as GGUF even without the magic, so a damaged file is reported as one.
  const bool gguf_name = weights.size() >= 5 && weights.compare(weights.size() - 5, 5, ".gguf") == 0;
  if (gguf_name || io::is_gguf_file(weights)) return CheckpointFormat::gguf;
  return CheckpointFormat::llama2c;
}

bool checkpoint_has_shape(const std::string& weights) {
  const CheckpointFormat f = checkpoint_format(weights);
  return f == CheckpointFormat::gguf || f == CheckpointFormat::safetensors;
}

ModelConfig read_checkpoint_config(const std::string& weights) {
  switch (checkpoint_format(weights)) {
    case CheckpointFormat::gguf: return config_from_gguf(io::GgufFile(weights));
    case CheckpointFormat::safetensors: {
      if (hf_weights_file(weights).empty() || !fs::is_regular_file(fs::path(weights) / "config.json"))
        throw FileFormatError(weights + ": a checkpoint directory needs config.json and model.safetensors or "
                              "model.safetensors.index.json");
      return config_from_hf(weights);
    }
    default: throw UsageError(weights + ": not a GGUF file or a Hugging Face checkpoint directory");
  }
}

void check_config_matches(const ModelConfig& given, const std::string& given_source, const ModelConfig& file) {
  const struct {
    const char* name;
    std::int64_t a, b;
  } fields[] = {{"model.dim", given.dim, file.dim},          {"model.hidden_dim", given.hidden_dim, file.hidden_dim},
                {"model.layers", given.layers, file.layers}, {"model.heads", given.heads, file.heads},
                {"model.kv_heads", given.kv_heads, file.kv_heads}, {"model.vocab", given.vocab, file.vocab}};
  for (const auto& f : fields)
    if (f.a != f.b)
      throw UsageError(given_source + ": " + f.name + " = " + std::to_string(f.a) + " does not match " +
                       std::to_string(f.b) + " in " + file.weights);
  if (given.ffn != file.ffn)
    throw UsageError(given_source + ": model.ffn = " + given.ffn + " does not match " + file.ffn + " in " + file.weights);
}

std::unique_ptr<WeightSource> open_checkpoint(const ModelConfig& cfg) {
  const ModelConfig file = read_checkpoint_config(cfg.weights);
  check_config_matches(cfg, "model config", file);
  if (checkpoint_format(cfg.weights) == CheckpointFormat::gguf) return open_gguf(cfg);
  return open_hf(cfg);
}

std::unique_ptr<TextTokenizer> open_tokenizer(const ModelConfig& cfg) {
  if (cfg.tokenizer.empty()) return nullptr;
  std::unique_ptr<TextTokenizer> t;
  const std::string& p = cfg.tokenizer;
  if (io::is_gguf_file(p)) {
    t = gguf_tokenizer(p);
  } else if (p.size() >= 5 && p.substr(p.size() - 5) == ".json") {
    auto b = BpeTokenizer::from_tokenizer_json(p);
    t = std::move(b);
  } else {
    return std::make_unique<Tokenizer>(p, cfg.vocab);  // checks its own size
  }
  if (t->vocab_size() != cfg.vocab)
    throw FileFormatError(p + ": the vocabulary has " + std::to_string(t->vocab_size()) + " tokens, the model " +
                          std::to_string(cfg.vocab) + " (model.vocab)");
  return t;
}

}  // namespace wm::model
