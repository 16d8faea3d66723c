// `wafermesh generate`: a model placed on the emulated wafer produces text (the product's main job):
// the prompt prefilled as MeshGEMMs, then token by token as MeshGEMVs. Streams the text on rank 0, then the wafer's figures (virtual time to first
// token, per-token decode time, modelled tokens/s, SRAM and routes per PE, per-layer breakdown)
// and the emulation's wall time; writes the same to an HDF5 file with per-PE maps.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <memory>
#include <ostream>
#include <sstream>
#include <tuple>

#include <omp.h>
#include <unistd.h>

#include "wafermesh/cli/bench_common.hpp"
#include "wafermesh/cli/energy_report.hpp"
#include "wafermesh/cli/machine_options.hpp"
#include "wafermesh/cli/trace_file.hpp"
#include "wafermesh/kernels/activations.hpp"
#include "wafermesh/kernels/fp32_tile.hpp"
#include "wafermesh/kernels/pack.hpp"
#include "wafermesh/kernels/ternary_lut.hpp"
#include "wafermesh/model/checkpoint_loader.hpp"
#include "wafermesh/model/generate.hpp"
#include "wafermesh/model/mesh_transformer.hpp"
#include "wafermesh/model/model_config.hpp"
#include "wafermesh/model/phase_switch.hpp"
#include "wafermesh/model/placement_tuning.hpp"
#include "wafermesh/model/weights.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::cli {

namespace {

struct GenerateOptions {
  std::string model = "configs/models/bitnet_2b4t.ini";
  std::string weights;   // empty: the model file's `weights`
  std::string quantize = "none";
  std::string prompt;
  int64_t prompt_tokens = 0;
  int64_t steps = 6;
  double temperature = 1.0, top_p = 0.9;
  int64_t seed = 42;
  int64_t region = 0;
  int64_t prefill_region = 0;
  std::string kv_policy = "shift";
  std::string prefill = "gemm";
  std::string allreduce = "ktree";
  int64_t levels = 2, groups = 0;
  std::string output = "results/generate.h5";
  bool maps = true;
  bool compare_bare = false;
  std::vector<ParamSpec> specs() {
    return {
        param_text("model", &model,
                   "model config (configs/models/*.ini): shape, weights, tokenizer; may be omitted with a GGUF "
                   "file or Hugging Face directory as --weights (their metadata gives the shape)"),
        param_text("weights", &weights,
                   "weights: a GGUF file, a Hugging Face directory (config.json + model.safetensors), a llama2.c "
                   "checkpoint path, 'synthetic' (seeded, any shape), or 'none' (timing only: no weights are "
                   "allocated, compute is charged but not performed, every virtual figure is a full run's; no "
                   "text); empty = the model file's `weights`"),
        param_text("quantize", &quantize,
                   "none: the weights as they are (ternary if the model says ternary = true); ternary: "
                   "absmean-ternarise every projection of a float checkpoint (BitLinear)",
                   {"none", "ternary"}),
        param_text("prompt", &prompt, "prompt text (needs the model's tokenizer; empty = start from BOS)"),
        param_int("prompt_tokens", &prompt_tokens, "tokens",
                  "a prompt of this many tokens without text (BOS, then ids 3, 4, 5, ...), instead of --prompt: for "
                  "timing-only runs and models without a tokenizer (0 = off)",
                  0, 1 << 24),
        param_int("steps", &steps, "tokens", "positions to run, prompt included (llama2.c's -n)", 1, 1 << 24),
        param_real("temperature", &temperature, "", "sampling temperature (0 = greedy arg-max)", 0.0, 100.0),
        param_real("top-p", &top_p, "", "nucleus sampling mass (0 or 1 = off)", 0.0, 1.0),
        param_int("seed", &seed, "", "seed of the sampler and of synthetic weights", 1, int64_t(1) << 62),
        param_int("region", &region, "PEs",
                  "side of the square region a group of layers occupies, for both phases (0 = tuned per phase: "
                  "every candidate side probed by a short timing-only run; the least modelled decode time per "
                  "token wins the decode side, the least time to first token the prefill side)",
                  0, 1 << 20),
        param_int("prefill_region", &prefill_region, "PEs",
                  "side of the prefill placement's regions (MeshGEMM prefill), the decode side then --region or "
                  "tuned; when the two placements differ, the KV cache and the weights are re-placed over the "
                  "NoC after the prompt, charged (0 = --region, or tuned with it)",
                  0, 1 << 20),
        param_text("kv-policy", &kv_policy, "KV cache policy", {"shift", "concat"}),
        param_text("prefill", &prefill,
                   "gemm: the prompt's projections as MeshGEMMs, all tokens at once (needs free SRAM for the "
                   "GEMM's tiles); decode: the prompt token by token through the decode path",
                   {"gemm", "decode"}),
        param_text("allreduce", &allreduce, "allreduce of every projection, norm and softmax",
                   {"ktree", "pipeline", "ring"}),
        param_int("levels", &levels, "levels", "ktree: levels K", 1, 8),
        param_int("groups", &groups, "groups", "ktree, K = 2: groups of level 1 (0 = round(sqrt(P)))", 0, 1 << 20),
        param_text("output", &output, "HDF5 results file (written complete or not at all; empty = none)"),
        param_flag("maps", &maps, "write per-PE maps of the whole mesh into the results file"),
        param_flag("compare_bare", &compare_bare,
                   "after generating, time the bare GEMVs of every projection of every layer (one process, "
                   "all cores, each layer its own packed matrices) and print emulation / bare"),
    };
  }
};

// Wall seconds per token of the model's projections as bare GEMVs on this machine: ternary LUT
// GEMVs (table build included) for every projection of every layer, each layer with its own
// matrices (so the weights come from DRAM as in the emulation), and the fp32 classifier (row panels,
// as the PEs hold it). Run on rank 0 with every core of the job; the median of five tokens after
// three warm-up tokens.
std::pair<double, double> bare_gemv_seconds(const Context& ctx, const model::ModelConfig& cfg, bool cls_bf16) {
  const int threads = std::max(1, ctx.size * omp_get_max_threads());
  const int64_t D = cfg.dim, Hd = cfg.hidden_dim, KV = cfg.kv_dim();
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{D, D}, {KV, D}, {KV, D}, {D, D}, {Hd, D}, {D, Hd}, {Hd, D}};
  std::vector<kernels::TernaryMatrixLut> mats;
  std::vector<float> emb;
  std::vector<uint16_t> emb16;  // the classifier as the emulation holds it when its weights are exact in bf16
  if (ctx.rank == 0) {
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (int64_t l = 0; l < cfg.layers; ++l)
      for (auto [M, K] : shapes) {
        std::vector<int8_t> w(static_cast<size_t>(M * K));
        for (auto& c : w) {
          s ^= s << 13, s ^= s >> 7, s ^= s << 17;
          c = int8_t(int(s % 3) - 1);
        }
        mats.push_back(kernels::TernaryMatrixLut::from_int8(w.data(), M, K, K));
      }
    // (any values: the panel layout's bytes)
    if (cls_bf16) emb16.assign(static_cast<size_t>(cfg.vocab * D), uint16_t(0x3C24));  // 0.01
    else emb.assign(static_cast<size_t>(cfg.vocab * D), 0.01f);
  }
  std::vector<int8_t> q(static_cast<size_t>(std::max(D, Hd)), 3);
  std::vector<int32_t> y(static_cast<size_t>(std::max(D, Hd)));
  std::vector<float> x(static_cast<size_t>(D), 0.5f), logits(static_cast<size_t>(cfg.vocab));
  kernels::LutTables t;
  std::vector<double> tern, cls;
  // Three untimed passes first: the first passes over freshly written weights are several times
  // slower than the steady state (results/PERFORMANCE.md), and the emulation's figure is a
  // steady-state one (its first position is left out).
  constexpr int kWarmup = 3, kTimed = 5;
  for (int rep = 0; rep < kWarmup + kTimed; ++rep) {
    if (rep == kWarmup) {
      tern.clear();
      cls.clear();
    }
    tern.push_back(time_on_rank0(ctx, threads, [&] {
      for (const auto& m : mats) {
        const auto a = kernels::ActivationsQ8::from_int8(q.data(), 1, m.cols(), m.cols());
        kernels::lut_gemv_i32(m, a, t, y.data());
      }
    }));
    cls.push_back(time_on_rank0(ctx, threads, [&] {
      // Row panels, as the PEs hold the classifier: the fastest fp32 GEMV here.
      if (cls_bf16) kernels::gemv_bf16_panels_mt(cfg.vocab, D, emb16.data(), x.data(), logits.data(), false);
      else kernels::gemv_f32_panels_mt(cfg.vocab, D, emb.data(), x.data(), logits.data(), false);
    }));
  }
  std::sort(tern.begin(), tern.end());
  std::sort(cls.begin(), cls.end());
  return {tern[kTimed / 2], cls[kTimed / 2]};
}

// The tuner's candidates, one line each: modelled decode and prompt time, regions, or why not.
void print_candidates(std::ostream& out, const model::PlacementChoice& c, const MachineParams& mp) {
  out << std::setw(7) << "side" << std::setw(9) << "layers/" << std::setw(9) << "regions" << std::setw(14)
      << "decode cyc" << std::setw(11) << "tokens/s" << std::setw(14) << "prompt cyc" << "\n"
      << std::setw(16) << "region" << std::setw(9) << "+ cls" << "\n";
  for (const model::PlacementCandidate& k : c.candidates) {
    out << std::setw(7) << k.P;
    if (!k.ok()) {
      std::string why = k.status;
      if (why.size() > 110) why = why.substr(0, 107) + "...";
      out << "  " << why << "\n";
      continue;
    }
    const double us = mp.cycles_to_us(k.decode_cycles);
    out << std::setw(9) << k.layers_per_region << std::setw(9)
        << (std::to_string(k.layer_regions) + "+" + std::to_string(k.classifier_regions)) << std::setw(14)
        << k.decode_cycles << std::setw(11) << fixed_point(us > 0 ? 1e6 / us : 0.0, 0) << std::setw(14)
        << (k.prefill_ok() ? std::to_string(k.prefill_cycles) : std::string("-"))
        << (k.P == c.prefill_P && c.phases_differ() ? "  <- prefill" : "") << (k.P == c.P ? "  <- chosen" : "")
        << "\n";
  }
}

}  // namespace

int cmd_generate(const Context& ctx, const std::vector<std::string>& args) {
  MachineParams mp;
  GenerateOptions o;
  TraceOptions trace_opts;
  OptionSet opts;
  std::vector<ParamSpec> specs = o.specs();
  for (const ParamSpec& s : trace_opts.specs()) specs.push_back(s);
  const bool run = parse_command(ctx, args, opts, mp, specs,
                     "usage: wafermesh generate [--config FILE] [--model FILE] [--prompt TEXT] [options]\n\n"
                     "Runs a transformer placed on the emulated wafer: decode runs every projection as a\n"
                     "MeshGEMV with attention over a KV cache on the mesh; a prompt is prefilled with every\n"
                     "projection as a MeshGEMM. Prints the text as it is produced, then the wafer's figures\n"
                     "(virtual time at pe.clock_ghz) and the emulation's.");
  if (opts.help_requested()) return 0;
  trace_opts.check(ctx, mp);
  std::ostream& out = *ctx.out;
  // The shape: from a self-describing checkpoint (GGUF, Hugging Face directory), checked against
  // --model when that is given too; otherwise from the model config.
  model::ModelConfig cfg;
  const bool model_given = opts.source("model") != "default";
  if (!o.weights.empty() && model::checkpoint_has_shape(o.weights)) {
    cfg = model::read_checkpoint_config(o.weights);
    if (model_given) {
      const model::ModelConfig given = model::load_model_config(o.model);
      model::check_config_matches(given, o.model, cfg);
      if (cfg.tokenizer.empty()) cfg.tokenizer = given.tokenizer;  // e.g. a llama2.c vocabulary for a safetensors model
    }
  } else {
    cfg = model::load_model_config(o.model);
    if (!o.weights.empty()) cfg.weights = o.weights;
    if (model::checkpoint_has_shape(cfg.weights)) {
      const model::ModelConfig file = model::read_checkpoint_config(cfg.weights);
      model::check_config_matches(cfg, o.model, file);
      if (cfg.tokenizer.empty()) cfg.tokenizer = file.tokenizer;
    }
  }
  if (o.quantize == "ternary") cfg.ternary = true;
  if (o.steps > cfg.seq_len)
    throw UsageError("option --steps = " + std::to_string(o.steps) + " exceeds the model's context seq_len = " +
                     std::to_string(cfg.seq_len));
  // Files and the prompt first (also when `sweep` only checks a study), so that a bad path, a
  // truncated checkpoint or a prompt too long for --steps is one line before any work.
  const std::unique_ptr<model::WeightSource> source = model::open_weight_source(cfg, uint64_t(o.seed));
  const std::unique_ptr<model::TextTokenizer> tok = model::open_tokenizer(cfg);
  const bool timing_only = !source->has_values();
  if (o.prompt_tokens > 0 && !o.prompt.empty())
    throw UsageError("options --prompt and --prompt_tokens = " + std::to_string(o.prompt_tokens) +
                     ": give one of them");
  if (!tok && !o.prompt.empty())
    throw UsageError("option --prompt needs a tokenizer, and model " + cfg.name + " has none (tokenizer is empty)");
  std::vector<int> prompt_ids;
  if (o.prompt_tokens > 0)
    prompt_ids = model::synthetic_prompt(o.prompt_tokens, tok ? tok->bos_id() : model::Tokenizer::kBos, cfg.vocab,
                                         o.steps, cfg.seq_len);
  else
    (void)model::encode_prompt(tok.get(), o.prompt, o.steps, cfg.seq_len);
  if (!run) return 0;

  model::MeshPlacementSpec spec;
  spec.kv_policy = dist::kv_policy_from_name(o.kv_policy);
  spec.allreduce.algo = dist::allreduce_algo_from_name(o.allreduce);
  spec.allreduce.levels = int(o.levels);
  spec.allreduce.groups = int(o.groups);
  spec.context = o.steps;
  const MeshShape mesh{int32_t(mp.width_pes), int32_t(mp.height_pes)};
  // With the rank grid left automatic, split the ranks across the bands of regions, so that every
  // layer in the middle band keeps two ranks busy (the virtual figures do not depend on the grid).
  model::MeshTransformer::use_preferred_rank_grid(mp, ctx.size);
  const int64_t prompt_n = o.prompt_tokens > 0
                               ? o.prompt_tokens
                               : int64_t(model::encode_prompt(tok.get(), o.prompt, o.steps, cfg.seq_len).size());
  spec.prefill_tokens = o.prefill == "gemm" ? prompt_n : 0;  // its working set is kept free
  const bool gemm_prefill = o.prefill == "gemm" && prompt_n > 1;
  if (o.prefill_region > 0 && !gemm_prefill)
    throw UsageError("option --prefill_region = " + std::to_string(o.prefill_region) +
                     " needs a MeshGEMM prefill (--prefill gemm and a prompt of at least 2 tokens)");
  model::PlacementChoice tuned;
  double tune_s = 0;
  // The decode placement (dspec) and the prefill placement (pspec); `switching`: they differ, and
  // the prompt runs on pspec, the decode on dspec, with a re-placement between (phase_switch.hpp).
  model::MeshPlacementSpec dspec = spec, pspec = spec;
  dspec.prefill_tokens = 0;
  bool switching = false;
  if (o.region > 0 && o.prefill_region == 0) {
    spec.P = int32_t(o.region);
    (void)model::MeshTransformer::plan(mesh, mp, cfg, spec);  // the one-line error, before placing
  } else {
    if (o.region > 0) {
      tuned.P = int32_t(o.region);
    } else {
      // Tuned: every candidate side probed by a short timing-only run (placement_tuning.hpp).
      const std::vector<int32_t> sides = model::candidate_sides(mesh, mp, cfg, dspec);
      const auto t0 = std::chrono::steady_clock::now();
      const bool tty = ctx.rank == 0 && !ctx.sink && isatty(STDERR_FILENO);
      tuned = model::tune_placement(ctx.comm, mp, cfg, spec, prompt_n, o.prefill == "gemm", sides,
                                    [&](const std::string& line) {
                                      if (tty) std::cerr << "\r[placement] " << line << "\033[K" << std::flush;
                                    });
      if (tty) std::cerr << "\r\033[K" << std::flush;
      tune_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    if (o.prefill_region > 0) tuned.prefill_P = int32_t(o.prefill_region);
    if (gemm_prefill && tuned.prefill_P == 0)
      throw LimitError("model " + cfg.name + ": no region side tried holds the MeshGEMM prefill of " +
                       std::to_string(prompt_n) + " tokens beside a layer's weights (placement candidates: "
                       "prefill infeasible at every side); use --prefill decode");
    dspec.P = tuned.P;
    pspec.P = gemm_prefill ? tuned.prefill_P : tuned.P;
    // The prefill's working set as the tuner measured it at that side (forced sides: the estimate).
    if (const model::PlacementCandidate* k = tuned.find(pspec.P); k && gemm_prefill)
      pspec.prefill_reserve_bytes = k->prefill_reserve_bytes;
    const model::MeshPlacement dpl = model::MeshTransformer::plan(mesh, mp, cfg, dspec);
    const model::MeshPlacement ppl = model::MeshTransformer::plan(mesh, mp, cfg, pspec);
    switching = gemm_prefill && (pspec.P != dspec.P || ppl.layers_per_region != dpl.layers_per_region);
    if (!switching) spec = pspec;  // one placement for both phases, with the prefill's room
    spec.P = tuned.P;
  }

  const auto w0 = std::chrono::steady_clock::now();
  Fabric f(ctx.comm, mp);
  // A progress line rewritten in place while the model is placed, on a terminal only: in a log
  // file it would be a heap of carriage returns, and stdout's "placed in N s" line says it all.
  const bool show_progress = ctx.rank == 0 && !ctx.sink && isatty(STDERR_FILENO);
  auto progress = [&](const std::string& line) {
    if (show_progress) std::cerr << "\r[generate] " << line << "   " << std::flush;
  };
  // The prefill's progress: on a terminal the same line; in a log a line at most every 30 s (a
  // long prompt on a large model takes minutes).
  auto last_line = std::chrono::steady_clock::now();
  auto prompt_progress = [&](const std::string& line) {
    if (show_progress) return progress(line);
    if (ctx.rank != 0 || ctx.sink) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_line < std::chrono::seconds(30)) return;
    last_line = now;
    std::cerr << "[generate] " << line << std::endl;
  };
  // Without a switch one placement serves both phases; with one, the prefill placement is placed
  // now and the decode placement after the prompt (model::switch_placement).
  std::unique_ptr<model::MeshTransformer> mt_pre, mt_dec;
  if (switching) mt_pre = std::make_unique<model::MeshTransformer>(f, *source, pspec, progress);
  else mt_dec = std::make_unique<model::MeshTransformer>(f, *source, spec, progress);
  TraceFile trace(trace_opts, mp);
  std::unique_ptr<PeWindowTrace> pe_trace = trace.record_pes(f);
  if (trace.on()) (switching ? mt_pre : mt_dec)->set_tracing(true);
  if (show_progress) std::cerr << "\r\033[K" << std::flush;
  const double place_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
  // The decode placement (the figures per layer refer to it), planned ahead when it is placed later.
  const model::MeshPlacement pl = switching ? model::MeshTransformer::plan(mesh, mp, cfg, dspec) : mt_dec->placement();
  const model::MeshPlacement ppl_shown = switching ? mt_pre->placement() : pl;
  out << "generate: " << cfg.name << (cfg.ternary ? " (ternary BitLinear)" : " (fp32)") << ", on the wafer "
      << (cfg.ternary ? mp.wafer_ternary_format + " weights and " : std::string()) << mp.wafer_dtype << ", " << cfg.layers
      << " layers on " << pl.layer_regions.size() << " region(s) of " << spec.P << " x " << spec.P << " PEs ("
      << pl.layers_per_region << " per region) + " << pl.classifier_regions.size() << " classifier region(s)"
      << (switching ? " for decode; prefill on " + std::to_string(ppl_shown.layer_regions.size()) + " region(s) of " +
                          std::to_string(pspec.P) + " x " + std::to_string(pspec.P) + " PEs (" +
                          std::to_string(ppl_shown.layers_per_region) + " per region), re-placed after the prompt"
                    : std::string())
      << ", mesh " << mp.width_pes << " x " << mp.height_pes << ", " << ctx.size
      << " rank(s); KV " << o.kv_policy << ", allreduce " << o.allreduce << "; placed in " << fixed_point(place_s, 1)
      << " s" << (tuned.candidates.empty() ? "" : "; side tuned (placement candidates below)") << "\n"
      << (timing_only ? "timing only (weights none): no weights held, compute charged but not performed; the "
                        "tokens after the prompt are id 0 and no text is printed\n"
                      : "")
      << "\n"
      << std::flush;

  // Per position: cycles, wall, per-layer figures.
  struct Pos {
    int token;       // the (last) token fed
    int64_t first;   // first position covered
    int64_t covers;  // positions covered (a prefill covers the prompt)
    uint64_t cycles;
    double wall;
    model::TokenCycles tc;
  };
  std::vector<Pos> positions;
  model::ForwardFn forward = [&](int token, int pos) -> const float* {
    model::MeshTransformer& m = *mt_dec;
    const float* l = m.forward(token, pos);
    positions.push_back({token, pos, 1, m.last_token().total, m.last_token().wall_s, m.last_token()});
    return l;
  };
  model::PhaseSwitchReport sw;
  uint64_t pre_sram = 0, pre_routes = 0;
  std::vector<float> prompt_logits;  // the prefill placement's, kept across the switch
  model::PrefillFn prefill = [&](const std::vector<int>& tokens) -> const float* {
    model::MeshTransformer& m = switching ? *mt_pre : *mt_dec;
    const float* l = m.prefill(tokens, prompt_progress);
    if (show_progress) std::cerr << "\r\033[K" << std::flush;
    positions.push_back({tokens.back(), 0, int64_t(tokens.size()), m.last_token().total, m.last_token().wall_s,
                         m.last_token()});
    if (!switching) return l;
    prompt_logits.assign(l, l + cfg.vocab);
    pre_sram = mt_pre->peak_sram_bytes(), pre_routes = mt_pre->peak_route_entries();
    mt_dec = model::switch_placement(f, *source, std::move(mt_pre), dspec, sw, progress);
    if (show_progress) std::cerr << "\r\033[K" << std::flush;
    if (trace.on()) mt_dec->set_tracing(true);
    return prompt_logits.data();
  };
  // Timing only: the logits are zeros, so greedy sampling picks id 0 every time (the figures do not
  // depend on which token is fed).
  model::Sampler sampler(cfg.vocab, timing_only ? 0.0f : float(o.temperature), float(o.top_p), uint64_t(o.seed));
  model::EmitFn emit = [&](std::string_view bytes) {
    if (ctx.rank == 0 && !ctx.sink && !timing_only) {
      std::cout.write(bytes.data(), std::streamsize(bytes.size()));
      std::cout.flush();
    }
  };
  const model::GenerateStats gs =
      model::generate(forward, tok.get(), sampler, o.prompt, o.steps, cfg.seq_len, emit,
                      o.prefill == "gemm" ? &prefill : nullptr, o.prompt_tokens > 0 ? &prompt_ids : nullptr);

  // Figures: the calls up to the one at position prompt_tokens - 1 (which yields the first sampled
  // token) are the time to first token; the rest is decode.
  const int64_t n = int64_t(positions.size());
  int64_t first = 0, covered = 0;
  while (first < n && covered < gs.prompt_tokens) covered += positions[size_t(first++)].covers;
  uint64_t ttft = 0;
  double prefill_wall = 0;
  for (int64_t i = 0; i < first; ++i) ttft += positions[size_t(i)].cycles, prefill_wall += positions[size_t(i)].wall;
  const int64_t decode_n = n - first;
  uint64_t decode_cycles = 0;
  double decode_wall = 0;
  std::vector<model::LayerCycles> layer_sum(size_t(cfg.layers));
  uint64_t handoff = 0, cls = 0;
  for (int64_t i = first; i < n; ++i) {
    const Pos& p = positions[size_t(i)];
    decode_cycles += p.cycles;
    decode_wall += p.wall;
    for (int64_t l = 0; l < cfg.layers; ++l) {
      layer_sum[size_t(l)].compute += p.tc.layers[size_t(l)].compute;
      layer_sum[size_t(l)].allreduce += p.tc.layers[size_t(l)].allreduce;
      layer_sum[size_t(l)].kv += p.tc.layers[size_t(l)].kv;
    }
    handoff += p.tc.handoff;
    cls += p.tc.classifier;
  }
  // With no decoded token, the breakdown is that of the last prefill position.
  const int64_t bn = decode_n > 0 ? decode_n : 1;
  if (decode_n == 0 && n > 0) {
    const Pos& p = positions.back();
    for (int64_t l = 0; l < cfg.layers; ++l) layer_sum[size_t(l)] = p.tc.layers[size_t(l)];
    handoff = p.tc.handoff;
    cls = p.tc.classifier;
  }
  const double per_tok_cycles = decode_n ? double(decode_cycles) / double(decode_n) : 0.0;
  const double per_tok_us = per_tok_cycles / (mp.clock_ghz * 1e3);
  const double tok_s = per_tok_us > 0 ? 1e6 / per_tok_us : 0.0;
  const double wall_per_tok = decode_n ? decode_wall / double(decode_n) : 0.0;
  model::MeshTransformer& mt = *mt_dec;
  // The switch's energy: its work, and the wafer's static power over its cycles (in no position).
  const EnergySplit switch_energy =
      EnergyModel::from(mp).of(sw.work, uint64_t(mp.width_pes * mp.height_pes), switching ? sw.cycles() : 0);
  const uint64_t sram = std::max(pre_sram, mt.peak_sram_bytes()), routes = std::max(pre_routes, mt.peak_route_entries());

  out << "\nprompt tokens " << gs.prompt_tokens << " (BOS included), generated " << gs.sampled_tokens
      << (gs.stopped_at_bos ? " (stopped at BOS)" : "") << "\n"
      << "wafer (virtual, " << mp.clock_ghz << " GHz):\n"
      << "  time to first token   " << fixed_point(mp.cycles_to_us(ttft), 2) << " us (" << ttft << " cycles, " << covered
      << " position(s)" << (first == 1 && covered > 1 ? ", prefill as MeshGEMM" : "") << ")\n";
  if (switching)
    out << "  prefill -> decode     " << fixed_point(mp.cycles_to_us(sw.cycles()), 2) << " us (" << sw.cycles()
        << " cycles) re-placing side " << pspec.P << " onto side " << dspec.P << ": weights " << sw.weight_bytes
        << " bytes, KV cache " << sw.kv_bytes << " bytes over the NoC in " << sw.rounds
        << " fabric steps, " << fixed_point(switch_energy.total_j() * 1e3, 3)
        << " mJ; after the prompt's token and before the first decoded one\n";
  if (decode_n)
    out << "  decode                " << fixed_point(per_tok_us, 2) << " us per token (" << fixed_point(per_tok_cycles, 0)
        << " cycles) -> " << fixed_point(tok_s, 0) << " tokens/s per request\n";
  else
    out << "  decode                no token decoded after the prompt (raise --steps)\n";
  out << "  peak SRAM per PE      " << sram << " of " << mp.sram_bytes << " bytes\n"
      << "  route entries per PE  " << routes << " of " << mp.route_entries << "\n"
      << "emulation: " << fixed_point(prefill_wall + decode_wall, 2) << " s wall for " << n << " positions";
  if (decode_n) out << ", " << fixed_point(wall_per_tok, 4) << " s per decoded token";
  out << " (" << ctx.size << " rank(s)); placement " << fixed_point(place_s, 1) << " s";
  if (switching) out << ", switch " << fixed_point(sw.wall_s, 1) << " s";
  out << "\n\n";
  out << (decode_n ? "per layer, mean cycles per decoded token:\n" : "per layer, cycles of the last position:\n")
      << std::setw(7) << "layer" << std::setw(8) << "region" << std::setw(12) << "compute" << std::setw(12)
      << "allreduce" << std::setw(12) << "kv" << std::setw(12) << "total" << "\n";
  auto row = [&](const std::string& name, const std::string& reg, double c, double a, double k) {
    out << std::setw(7) << name << std::setw(8) << reg << std::setw(12) << fixed_point(c, 0) << std::setw(12) << fixed_point(a, 0)
        << std::setw(12) << fixed_point(k, 0) << std::setw(12) << fixed_point(c + a + k, 0) << "\n";
  };
  const int64_t shown = cfg.layers <= 8 ? cfg.layers : 3;
  double sc = 0, sa = 0, sk = 0;
  for (int64_t l = 0; l < cfg.layers; ++l) {
    const model::LayerCycles& L = layer_sum[size_t(l)];
    sc += double(L.compute) / double(bn), sa += double(L.allreduce) / double(bn), sk += double(L.kv) / double(bn);
    if (l < shown || l == cfg.layers - 1)
      row(std::to_string(l), std::to_string(pl.region_of_layer[size_t(l)]), double(L.compute) / double(bn),
          double(L.allreduce) / double(bn), double(L.kv) / double(bn));
    else if (l == shown)
      out << std::setw(7) << "..." << "\n";
  }
  row("all", "", sc, sa, sk);
  out << "  hand-offs between regions " << fixed_point(double(handoff) / double(bn), 0) << " cycles, final norm + classifier "
      << fixed_point(double(cls) / double(bn), 0) << " cycles\n"
      << std::flush;
  std::vector<const model::TokenCycles*> position_figures;
  for (const Pos& p : positions) position_figures.push_back(&p.tc);
  const RunEnergy energy = run_energy(mp, position_figures, first, cfg.layers);
  out << "\n";
  print_energy(out, mp, energy);
  if (!tuned.candidates.empty()) {
    out << "\nplacement candidates (each probed timing-only on two layers, modelled for the whole model; decode at "
           "the second token after a "
        << prompt_n << "-token prompt):\n";
    print_candidates(out, tuned, mp);
    out << "placement: side " << tuned.P << " chosen (least modelled decode time per token) for decode; prefill side "
        << (gemm_prefill ? std::to_string(pspec.P) + " (least modelled prompt time" +
                               (o.prefill_region > 0 ? ", forced by --prefill_region" : "") + ")"
                         : std::to_string(pspec.P) + " (the prompt through the decode path)")
        << (switching ? ", re-placed between the phases" : ", one placement for both phases") << "; probes took "
        << fixed_point(tune_s, 1) << " s wall\n"
        << std::flush;
  }

  double bare_tern = 0, bare_cls = 0;
  if (o.compare_bare) {
    std::tie(bare_tern, bare_cls) = bare_gemv_seconds(ctx, cfg, mt.classifier_host_bf16());
    if (decode_n) {
      out << "\nbare GEMVs on this machine (" << ctx.size * omp_get_max_threads() << " threads, one process): "
          << (cfg.ternary ? "ternary LUT" : "ternary LUT (as if ternarised)") << " projections " << fixed_point(bare_tern, 4)
          << " s per token, fp32 classifier" << (mt.classifier_host_bf16() ? " (weights held in bf16)" : "") << " "
          << fixed_point(bare_cls, 4) << " s\n"
          << "  emulation / bare projections              " << fixed_point(wall_per_tok / bare_tern, 2) << "\n"
          << "  emulation / (bare projections + classifier) " << fixed_point(wall_per_tok / (bare_tern + bare_cls), 2)
          << "\n"
          << std::flush;
    }
  }

  // ---- results
  io::Table summary;
  summary.add_column("model", "", io::ColumnKind::text);
  summary.add_column("ternary", "", io::ColumnKind::integer);
  summary.add_column("region_side", "PEs", io::ColumnKind::integer);
  summary.add_column("layer_regions", "regions", io::ColumnKind::integer);
  summary.add_column("classifier_regions", "regions", io::ColumnKind::integer);
  summary.add_column("kv_policy", "", io::ColumnKind::text);
  summary.add_column("allreduce", "", io::ColumnKind::text);
  summary.add_column("prompt_tokens", "tokens", io::ColumnKind::integer);
  summary.add_column("generated_tokens", "tokens", io::ColumnKind::integer);
  summary.add_column("ttft_cycles", "cycles", io::ColumnKind::integer);
  summary.add_column("ttft_us", "us", io::ColumnKind::real);
  summary.add_column("decode_cycles_per_token", "cycles", io::ColumnKind::real);
  summary.add_column("decode_us_per_token", "us", io::ColumnKind::real);
  summary.add_column("tokens_per_s", "tokens/s", io::ColumnKind::real);
  summary.add_column("peak_sram_bytes", "bytes", io::ColumnKind::integer);
  summary.add_column("route_entries", "entries", io::ColumnKind::integer);
  summary.add_column("wall_s_per_token", "s", io::ColumnKind::real);
  summary.add_column("wall_s", "s", io::ColumnKind::real);
  summary.add_column("placement_wall_s", "s", io::ColumnKind::real);
  summary.add_column("bare_projections_s_per_token", "s", io::ColumnKind::real);
  summary.add_column("bare_classifier_s_per_token", "s", io::ColumnKind::real);
  summary.add_column("timing_only", "", io::ColumnKind::integer);
  summary.add_column("prefill_region_side", "PEs", io::ColumnKind::integer);
  summary.add_column("switch_cycles", "cycles", io::ColumnKind::integer);
  summary.add_column("switch_us", "us", io::ColumnKind::real);
  summary.add_column("switch_weight_bytes", "bytes", io::ColumnKind::integer);
  summary.add_column("switch_kv_bytes", "bytes", io::ColumnKind::integer);
  summary.add_column("switch_energy_j", "J", io::ColumnKind::real);
  add_energy_summary_columns(summary);
  std::vector<io::Table::Cell> summary_row = {
      cfg.name, int64_t(cfg.ternary), int64_t(spec.P), int64_t(pl.layer_regions.size()),
      int64_t(pl.classifier_regions.size()), o.kv_policy, o.allreduce, gs.prompt_tokens,
      gs.sampled_tokens, int64_t(ttft), mp.cycles_to_us(ttft), per_tok_cycles, per_tok_us, tok_s,
      int64_t(sram), int64_t(routes), wall_per_tok, prefill_wall + decode_wall, place_s, bare_tern,
      bare_cls, int64_t(timing_only), int64_t(switching ? pspec.P : spec.P), int64_t(sw.cycles()),
      mp.cycles_to_us(sw.cycles()), int64_t(sw.weight_bytes), int64_t(sw.kv_bytes), switch_energy.total_j()};
  append_energy_summary(summary_row, energy);
  summary.append_row(std::move(summary_row));
  io::Table tokens;
  tokens.add_column("position", "", io::ColumnKind::integer);
  tokens.add_column("positions", "positions", io::ColumnKind::integer);
  tokens.add_column("token", "", io::ColumnKind::integer);
  tokens.add_column("phase", "", io::ColumnKind::text);
  tokens.add_column("cycles", "cycles", io::ColumnKind::integer);
  tokens.add_column("us", "us", io::ColumnKind::real);
  tokens.add_column("wall_s", "s", io::ColumnKind::real);
  add_energy_position_columns(tokens);
  for (int64_t i = 0; i < n; ++i) {
    const Pos& p = positions[size_t(i)];
    std::vector<io::Table::Cell> row = {p.first, p.covers, int64_t(p.token), std::string(i < first ? "prefill" : "decode"),
                                        int64_t(p.cycles), mp.cycles_to_us(p.cycles), p.wall};
    append_energy_position(row, energy, i, p.cycles, mp);
    tokens.append_row(std::move(row));
  }
  io::Table layers;
  layers.add_column("layer", "", io::ColumnKind::integer);
  layers.add_column("region", "", io::ColumnKind::integer);
  layers.add_column("compute_cycles", "cycles", io::ColumnKind::real);
  layers.add_column("allreduce_cycles", "cycles", io::ColumnKind::real);
  layers.add_column("kv_cycles", "cycles", io::ColumnKind::real);
  layers.add_column("total_cycles", "cycles", io::ColumnKind::real);
  add_energy_layer_columns(layers);
  for (int64_t l = 0; l < cfg.layers; ++l) {
    const model::LayerCycles& L = layer_sum[size_t(l)];
    std::vector<io::Table::Cell> row = {l, int64_t(pl.region_of_layer[size_t(l)]), double(L.compute) / double(bn),
                                        double(L.allreduce) / double(bn), double(L.kv) / double(bn),
                                        double(L.total()) / double(bn)};
    append_energy_layer(row, energy, l);
    layers.append_row(std::move(row));
  }
  const Region whole{0, 0, int32_t(mp.width_pes), int32_t(mp.height_pes)};
  std::vector<std::pair<std::string, io::Table>> extra = {{"tokens", tokens}, {"layers", layers}};
  if (!tuned.candidates.empty()) {
    io::Table cand;
    cand.add_column("region_side", "PEs", io::ColumnKind::integer);
    cand.add_column("status", "", io::ColumnKind::text);
    cand.add_column("chosen", "", io::ColumnKind::integer);
    cand.add_column("layers_per_region", "layers", io::ColumnKind::integer);
    cand.add_column("layer_regions", "regions", io::ColumnKind::integer);
    cand.add_column("classifier_regions", "regions", io::ColumnKind::integer);
    cand.add_column("layer_decode_cycles", "cycles", io::ColumnKind::integer);
    cand.add_column("handoff_decode_cycles", "cycles", io::ColumnKind::integer);
    cand.add_column("classifier_decode_cycles", "cycles", io::ColumnKind::integer);
    cand.add_column("decode_cycles_per_token", "cycles", io::ColumnKind::integer);
    cand.add_column("prefill_cycles", "cycles", io::ColumnKind::integer);
    cand.add_column("probe_wall_s", "s", io::ColumnKind::real);
    cand.add_column("prefill_status", "", io::ColumnKind::text);
    cand.add_column("chosen_prefill", "", io::ColumnKind::integer);
    cand.add_column("prefill_layers_per_region", "layers", io::ColumnKind::integer);
    cand.add_column("prefill_layer_regions", "regions", io::ColumnKind::integer);
    for (const model::PlacementCandidate& k : tuned.candidates)
      cand.append_row({int64_t(k.P), k.status, int64_t(k.P == tuned.P), int64_t(k.layers_per_region), k.layer_regions,
                       k.classifier_regions, int64_t(k.layer_decode_cycles), int64_t(k.handoff_decode_cycles),
                       int64_t(k.classifier_decode_cycles), int64_t(k.decode_cycles), int64_t(k.prefill_cycles),
                       k.probe_wall_s, k.prefill_status, int64_t(k.P == pspec.P && gemm_prefill),
                       int64_t(k.prefill_layers_per_region), k.prefill_layer_regions});
    extra.push_back({"placement_candidates", cand});
  }
  if (o.maps) {
    write_results_with_maps(ctx, opts, mp, o.output, "generate", summary, o.seed, f, whole, extra);
  } else if (!o.output.empty() || ctx.sink) {
    write_bench_results(ctx, opts, mp, o.output, "generate", summary, o.seed, extra);
  }
  if (trace.on()) {
    std::vector<TracedPosition> tp;
    for (int64_t i = 0; i < n; ++i) {
      const Pos& p = positions[size_t(i)];
      tp.push_back({p.covers > 1 ? "prefill (" + std::to_string(p.covers) + " tokens)"
                                 : (i < first ? "prompt position " : "decode position ") + std::to_string(p.first),
                    &p.tc});
    }
    trace_generate(trace, pl, tp, sw.start_cycles, sw.cycles());
    if (pe_trace) trace.add_pes(trace.new_process("PEs " + pe_trace->window().str()), *pe_trace);
    pe_trace.reset();
    trace.write(ctx);
  }
  return 0;
}

}  // namespace wm::cli
