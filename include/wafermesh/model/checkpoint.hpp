#pragma once
// Reader of llama2.c legacy ("v0") checkpoints (layout: weights/stories260K/README.md).
//
//   header   7 x int32  dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
//   then float32, little-endian, in this order:
//            token_embedding (vocab, dim), rms_att (L, dim), wq (L, dim, dim), wk (L, kv_dim, dim),
//            wv (L, kv_dim, dim), wo (L, dim, dim), rms_ffn (L, dim), w1 (L, hidden, dim),
//            w2 (L, dim, hidden), w3 (L, hidden, dim), rms_final (dim),
//            legacy RoPE tables 2 x (seq_len, head_dim / 2)   (skipped: RoPE is recomputed)
//
// A positive vocab_size means the classifier is the token embedding (tied); a negative one means a
// separate classifier follows the RoPE tables. Only tied checkpoints are supported (the model layer
// has no untied classifier), so a negative vocab_size is rejected.
// The format carries no BitNet sub-norms: for relu2 configs they read as ones.
//
// Every check happens when the source is opened, so a bad file fails before any work starts, with
// one line (UsageError: bad input, exit code 2) that names the file:
//   <path>: cannot open checkpoint: <reason>
//   <path>: checkpoint has 10 bytes, less than its 28-byte header (truncated)
//   <path>: header field n_layers = 6 does not match model.layers = 5 of the model config
//   <path>: checkpoint has 1000 bytes, expected 1056540 for this model config (truncated)
//   <path>: tensor wq of layer 3 holds NaN at row 5, column 7 (byte offset 123456): the weights must be finite
// The header is checked against the config before any size is computed, sizes are computed
// without wrapping (util/checked_math.hpp), and every weight is read once to check it is finite
// (one pass over the file, in 4 MiB blocks).
#include <cstdint>
#include <string>

#include "wafermesh/model/model_config.hpp"
#include "wafermesh/model/weights.hpp"

namespace wm::model {

class CheckpointSource final : public WeightSource {
 public:
  // Opens and checks the file (header against cfg, exact size, finite weights). Throws UsageError
  // as above.
  CheckpointSource(const std::string& path, const ModelConfig& cfg);
  ~CheckpointSource() override;
  CheckpointSource(const CheckpointSource&) = delete;
  CheckpointSource& operator=(const CheckpointSource&) = delete;

  const ModelConfig& config() const override { return cfg_; }
  // pread()s the rows straight from the file (thread-safe; no state moves).
  void read_rows(Tensor t, std::int64_t layer, std::int64_t row0, std::int64_t rows,
                 float* out) const override;

  // The exact file size in bytes the config implies (header + arrays + RoPE tables). Throws
  // UsageError if it exceeds 2^63 - 1.
  static std::int64_t expected_bytes(const ModelConfig& cfg);

 private:
  void check_finite() const;  // throws UsageError naming the first NaN or Inf
  std::string path_;
  ModelConfig cfg_;
  int fd_ = -1;
  std::int64_t offset_[kTensorCount] = {};  // byte offset of each tensor's layer 0 (-1: not stored)
};

// materialize(CheckpointSource(path, cfg)).
Weights load_checkpoint(const std::string& path, const ModelConfig& cfg);

}  // namespace wm::model
