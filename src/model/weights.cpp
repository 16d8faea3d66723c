#include "wafermesh/model/weights.hpp"

#include <stdexcept>
#include <string>

#include "wafermesh/model/checkpoint.hpp"
#include "wafermesh/model/checkpoint_loader.hpp"
#include "wafermesh/model/synthetic_weights.hpp"

namespace wm::model {

const char* tensor_name(Tensor t) {
  switch (t) {
    case Tensor::token_embedding: return "token_embedding";
    case Tensor::rms_att: return "rms_att";
    case Tensor::wq: return "wq";
    case Tensor::wk: return "wk";
    case Tensor::wv: return "wv";
    case Tensor::wo: return "wo";
    case Tensor::rms_ffn: return "rms_ffn";
    case Tensor::w1: return "w1";
    case Tensor::w2: return "w2";
    case Tensor::w3: return "w3";
    case Tensor::attn_sub_norm: return "attn_sub_norm";
    case Tensor::ffn_sub_norm: return "ffn_sub_norm";
    case Tensor::rms_final: return "rms_final";
  }
  return "?";
}

bool tensor_is_per_layer(Tensor t) { return t != Tensor::token_embedding && t != Tensor::rms_final; }

TensorShape tensor_shape(const ModelConfig& cfg, Tensor t) {
  const std::int64_t d = cfg.dim, h = cfg.hidden_dim, kv = cfg.kv_dim();
  switch (t) {
    case Tensor::token_embedding: return {cfg.vocab, d};
    case Tensor::rms_att: return {1, d};
    case Tensor::wq: return {d, d};
    case Tensor::wk: return {kv, d};
    case Tensor::wv: return {kv, d};
    case Tensor::wo: return {d, d};
    case Tensor::rms_ffn: return {1, d};
    case Tensor::w1: return {h, d};
    case Tensor::w2: return {d, h};
    case Tensor::w3: return {h, d};
    case Tensor::attn_sub_norm: return {1, d};
    case Tensor::ffn_sub_norm: return {1, h};
    case Tensor::rms_final: return {1, d};
  }
  return {};
}

bool tensor_is_used(const ModelConfig& cfg, Tensor t) {
  if (t == Tensor::attn_sub_norm || t == Tensor::ffn_sub_norm) return cfg.ffn == "relu2";
  return true;
}

void WeightSource::check_block(Tensor t, std::int64_t layer, std::int64_t row0,
                               std::int64_t rows) const {
  const TensorShape s = tensor_shape(config(), t);
  const std::int64_t layers = tensor_is_per_layer(t) ? config().layers : 1;
  if (layer < 0 || layer >= layers || row0 < 0 || rows < 0 || row0 + rows > s.rows)
    throw std::out_of_range(std::string("weights: block of ") + tensor_name(t) + " layer " +
                            std::to_string(layer) + " rows [" + std::to_string(row0) + ", " +
                            std::to_string(row0 + rows) + ") lies outside " +
                            std::to_string(layers) + " x (" + std::to_string(s.rows) + ", " +
                            std::to_string(s.cols) + ")");
}

std::vector<float> WeightSource::read_tensor(Tensor t, std::int64_t layer) const {
  const TensorShape s = tensor_shape(config(), t);
  std::vector<float> out(static_cast<std::size_t>(s.size()));
  read_rows(t, layer, 0, s.rows, out.data());
  return out;
}

bool WeightSource::read_ternary(Tensor, std::int64_t, std::int8_t*, float*) const { return false; }

std::vector<float>& Weights::tensor(Tensor t) {
  switch (t) {
    case Tensor::token_embedding: return token_embedding;
    case Tensor::rms_att: return rms_att;
    case Tensor::wq: return wq;
    case Tensor::wk: return wk;
    case Tensor::wv: return wv;
    case Tensor::wo: return wo;
    case Tensor::rms_ffn: return rms_ffn;
    case Tensor::w1: return w1;
    case Tensor::w2: return w2;
    case Tensor::w3: return w3;
    case Tensor::attn_sub_norm: return attn_sub_norm;
    case Tensor::ffn_sub_norm: return ffn_sub_norm;
    case Tensor::rms_final: return rms_final;
  }
  throw std::logic_error("Weights::tensor: unknown tensor");
}

const std::vector<float>& Weights::tensor(Tensor t) const {
  return const_cast<Weights*>(this)->tensor(t);
}

Weights materialize(const WeightSource& source) {
  const ModelConfig& cfg = source.config();
  Weights w;
  for (int i = 0; i < kTensorCount; ++i) {
    const auto t = static_cast<Tensor>(i);
    const TensorShape s = tensor_shape(cfg, t);
    const std::int64_t layers = tensor_is_per_layer(t) ? cfg.layers : 1;
    std::vector<float>& v = w.tensor(t);
    v.resize(static_cast<std::size_t>(layers * s.size()));
    for (std::int64_t l = 0; l < layers; ++l) source.read_rows(t, l, 0, s.rows, v.data() + l * s.size());
  }
  return w;
}

void ShapeOnlySource::read_rows(Tensor, std::int64_t, std::int64_t, std::int64_t, float*) const {
  throw std::logic_error("model " + cfg_.name + ": no weights to read (weights = none, a timing-only run)");
}

std::unique_ptr<WeightSource> open_weight_source(const ModelConfig& cfg, std::uint64_t seed) {
  if (cfg.weights == "none") return std::make_unique<ShapeOnlySource>(cfg);
  if (cfg.weights == "synthetic") return std::make_unique<SyntheticWeightSource>(cfg, seed);
  if (checkpoint_has_shape(cfg.weights)) return open_checkpoint(cfg);
  return std::make_unique<CheckpointSource>(cfg.weights, cfg);
}

}  // namespace wm::model
