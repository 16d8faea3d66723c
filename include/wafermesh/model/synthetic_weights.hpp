#pragma once
// Deterministic seeded weights of any model shape, generated on demand, row by row.
//
// Every row of every tensor has its own random stream, seeded from (seed, tensor, layer, row) by
// splitmix64, so any block of rows is produced without producing anything before it: a rank
// generates exactly the tiles its PEs hold, in any order, and gets the same values as a full
// materialisation (this is what makes a 2.4G-parameter BitNet 2B4T usable: nothing is ever held
// whole). Values (chosen so activations stay O(1) through any depth, with or without ternarising):
//   matrices (out, in)       normal(0, 1/sqrt(in))    keeps |W x| ~ |x|
//   token_embedding          normal(0, 1/sqrt(dim))   tied logits = E . rmsnorm(x) are then O(1)
//   norm and sub-norm weights 1 + normal(0, 0.1)      not all ones, so a dropped norm weight shows
// Every value is rounded to the nearest bf16, the precision these models' checkpoints are released
// in; fp32 GEMVs then keep such weights in bf16 on the host (kernels::gemv_bf16_panels), same
// results from half the bytes.
// "normal" is the Irwin-Hall approximation: the sum of the four 16-bit uniforms of one xorshift64*
// output, centred and scaled to unit variance (bounded by +-3.46; one stream step per value, so
// the 2.4G weights of BitNet 2B4T generate in seconds). Integer and double arithmetic only: same
// seed, same values, on every rank and machine.
#include <cstdint>

#include "wafermesh/model/model_config.hpp"
#include "wafermesh/model/weights.hpp"

namespace wm::model {

class SyntheticWeightSource final : public WeightSource {
 public:
  SyntheticWeightSource(const ModelConfig& cfg, std::uint64_t seed) : cfg_(cfg), seed_(seed) {}
  const ModelConfig& config() const override { return cfg_; }
  void read_rows(Tensor t, std::int64_t layer, std::int64_t row0, std::int64_t rows,
                 float* out) const override;

 private:
  ModelConfig cfg_;
  std::uint64_t seed_;
};

// The whole model: materialize(SyntheticWeightSource(cfg, seed)). Small models only.
Weights synthetic_weights(const ModelConfig& cfg, std::uint64_t seed);

}  // namespace wm::model
