#pragma once
// The state of a MeshTransformer and the pieces its files share (internal to src/model):
//   mesh_transformer.cpp  construction (placing the weights) and accessors
//   mesh_placement.cpp    which regions hold what (MeshTransformer::plan)
//   mesh_decode.cpp       one token through the layers (MeshGEMVs), the classifier
//   mesh_prefill.cpp      the whole prompt at once (MeshGEMMs), with prompt_tiles.hpp
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mesh_layout.hpp"
#include "position_clock.hpp"
#include "wafermesh/dist/allreduce.hpp"
#include "wafermesh/dist/gemv.hpp"
#include "wafermesh/dist/host_io.hpp"
#include "wafermesh/dist/kv_cache.hpp"
#include "wafermesh/kernels/aligned_buffer.hpp"
#include "wafermesh/model/mesh_transformer.hpp"
#include "wafermesh/noc/tile_buf.hpp"

namespace wm::model {

inline Axis other_axis(Axis a) { return a == Axis::X ? Axis::Y : Axis::X; }

// The FFN's gate applied to the up projection b: relu(a)^2 * b (BitNet) or silu(a) * b (Llama),
// in ReferenceTransformer's operation order.
inline float gated(float a, float b, bool relu2) {
  if (relu2) a = a > 0.0f ? a * a : 0.0f;
  else a *= 1.0f / (1.0f + std::exp(-a));
  return a * b;
}

// A projection's span in traces: its MeshGEMV (decode) or MeshGEMM (prefill).
inline const char* projection_span_name(Tensor t, bool gemm) {
  switch (t) {
    case Tensor::wq: return gemm ? "GEMM W_q" : "GEMV W_q";
    case Tensor::wk: return gemm ? "GEMM W_k" : "GEMV W_k";
    case Tensor::wv: return gemm ? "GEMM W_v" : "GEMV W_v";
    case Tensor::wo: return gemm ? "GEMM W_o" : "GEMV W_o";
    case Tensor::w1: return gemm ? "GEMM W_1 (gate)" : "GEMV W_1 (gate)";
    case Tensor::w2: return gemm ? "GEMM W_2 (down)" : "GEMV W_2 (down)";
    case Tensor::w3: return gemm ? "GEMM W_3 (up)" : "GEMV W_3 (up)";
    default: return gemm ? "GEMM" : "GEMV";
  }
}
inline const char* gemv_name(Tensor t) { return projection_span_name(t, false); }

// A projection's weights as a MeshGEMV holds them (ternary codes or fp32), and where they come
// from (the prefill reads them again for its MeshGEMMs).
struct Projection {
  Tensor tensor;
  WeightLayout layout = WeightLayout::plain;
  dist::GemvSpec spec;  // M x K as stored
  std::unique_ptr<dist::MeshGemvTernary> ternary;
  std::unique_ptr<dist::MeshGemvF32> fp32;
  float gamma = 1.0f;  // BitLinear's weight scale
};

struct Layer {
  int64_t index = 0;
  int32_t region = 0;  // index into MeshPlacement::layer_regions
  Projection wq, wk, wv, wo, w1, w2, w3;
  // Norm weights: rms_att, rms_ffn split along Y; the BitNet sub-norms in the query layout
  // (attn_sub) and split along X (ffn_sub).
  std::unique_ptr<TileBuf<float>> rms_att, rms_ffn, attn_sub, ffn_sub;
  std::unique_ptr<dist::KvCache> kv;
};

// The one-element allreduces of a region (norm sums, absmax scales), prepared once.
struct ScalarAllreduces {
  Region R;
  std::unique_ptr<dist::LineAllreduce<float>> sum_x, sum_y;
  std::unique_ptr<dist::LineAllreduce<dist::MaxFloat>> max_x, max_y;
  ScalarAllreduces(Fabric& f, const Region& r, const dist::AllreduceSpec& ar);
  dist::LineAllreduce<float>& sum(Axis a) { return a == Axis::X ? *sum_x : *sum_y; }
  dist::LineAllreduce<dist::MaxFloat>& max(Axis a) { return a == Axis::X ? *max_x : *max_y; }
};

// Moving a vector split along Y (block r on every PE of row r) from region A to the next region B
// of the snake: row r sends its block once, from the PE nearest B (A's east column to B's west
// column when B is east of A, mirrored when west, down column r when B is below), and the PE that
// receives it multicasts it along its row. No two transfers share a link or a pass-through PE.
struct VectorHandoff {
  TransferPlan move, bcast;
  VectorHandoff(Fabric& f, const Region& A, const Region& B, size_t tile_bytes, const std::string& what);
  // x (on A) -> into (on B). Collective.
  void run(Fabric& f, const TileBuf<float>& x, TileBuf<float>& into);
};

// Elementwise work on a vector replicated along `rep` (every PE of a line along `rep` holds the
// same tile): fn(x, y, tile) runs on the first local PE of each such line, whose tile stands for
// the line's (TileBuf::for_each_line_head: the other PEs' copies are made when a transfer or a
// writer needs them). They hold the values every PE would compute (same inputs, same code); the
// caller still charges every PE its own work. fn reads its inputs through const tiles.
template <class T, class Fn>
void per_replica(TileBuf<T>& out, Axis rep, Fn&& fn) {
  out.for_each_line_head(rep, std::forward<Fn>(fn));
}

// A projection's weight matrix read from the weight source as the mesh stores it, (M, K) in its
// layout: ternary codes with gamma (the file's own, else one absmean scale for the tensor) or
// floats. The scratch is kept between tensors (no fresh pages per tensor); the result stays valid
// until the next read.
class WeightReader {
 public:
  struct Matrix {
    const int8_t* codes = nullptr;  // ternary models
    const float* floats = nullptr;  // fp32 models
    float gamma = 1.0f;
  };
  WeightReader(const WeightSource& src, const MeshDims& d) : src_(src), d_(d) {}
  Matrix read(Tensor t, int64_t layer, WeightLayout layout, int64_t M, int64_t K);
  std::vector<float>& scratch() { return floats_; }  // for other reads between weight reads

 private:
  const WeightSource& src_;
  const MeshDims& d_;
  std::vector<float> floats_, floats_laid_out_;
  std::vector<int8_t> codes_, codes_laid_out_;
};

// BitLinear's input on a region: the absmax of the whole vector (a max allreduce along the axis
// it is split along) and its int8 codes, made once and fed to every projection that reads the
// vector (W_q, W_k, W_v share one; W_1, W_3 another). Empty for fp32 models.
struct ActivationCodes {
  std::unique_ptr<TileBuf<dist::MaxFloat>> absmax;
  std::unique_ptr<TileBuf<int8_t>> codes;
};

struct MeshTransformer::Impl {
  Fabric& f;
  const WeightSource& src;
  ModelConfig cfg;
  MeshPlacementSpec spec;
  MeshPlacement pl;
  MeshDims d;
  bool relu2;  // BitNet's FFN and sub-norms
  // The source has the shape only (weights = none): nothing is allocated for weights, every
  // projection is charged but not computed, norm weights are ones and embeddings zeros; the
  // activations still travel as tiles, so every virtual figure is a full run's.
  bool timing_only;
  std::vector<ScalarAllreduces> scalar_ops;  // per layer region
  // This rank's packed ternary weights, one block after another on huge pages (declared before the
  // layers, so it outlives them). Each projection's block is below 2 MiB, so each would otherwise
  // be a separate malloc block on 4 KiB pages, streamed once per token.
  std::unique_ptr<kernels::HugePageArena> weights_arena;
  WeightReader weights;
  std::vector<Layer> layers;
  std::unique_ptr<TileBuf<float>> rms_final;  // on the last layer region, split along Y
  std::vector<std::unique_ptr<dist::MeshGemvF32>> classifier;
  std::vector<VectorHandoff> handoffs;      // layer region i -> i + 1
  std::vector<VectorHandoff> cls_handoffs;  // into classifier region i from pl.classifier_source[i]
  std::vector<float> logits;
  dist::RowsReader<float> logits_reader;  // its buffers kept from token to token
  TokenCycles last;
  uint64_t prev_end = 0;  // virtual time the previous token's logits were ready
  WorkCounts work_at_start;  // the mesh's work when the current position began
  PositionClock clock;
  // Traces (set_tracing): SRAM samples at the stamps, bytes sent per region and position.
  bool tracing = false;
  std::vector<uint64_t> bytes_sent_so_far;  // per layer region, then per classifier region

  // Bytes the PEs of each layer region, then each classifier region, sent since the last call.
  // Collective.
  std::vector<uint64_t> region_bytes_sent();

  Impl(Fabric& fab, const WeightSource& s, const MeshPlacementSpec& sp);
  void place(const ProgressFn& progress);  // mesh_transformer.cpp
  void make_projection(Projection& p, const dist::GemvSpec& s, Tensor t, int64_t layer, WeightLayout layout);
  // A vector tensor (norm weights) of `layer`; ones in a timing-only run.
  std::vector<float> vector_weights(Tensor t, int64_t layer) const;
  // Row `token` of the embedding into out (dim floats); zeros in a timing-only run.
  void embedding_row(int token, float* out) const;

  // ---- decode (mesh_decode.cpp); every function is collective
  void rmsnorm(TileBuf<float>& out, const TileBuf<float>& v, const TileBuf<float>& w, int64_t n, Axis split,
               ScalarAllreduces& ops);
  ActivationCodes quantize(const TileBuf<float>& x, Axis split, ScalarAllreduces& ops, LayerCycles& lc,
                           PositionClock::Stamp& t);
  TileBuf<float> project(Projection& p, const TileBuf<float>& x, const ActivationCodes& xq, LayerCycles& lc,
                         PositionClock::Stamp& t);
  void add_into(TileBuf<float>& x, const TileBuf<float>& y);
  void layer_forward(Layer& L, TileBuf<float>& x, int pos, LayerCycles& lc);
  // Final norm of x (split along Y on the last layer region) and the logits of every classifier
  // region into `logits`; sets tc.classifier and prev_end.
  void classify(std::unique_ptr<TileBuf<float>>& x, TokenCycles& tc);
  void check_token(int tok) const;
  // A token (or a prompt) enters the first region from the host once the previous logits are out
  // (sampling happens off the wafer): the region's clocks start there. Returns that start.
  uint64_t begin_token();
  // The logits of x's token (classify), the position's figures, and the emulation's wall time.
  const float* end_token(std::unique_ptr<TileBuf<float>>& x, TokenCycles& tc, uint64_t start,
                         std::chrono::steady_clock::time_point w0);
};

}  // namespace wm::model
