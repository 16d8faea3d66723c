#include "wafermesh/model/model_config.hpp"

#include "wafermesh/util/options.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::model {

std::vector<ParamSpec> ModelConfig::specs() {
  constexpr int64_t kBig = int64_t(1) << 40;
  return {
      param_text("model.name", &name, "model name, for reports"),
      param_int("model.dim", &dim, "elements", "embedding width", 1, kBig),
      param_int("model.hidden_dim", &hidden_dim, "elements", "FFN width", 1, kBig),
      param_int("model.layers", &layers, "layers", "transformer blocks", 1, 1 << 16),
      param_int("model.heads", &heads, "heads", "query heads", 1, 1 << 16),
      param_int("model.kv_heads", &kv_heads, "heads", "key/value heads (grouped-query attention)", 1, 1 << 16),
      param_int("model.vocab", &vocab, "tokens", "vocabulary size", 1, kBig),
      param_int("model.seq_len", &seq_len, "tokens", "context length", 1, kBig),
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

void ModelConfig::validate(const std::string& source) const {
  auto fail = [&](const std::string& why) { throw UsageError(source + ": " + why); };
  if (dim % heads) fail("model.dim = " + std::to_string(dim) + " is not a multiple of model.heads = " + std::to_string(heads));
  if (heads % kv_heads)
    fail("model.heads = " + std::to_string(heads) + " is not a multiple of model.kv_heads = " + std::to_string(kv_heads));
}

ModelConfig load_model_config(const std::string& path) {
  ModelConfig m;
  OptionSet opts;
  opts.add(m.specs());
  opts.parse({"--config", path});
  m.validate(path);
  return m;
}

}  // namespace wm::model
