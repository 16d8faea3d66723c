#pragma once
// A model's weights: the tensor catalogue, the whole-model struct `Weights` (llama2.c layout) and
// `WeightSource`, the interface that hands out any block of rows of any one layer's tensor on
// demand.
//
// Why a source and not only a struct: BitNet b1.58 2B4T holds ~2.4G parameters (9.6 GB as fp32),
// more than a test machine has. The mesh transformer places one tile of one tensor of one layer
// on a PE, so it asks the source for exactly those rows (read_rows) and never materialises the
// model; the reference transformer, which only runs small models, takes a materialised `Weights`.
// Both sources (checkpoint.hpp, synthetic_weights.hpp) give identical values for a block whether
// it is read alone or as part of a larger read, so every rank can read just its own tiles and the
// result does not depend on the rank layout (DESIGN.md §3).
//
// Example (stories260K: dim 64, hidden 172, kv_dim 32): tensor_shape(cfg, Tensor::wk) = {32, 64};
// source.read_rows(Tensor::wk, /*layer*/ 3, /*row0*/ 8, /*rows*/ 4, out) fills out (4, 64) with
// rows 8..11 of layer 3's W_k.
#include <cstdint>
#include <memory>
#include <vector>

#include "wafermesh/model/model_config.hpp"

namespace wm::model {

// Every tensor of a model. Per-layer tensors exist once per layer; the others once per model.
// Matrices are (out, in) row-major: y = W x. Norm weights are (1, n) so that every tensor is a
// matrix and read_rows works the same way on all of them.
enum class Tensor : int {
  token_embedding,  // (vocab, dim)       global; also the (tied) classifier
  rms_att,          // (1, dim)           per layer: pre-attention RMSNorm weight
  wq,               // (dim, dim)         per layer
  wk,               // (kv_dim, dim)      per layer
  wv,               // (kv_dim, dim)      per layer
  wo,               // (dim, dim)         per layer
  rms_ffn,          // (1, dim)           per layer: pre-FFN RMSNorm weight
  w1,               // (hidden, dim)      per layer: gate
  w2,               // (dim, hidden)      per layer: down
  w3,               // (hidden, dim)      per layer: up
  attn_sub_norm,    // (1, dim)           per layer: BitNet sub-norm before W_o (relu2 models)
  ffn_sub_norm,     // (1, hidden)        per layer: BitNet sub-norm before W_down (relu2 models)
  rms_final,        // (1, dim)           global: final RMSNorm weight
};
inline constexpr int kTensorCount = 13;

struct TensorShape {
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::int64_t size() const { return rows * cols; }
};

const char* tensor_name(Tensor t);
bool tensor_is_per_layer(Tensor t);
// Shape of one layer's slice of t (or of the whole tensor when it is global).
TensorShape tensor_shape(const ModelConfig& cfg, Tensor t);
// Sub-norm weights exist only in relu2 (BitNet) models; swiglu models never read them.
bool tensor_is_used(const ModelConfig& cfg, Tensor t);

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual const ModelConfig& config() const = 0;
  // Rows [row0, row0 + rows) of layer `layer`'s slice of t (layer must be 0 for global tensors)
  // into out: (rows, tensor_shape(t).cols) row-major. Throws std::out_of_range for a block outside
  // the tensor, LimitError when the underlying data cannot be read. Safe to call from several
  // threads at once.
  virtual void read_rows(Tensor t, std::int64_t layer, std::int64_t row0, std::int64_t rows,
                         float* out) const = 0;
  // One layer's whole slice: (tensor_shape(t).rows, cols).
  std::vector<float> read_tensor(Tensor t, std::int64_t layer) const;
  // When the file stores layer `layer`'s slice of t as ternary codes with one scale (a BitNet
  // checkpoint), fills codes (rows, cols) in {-1, 0, +1} and *gamma, and returns true: a BitLinear
  // projection then uses them as they are instead of absmean-ternarising read_rows' floats
  // (which would shrink gamma by the fraction of nonzero codes). False (the default): no such form.
  virtual bool read_ternary(Tensor t, std::int64_t layer, std::int8_t* codes, float* gamma) const;
  // False for a source that has the shape only (ShapeOnlySource): a consumer then runs timing only
  // and never reads.
  virtual bool has_values() const { return true; }

 protected:
  // For implementations: throws std::out_of_range unless the block lies inside the tensor.
  void check_block(Tensor t, std::int64_t layer, std::int64_t row0, std::int64_t rows) const;
};

// The whole model in memory, llama2.c style: one vector per tensor, layers stacked.
// (L = layers, kv_dim = kv_heads * head_dim, hidden = hidden_dim.)
struct Weights {
  std::vector<float> token_embedding;  // (vocab, dim); the classifier too (tied)
  std::vector<float> rms_att;          // (L, dim)
  std::vector<float> wq;               // (L, dim, dim)
  std::vector<float> wk;               // (L, kv_dim, dim)
  std::vector<float> wv;               // (L, kv_dim, dim)
  std::vector<float> wo;               // (L, dim, dim)
  std::vector<float> rms_ffn;          // (L, dim)
  std::vector<float> w1;               // (L, hidden, dim)   gate
  std::vector<float> w2;               // (L, dim, hidden)   down
  std::vector<float> w3;               // (L, hidden, dim)   up
  std::vector<float> attn_sub_norm;    // (L, dim)     relu2 models; ones when the file has none
  std::vector<float> ffn_sub_norm;     // (L, hidden)  relu2 models; ones when the file has none
  std::vector<float> rms_final;        // (dim)

  // The vector holding t (all layers).
  std::vector<float>& tensor(Tensor t);
  const std::vector<float>& tensor(Tensor t) const;
};

// The shape without weights (cfg.weights = "none"): for timing-only runs, where nothing is
// allocated for weights and no virtual figure depends on their values (DESIGN.md section 3).
// Reading is a std::logic_error.
class ShapeOnlySource : public WeightSource {
 public:
  explicit ShapeOnlySource(const ModelConfig& cfg) : cfg_(cfg) {}
  const ModelConfig& config() const override { return cfg_; }
  void read_rows(Tensor t, std::int64_t layer, std::int64_t row0, std::int64_t rows, float* out) const override;
  bool has_values() const override { return false; }

 private:
  ModelConfig cfg_;
};

// Reads every tensor of the source into memory. Only for models that fit (stories260K, tests).
Weights materialize(const WeightSource& source);

// The source cfg.weights names: "none" -> ShapeOnlySource (timing only); "synthetic" ->
// SyntheticWeightSource(cfg, seed); a GGUF file or a
// Hugging Face directory -> open_checkpoint (checkpoint_loader.hpp); anything else is a llama2.c
// checkpoint path (CheckpointSource). The seed is used by synthetic weights only.
std::unique_ptr<WeightSource> open_weight_source(const ModelConfig& cfg, std::uint64_t seed);

}  // namespace wm::model
