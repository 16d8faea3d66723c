#pragma once
// A model's shape and where its weights come from, read from configs/models/<name>.ini
// (section [model]). Every field is declared once with unit and help (specs()).
#include <cstdint>
#include <string>
#include <vector>

#include "wafermesh/util/param_spec.hpp"

namespace wm::model {

struct ModelConfig {
  std::string name = "unnamed";
  int64_t dim = 64;          // embedding width
  int64_t hidden_dim = 172;  // FFN width
  int64_t layers = 1;
  int64_t heads = 1;         // query heads
  int64_t kv_heads = 1;      // key/value heads (grouped-query attention)
  int64_t vocab = 32;
  int64_t seq_len = 512;     // context length
  std::string ffn = "swiglu";  // swiglu | relu2 (gated squared ReLU with sub-norm, BitNet)
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  bool ternary = false;      // BitLinear projections (ternary weights, int8 activations)
  std::string weights = "synthetic";  // checkpoint (checkpoint_loader.hpp), or "synthetic"
  std::string tokenizer;     // llama2.c tokenizer, tokenizer.json or GGUF (empty: print token ids)

  // Upper bounds of the dims (specs()): with them no tensor or file size overflows 64 bits.
  static constexpr int64_t kMaxDim = int64_t(1) << 20;
  static constexpr int64_t kMaxHiddenDim = int64_t(1) << 22;
  static constexpr int64_t kMaxLayers = int64_t(1) << 16;  // also heads and kv_heads
  static constexpr int64_t kMaxVocab = int64_t(1) << 24;
  static constexpr int64_t kMaxSeqLen = int64_t(1) << 24;

  std::vector<ParamSpec> specs();
  // The keys a model file must set (the others have defaults): name and every dim.
  static const std::vector<std::string>& required_keys();
  int64_t head_dim() const { return dim / heads; }
  int64_t kv_dim() const { return kv_heads * head_dim(); }
  // Shape checks (heads divide dim, kv_heads divide heads, at most 2^60 parameters). Throws
  // UsageError naming the file.
  void validate(const std::string& source) const;
};

// Reads [model] from an INI file. Throws UsageError with one line on a missing or malformed file,
// a directory, or a file that lacks one of required_keys() (naming the key and the file).
ModelConfig load_model_config(const std::string& path);

}  // namespace wm::model
