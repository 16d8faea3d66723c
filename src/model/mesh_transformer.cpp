// The transformer on the mesh: construction (every layer's weights onto its region, the
// classifier, the hand-offs between regions) and accessors. The forward passes live in
// mesh_decode.cpp and mesh_prefill.cpp, the placement arithmetic in mesh_placement.cpp.
#include "wafermesh/model/mesh_transformer.hpp"

#include <algorithm>
#include <optional>

#include "mesh_transformer_impl.hpp"
#include "wafermesh/dist/rank_reduce.hpp"
#include "wafermesh/kernels/quantize.hpp"

namespace wm::model {

ScalarAllreduces::ScalarAllreduces(Fabric& f, const Region& r, const dist::AllreduceSpec& ar)
    : R(r), sum_x(std::make_unique<dist::LineAllreduce<float>>(f, r, Axis::X, 1, ar)),
      sum_y(std::make_unique<dist::LineAllreduce<float>>(f, r, Axis::Y, 1, ar)),
      max_x(std::make_unique<dist::LineAllreduce<dist::MaxFloat>>(f, r, Axis::X, 1, ar)),
      max_y(std::make_unique<dist::LineAllreduce<dist::MaxFloat>>(f, r, Axis::Y, 1, ar)) {}

VectorHandoff::VectorHandoff(Fabric& f, const Region& A, const Region& B, size_t tile_bytes, const std::string& what) {
  const int32_t P = A.w;
  const bool east = B.y0 == A.y0 && B.x0 == A.x0 + P, west = B.y0 == A.y0 && B.x0 + P == A.x0;
  std::vector<Transfer> mv, bc;
  for (int32_t r = 0; r < P; ++r) {
    const int32_t cs = east ? P - 1 : west ? 0 : r, cd = east ? 0 : west ? P - 1 : r;
    mv.push_back({{A.x0 + cs, A.y0 + r}, {B.x0 + cd, B.y0 + r}, uint32_t(r), 0});
    for (int32_t c = 0; c < P; ++c)
      if (c != cd) bc.push_back({{B.x0 + cd, B.y0 + r}, {B.x0 + c, B.y0 + r}, uint32_t(r), 0});
  }
  move = f.plan(std::move(mv), tile_bytes, what);
  bcast = f.plan(std::move(bc), tile_bytes, what + ": along the rows");
}

void VectorHandoff::run(Fabric& f, const TileBuf<float>& x, TileBuf<float>& into) {
  f.execute(move, x.view(), into.view());
  if (into.region().w > 1) f.execute(bcast, into.view(), into.view());
}

WeightReader::Matrix WeightReader::read(Tensor t, int64_t layer, WeightLayout layout, int64_t M, int64_t K) {
  const TensorShape sh = tensor_shape(src_.config(), t);
  Matrix m;
  if (!src_.has_values()) return m;  // timing only: no matrix (the GEMV and GEMM charge without it)
  floats_.resize(size_t(sh.size()));
  if (src_.config().ternary) {  // BitLinear: the file's own codes and scale, else one absmean scale for the tensor
    codes_.resize(size_t(sh.size()));
    if (!src_.read_ternary(t, layer, codes_.data(), &m.gamma)) {
      src_.read_rows(t, layer, 0, sh.rows, floats_.data());
      m.gamma = kernels::quantize_weights_absmean(floats_.data(), sh.rows, sh.cols, sh.cols, codes_.data(), sh.cols);
    }
    m.codes = lay_out_weight(d_, layout, codes_, sh.cols, M, K, codes_laid_out_).data();
  } else {
    src_.read_rows(t, layer, 0, sh.rows, floats_.data());
    m.floats = lay_out_weight(d_, layout, floats_, sh.cols, M, K, floats_laid_out_).data();
  }
  return m;
}

MeshTransformer::Impl::Impl(Fabric& fab, const WeightSource& s, const MeshPlacementSpec& sp)
    : f(fab), src(s), cfg(s.config()), spec(sp), pl(plan(fab.mesh(), fab.params(), s.config(), sp)), d(cfg, sp.P),
      relu2(cfg.ffn == "relu2"), timing_only(!s.has_values()), weights(s, d), clock(fab) {}

std::vector<float> MeshTransformer::Impl::vector_weights(Tensor t, int64_t layer) const {
  if (timing_only) return std::vector<float>(size_t(tensor_shape(cfg, t).size()), 1.0f);
  return src.read_tensor(t, layer);
}

void MeshTransformer::Impl::embedding_row(int token, float* out) const {
  if (timing_only) std::fill(out, out + cfg.dim, 0.0f);
  else src.read_rows(Tensor::token_embedding, 0, token, 1, out);
}

void MeshTransformer::Impl::make_projection(Projection& p, const dist::GemvSpec& s, Tensor t, int64_t layer,
                                            WeightLayout layout) {
  p.tensor = t;
  p.layout = layout;
  p.spec = s;
  const WeightReader::Matrix m = weights.read(t, layer, layout, s.M, s.K);
  p.gamma = m.gamma;
  if (cfg.ternary) p.ternary = std::make_unique<dist::MeshGemvTernary>(f, s, m.codes);
  else p.fp32 = std::make_unique<dist::MeshGemvF32>(f, s, m.floats);
}

void MeshTransformer::Impl::place(const ProgressFn& progress) {
  for (const Region& R : pl.layer_regions) scalar_ops.emplace_back(f, R, spec.allreduce);
  layers.resize(size_t(cfg.layers));
  if (cfg.ternary && !timing_only) {
    // Room for every local PE's packed block (the rank's fused matrices take about as much), with
    // a margin; only what is touched is committed, and a full arena falls back to the heap.
    uint64_t bytes = 0;
    for (int64_t l = 0; l < cfg.layers; ++l) {
      const Region& R = pl.layer_regions[size_t(pl.region_of_layer[size_t(l)])];
      const ProjectionSpecs ps(d, R, spec.allreduce);  // named: all() points into it
      for (const dist::GemvSpec* s : ps.all())
        bytes += dist::gemv_host_block_bytes(*s) * uint64_t(R.intersect(f.block()).size());
    }
    weights_arena = std::make_unique<kernels::HugePageArena>(bytes + bytes / 4 + (uint64_t(4) << 20));
  }
  for (int64_t l = 0; l < cfg.layers; ++l) {
    if (progress) progress("placing layer " + std::to_string(l + 1) + "/" + std::to_string(cfg.layers));
    Layer& L = layers[size_t(l)];
    L.index = l;
    L.region = pl.region_of_layer[size_t(l)];
    const Region& R = pl.layer_regions[size_t(L.region)];
    const ProjectionSpecs ps(d, R, spec.allreduce);
    {
      std::optional<kernels::ArenaScope> scope;
      if (weights_arena) scope.emplace(*weights_arena);
      make_projection(L.wq, ps.wq, Tensor::wq, l, WeightLayout::query_rows);
      make_projection(L.wk, ps.wk, Tensor::wk, l, WeightLayout::plain);
      make_projection(L.wv, ps.wv, Tensor::wv, l, WeightLayout::plain);
      make_projection(L.wo, ps.wo, Tensor::wo, l, WeightLayout::query_columns);
      make_projection(L.w1, ps.w1, Tensor::w1, l, WeightLayout::plain);
      make_projection(L.w2, ps.w2, Tensor::w2, l, WeightLayout::plain);
      make_projection(L.w3, ps.w3, Tensor::w3, l, WeightLayout::plain);
    }
    auto norm = [&](Tensor t, int64_t block, VectorLayout lay, const char* name) {
      return vector_tiles(f, d, R, vector_weights(t, l), block, lay, name);
    };
    L.rms_att = norm(Tensor::rms_att, d.dim_block, VectorLayout::split_y, "rms_att weights");
    L.rms_ffn = norm(Tensor::rms_ffn, d.dim_block, VectorLayout::split_y, "rms_ffn weights");
    if (relu2) {
      L.attn_sub = norm(Tensor::attn_sub_norm, d.query_block, VectorLayout::query, "attn_sub_norm");
      L.ffn_sub = norm(Tensor::ffn_sub_norm, d.hidden_block, VectorLayout::split_x, "ffn_sub_norm");
    }
    dist::KvSpec ks;
    ks.policy = spec.kv_policy;
    ks.P = spec.P;
    ks.origin = {R.x0, R.y0};
    ks.heads = cfg.heads;
    ks.kv_heads = cfg.kv_heads;
    ks.head_dim = d.head_dim;
    ks.allreduce = spec.allreduce;
    L.kv = std::make_unique<dist::KvCache>(f, ks);
  }
  const Region& last_region = pl.layer_regions.back();
  rms_final = vector_tiles(f, d, last_region, vector_weights(Tensor::rms_final, 0), d.dim_block,
                           VectorLayout::split_y, "rms_final");
  // Classifier regions: rows of the tied embedding, fp32.
  int64_t row0 = 0;
  for (size_t i = 0; i < pl.classifier_regions.size(); ++i) {
    if (progress)
      progress("placing classifier " + std::to_string(i + 1) + "/" + std::to_string(pl.classifier_regions.size()));
    const int64_t rows = pl.classifier_rows[i];
    std::vector<float>& e = weights.scratch();  // the layers' scratch: no fresh, zeroed pages per region
    if (!timing_only) {
      e.resize(static_cast<size_t>(rows * cfg.dim));
      src.read_rows(Tensor::token_embedding, 0, row0, rows, e.data());
    }
    classifier.push_back(std::make_unique<dist::MeshGemvF32>(
        f, gemv_spec(pl.classifier_regions[i], rows, cfg.dim, Axis::Y, spec.allreduce),
        timing_only ? nullptr : e.data()));
    row0 += rows;
  }
  // Hand-offs between consecutive regions of the snake; the classifier regions form chains.
  const size_t tb = size_t(d.dim_block) * f.params().wafer_fp_bytes();  // a vector block on the wafer
  for (size_t i = 0; i + 1 < pl.layer_regions.size(); ++i)
    handoffs.emplace_back(f, pl.layer_regions[i], pl.layer_regions[i + 1], tb,
                          "hand-off to layer region " + std::to_string(i + 1));
  for (size_t i = 0; i < pl.classifier_regions.size(); ++i) {
    const int32_t from = pl.classifier_source[i];
    cls_handoffs.emplace_back(f, from < 0 ? last_region : pl.classifier_regions[size_t(from)],
                              pl.classifier_regions[i], tb, "hand-off to classifier region " + std::to_string(i));
  }
  logits.resize(size_t(cfg.vocab));
  for (const Region& R : pl.layer_regions) clock.now(R);
  for (const Region& R : pl.classifier_regions) clock.now(R);
}

MeshTransformer::MeshTransformer(Fabric& f, const WeightSource& source, const MeshPlacementSpec& spec,
                                 const ProgressFn& progress)
    : impl_(std::make_unique<Impl>(f, source, spec)) {
  f.hold_peaks(true);
  impl_->place(progress);
}

MeshTransformer::~MeshTransformer() {
  if (impl_) impl_->f.hold_peaks(false);
}

const TokenCycles& MeshTransformer::last_token() const { return impl_->last; }
void MeshTransformer::set_tracing(bool on) {
  Impl& m = *impl_;
  m.tracing = on;
  m.clock.trace_sram(on ? m.pl.layer_regions : std::vector<Region>{});
  if (on) {
    m.bytes_sent_so_far.clear();
    (void)m.region_bytes_sent();  // from now on
  }
}

std::vector<uint64_t> MeshTransformer::Impl::region_bytes_sent() {
  std::vector<uint64_t> v;
  for (const Region& R : pl.layer_regions) v.push_back(f.summarize_local(R).total_bytes_sent);
  for (const Region& R : pl.classifier_regions) v.push_back(f.summarize_local(R).total_bytes_sent);
  dist::sum_over_ranks(f, v);
  std::vector<uint64_t> delta(v.size());
  for (size_t i = 0; i < v.size(); ++i) delta[i] = v[i] - (i < bytes_sent_so_far.size() ? bytes_sent_so_far[i] : 0);
  bytes_sent_so_far = std::move(v);
  return delta;
}
void MeshTransformer::read_kv(int64_t layer, std::vector<float>& keys, std::vector<float>& values) const {
  keys.clear();
  values.clear();
  if (impl_->timing_only) return;
  impl_->layers.at(size_t(layer)).kv->read_tokens(keys, values);
}

void MeshTransformer::load_kv(int64_t n, const KvFill& fill) {
  Impl& m = *impl_;
  std::vector<float> k, v;
  for (Layer& L : m.layers) {
    if (m.timing_only) {
      k.assign(size_t(n * m.d.kv_dim), 0.0f);
      v = k;
    } else {
      fill(L.index, k, v);
      if (int64_t(k.size()) != n * m.d.kv_dim || int64_t(v.size()) != n * m.d.kv_dim)
        throw std::logic_error("MeshTransformer::load_kv: layer " + std::to_string(L.index) + " has the wrong size");
    }
    L.kv->load(k.data(), v.data(), n);
  }
}

uint64_t MeshTransformer::end_cycles() const { return impl_->prev_end; }
int64_t MeshTransformer::kv_tokens() const { return impl_->layers.front().kv->tokens(); }
void MeshTransformer::start_after(uint64_t cycles) { impl_->prev_end = std::max(impl_->prev_end, cycles); }

const MeshPlacement& MeshTransformer::placement() const { return impl_->pl; }
const ModelConfig& MeshTransformer::config() const { return impl_->cfg; }
uint64_t MeshTransformer::peak_sram_bytes() const { return impl_->clock.peak_sram_bytes(); }
uint64_t MeshTransformer::peak_route_entries() const { return impl_->clock.peak_route_entries(); }
bool MeshTransformer::classifier_host_bf16() const {
  return std::all_of(impl_->classifier.begin(), impl_->classifier.end(), [](const auto& c) { return c->host_bf16(); });
}

}  // namespace wm::model
