#include "wafermesh/model/model_config.hpp"

#include <filesystem>

#include "wafermesh/util/checked_math.hpp"
#include "wafermesh/util/options.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::model {

std::vector<ParamSpec> ModelConfig::specs() {
  // Ranges: generous for real models (LLaMA-3 405B: dim 16384, hidden 53248, vocab 128256, 126
  // layers) and small enough that every size computed from them fits in 64 bits (validate()).
  return {
      param_text("model.name", &name, "model name, for reports"),
      param_int("model.dim", &dim, "elements", "embedding width", 1, kMaxDim),
      param_int("model.hidden_dim", &hidden_dim, "elements", "FFN width", 1, kMaxHiddenDim),
      param_int("model.layers", &layers, "layers", "transformer blocks", 1, kMaxLayers),
      param_int("model.heads", &heads, "heads", "query heads", 1, kMaxLayers),
      param_int("model.kv_heads", &kv_heads, "heads", "key/value heads (grouped-query attention)", 1, kMaxLayers),
      param_int("model.vocab", &vocab, "tokens", "vocabulary size (ids 0, 1, 2 are <unk>, BOS, EOS)", 3, kMaxVocab),
      param_int("model.seq_len", &seq_len, "tokens", "context length", 1, kMaxSeqLen),
      param_text("model.ffn", &ffn, "feed-forward: swiglu (Llama) or relu2 (BitNet gated squared ReLU)",
                 {"swiglu", "relu2"}),
      param_real("model.rope_theta", &rope_theta, "", "RoPE base", 0, 1e12, true),
      param_real("model.norm_eps", &norm_eps, "", "RMSNorm epsilon", 0, 1, true),
      param_flag("model.ternary", &ternary, "BitLinear projections: ternary weights, int8 activations"),
      param_text("model.weights", &weights,
                 "checkpoint: a GGUF file, a Hugging Face directory, a llama2.c checkpoint path, or synthetic"),
      param_text("model.tokenizer", &tokenizer,
                 "tokenizer: a llama2.c tokenizer path, a tokenizer.json, or a GGUF file (empty: print token ids)"),
  };
}

const std::vector<std::string>& ModelConfig::required_keys() {
  static const std::vector<std::string> keys = {"model.name",     "model.dim",   "model.hidden_dim",
                                                "model.layers",   "model.heads", "model.kv_heads",
                                                "model.vocab",    "model.seq_len"};
  return keys;
}

void ModelConfig::validate(const std::string& source) const {
  auto fail = [&](const std::string& why) { throw UsageError(source + ": " + why); };
  if (dim % heads) fail("model.dim = " + std::to_string(dim) + " is not a multiple of model.heads = " + std::to_string(heads));
  if (heads % kv_heads)
    fail("model.heads = " + std::to_string(heads) + " is not a multiple of model.kv_heads = " + std::to_string(kv_heads));
  // Every size computed from the dims is a product of them; the ranges of specs() keep those far
  // below 2^63, and a config built in code is checked the same way here, so that no later size
  // computation (tensors, checkpoint bytes, placement) can wrap.
  auto too_big = [&] {
    fail("the model's tensors hold more than 2^60 values (dim " + std::to_string(dim) + ", hidden_dim " +
         std::to_string(hidden_dim) + ", layers " + std::to_string(layers) + ", vocab " + std::to_string(vocab) +
         ", seq_len " + std::to_string(seq_len) + ")");
  };
  auto prod = [&](std::initializer_list<int64_t> f) {
    const std::optional<int64_t> p = checked_product(f);
    if (!p) too_big();
    return *p;
  };
  const std::optional<int64_t> per_layer = checked_sum({prod({4, dim, dim}), prod({4, hidden_dim, dim})});
  if (!per_layer) too_big();  // (an upper bound of wq..w3: kv_dim <= dim)
  const std::optional<int64_t> values =
      checked_sum({prod({vocab, dim}), prod({layers, *per_layer}), prod({layers, 3, dim + hidden_dim}),
                   prod({seq_len, dim})});
  if (!values || *values > (int64_t(1) << 60)) too_big();
}

ModelConfig load_model_config(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw UsageError("model file '" + path + "' is a directory");
  ModelConfig m;
  OptionSet opts;
  opts.add(m.specs());
  opts.parse({"--config", path});
  for (const std::string& key : ModelConfig::required_keys())
    if (opts.source(key) == "default")
      throw UsageError(path + ": no " + key.substr(6) + " = ... under [model] (a model file sets name, dim, hidden_dim, "
                       "layers, heads, kv_heads, vocab and seq_len)");
  m.validate(path);
  return m;
}

}  // namespace wm::model
