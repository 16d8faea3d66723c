#pragma once
// A WeightSource over tensors memory-mapped from a GGUF or safetensors file: each (tensor, layer)
// is a view of bytes in the file plus how to read them. Rows are decoded on demand, so a rank
// reads exactly the rows of its tiles, as with the llama2.c reader.
//
// How a view reads row r of its matrix (rows, cols):
//   - the stored row is row_map[r] (identity when row_map is empty). Checkpoints whose RoPE
//     rotates the two halves of each head (Hugging Face, llama.cpp's "NEOX" archs) store W_q and
//     W_k with each head's rows in the order (pair j of the first half, ..., pair j of the second
//     half); the emulator rotates adjacent pairs (2j, 2j+1) as llama2.c does, so
//     row_map[h*hd + 2j + t] = h*hd + t*(hd/2) + j. Permuting the rows of W_q and W_k alike leaves
//     every attention score unchanged.
//   - dense: elements [row_map[r] * cols, +cols) of a tensor of any decoded dtype
//     (io/tensor_codecs.hpp), as floats;
//   - packed: the BitNet safetensors release's U8 tensor (rows/4, cols), four 2-bit codes per byte:
//     row r is byte row r % (rows/4), bits 2*(r / (rows/4)); code c means weight c - 1, and the
//     float weight is (c - 1) / weight_scale (the release stores the reciprocal of gamma);
//   - ones: a sub-norm the checkpoint does not hold (a plain RMSNorm), as in the llama2.c reader.
//
// read_ternary (the BitLinear codes and gamma, weights.hpp) gives, without re-ternarising:
//   packed              codes and gamma = 1 / weight_scale
//   TQ1_0, TQ2_0, I2_S  codes and gamma = the scale, when every block of the tensor has the same
//                       scale (BitNet conversions write the tensor's one scale into each block)
//                       and every code is ternary; otherwise false (absmean of the floats)
//   F32, F16, BF16      codes = sign and gamma = g when every nonzero weight has magnitude g (a
//                       ternary model exported to floats); otherwise false
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "wafermesh/io/tensor_codecs.hpp"
#include "wafermesh/model/weights.hpp"

namespace wm::model {

struct TensorView {
  enum class Kind { dense, packed, ones };
  Kind kind = Kind::dense;
  std::string name;               // the file's tensor name, for messages
  const std::uint8_t* data = nullptr;
  io::DType dtype = io::DType::f32;
  std::int64_t elements = 0;      // of the stored tensor (i2_s needs it to find its scale)
  std::int64_t rows = 0, cols = 0;
  std::vector<std::int32_t> row_map;  // (rows) stored row of each row; empty: identity
  float weight_scale = 1.0f;      // packed only
};

class FileWeightSource final : public WeightSource {
 public:
  // views: (kTensorCount * cfg.layers), index int(t) * layers + layer (layer 0 for global tensors).
  // `keep_alive` owns the mapped files the views point into.
  FileWeightSource(const ModelConfig& cfg, std::vector<TensorView> views, std::shared_ptr<const void> keep_alive);

  const ModelConfig& config() const override { return cfg_; }
  void read_rows(Tensor t, std::int64_t layer, std::int64_t row0, std::int64_t rows, float* out) const override;
  bool read_ternary(Tensor t, std::int64_t layer, std::int8_t* codes, float* gamma) const override;

  const TensorView& view(Tensor t, std::int64_t layer) const;

 private:
  ModelConfig cfg_;
  std::vector<TensorView> views_;
  std::shared_ptr<const void> keep_alive_;
};

// row_map for W_q (n_heads = heads) or W_k (n_heads = kv_heads) stored with split-half RoPE pairs.
std::vector<std::int32_t> split_half_rope_row_map(std::int64_t n_heads, std::int64_t head_dim);

}  // namespace wm::model
