// `wafermesh bench kv`: for each KV cache policy and region size, decode tokens into the cache of a
// model's shape until some PE's SRAM overflows; report the longest decode, the context reached and
// the virtual cycles per appended token.
#include <mpi.h>

#include <algorithm>
#include <iomanip>
#include <optional>
#include <ostream>

#include "wafermesh/cli/bench_common.hpp"
#include "wafermesh/cli/machine_options.hpp"
#include "wafermesh/cli/trace_file.hpp"
#include "wafermesh/dist/kv_cache.hpp"
#include "wafermesh/model/model_config.hpp"
#include "wafermesh/model/placement_tuning.hpp"
#include "wafermesh/noc/tile_buf.hpp"
#include "wafermesh/util/checked_math.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::cli {

namespace {
struct KvBenchOptions {
  std::vector<std::string> policies{"concat", "shift"};
  std::vector<int64_t> Ps{32, 64, 128};
  std::string model = "configs/models/bitnet_2b4t.ini";
  int64_t prompt = 128, max_decode = 100000;
  std::string output = "results/bench_kv.h5";
  std::vector<ParamSpec> specs() {
    return {
        param_text_list("policy", &policies, "KV cache policies, comma-separated", {"concat", "shift"}),
        param_int_list("P", &Ps, "PEs",
                       "region sides, comma-separated; 0 = generate's tuned decode side for the model, with the "
                       "layers one region holds there and the SRAM their weights, norms and scratch leave",
                       0, 1 << 20),
        param_text("model", &model, "model config (configs/models/*.ini): kv_dim and layers"),
        param_int("prompt_tokens", &prompt, "tokens", "prompt tokens placed by prefill", 0, int64_t(1) << 30),
        param_int("max_decode", &max_decode, "tokens", "stop decoding after this many tokens", 1,
                  int64_t(1) << 30),
        param_text("output", &output, "HDF5 results file (written complete or not at all)"),
    };
  }
};
}  // namespace

int cmd_bench_kv(const Context& ctx, const std::vector<std::string>& args) {
  MachineParams mp;
  KvBenchOptions o;
  TraceOptions trace_opts;
  OptionSet opts;
  std::vector<ParamSpec> specs = o.specs();
  for (const ParamSpec& s : trace_opts.specs()) specs.push_back(s);
  const bool run = parse_command(ctx, args, opts, mp, specs,
                                 "usage: wafermesh bench kv [--config FILE] [options]\n\n"
                                 "Decodes into a KV cache of the model's shape (all layers share the region's SRAM) until a\n"
                                 "PE overflows, for each policy and region size.");
  if (opts.help_requested()) return 0;
  trace_opts.check(ctx, mp);
  TraceFile trace(trace_opts, mp);
  std::ostream& out = *ctx.out;
  const model::ModelConfig mc = model::load_model_config(o.model);  // checked by `sweep` too
  for (int64_t P : o.Ps)
    if (P > mp.width_pes || P > mp.height_pes)
      throw UsageError("option --P = " + std::to_string(P) + ": a " + std::to_string(P) + " x " + std::to_string(P) +
                       " region does not fit the " + std::to_string(mp.width_pes) + " x " +
                       std::to_string(mp.height_pes) + " mesh");
  if (!run) return 0;
  // P = 0: the decode grid generate would choose (placement_tuning.hpp), for the prompt and one
  // decoded token; the cache then holds that region's layers in what their weights leave.
  struct Grid {
    int64_t layers;
    int64_t sram;
    bool tuned;
  };
  std::vector<std::pair<int64_t, Grid>> grids;
  for (int64_t P : o.Ps) {
    if (P > 0) {
      grids.push_back({P, {mc.layers, mp.sram_bytes, false}});
      continue;
    }
    MachineParams tm = mp;
    const MeshShape mesh{int32_t(mp.width_pes), int32_t(mp.height_pes)};
    model::MeshTransformer::use_preferred_rank_grid(tm, ctx.size);
    model::MeshPlacementSpec spec;
    spec.context = std::max<int64_t>(o.prompt, 1) + 1;
    const int64_t n = std::max<int64_t>(o.prompt, 1);
    const model::PlacementChoice c = model::tune_placement(ctx.comm, tm, mc, spec, n, true,
                                                           model::candidate_sides(mesh, tm, mc, spec));
    spec.P = c.P;
    const model::MeshPlacement pl = model::MeshTransformer::plan(mesh, tm, mc, spec);
    const int64_t fixed = int64_t(pl.layer_bytes_per_pe - pl.kv_reserve_bytes_per_pe) * pl.layers_per_region +
                          int64_t(pl.scratch_bytes_per_pe);
    out << "bench kv: tuned decode grid for " << mc.name << ": side " << c.P << ", " << pl.layers_per_region
        << " layers per region; their weights, norms and scratch take " << fixed << " of " << mp.sram_bytes
        << " bytes per PE\n";
    grids.push_back({c.P, {pl.layers_per_region, mp.sram_bytes - fixed, true}});
  }
  io::Table t;
  t.add_column("policy", "", io::ColumnKind::text);
  t.add_column("P", "PEs", io::ColumnKind::integer);
  t.add_column("kv_dim", "elements", io::ColumnKind::integer);
  t.add_column("layers", "layers", io::ColumnKind::integer);
  t.add_column("bytes_per_token_per_pe", "bytes", io::ColumnKind::integer);
  t.add_column("prompt_tokens", "tokens", io::ColumnKind::integer);
  t.add_column("max_decode_tokens", "tokens", io::ColumnKind::integer);
  t.add_column("context_tokens", "tokens", io::ColumnKind::integer);
  t.add_column("cycles_per_token", "cycles", io::ColumnKind::real);
  t.add_column("status", "", io::ColumnKind::text);
  t.add_column("wall_s", "s", io::ColumnKind::real);
  t.add_column("tuned_grid", "", io::ColumnKind::integer);
  t.add_column("sram_for_kv_bytes", "bytes", io::ColumnKind::integer);

  const int64_t D = mc.kv_dim();
  out << "bench kv: " << mc.name << " (kv_dim " << D << ", " << mc.layers << " layers), " << o.prompt
      << " prompt tokens, " << mp.sram_bytes << " bytes of SRAM per PE, " << ctx.size << " rank(s)\n\n"
      << std::left << std::setw(8) << "policy" << std::right << std::setw(6) << "P" << std::setw(14) << "B/token/PE"
      << std::setw(13) << "max decode" << std::setw(10) << "context" << std::setw(14) << "cyc/token"
      << std::setw(10) << "wall s" << "  stopped by\n";
  for (const auto& name : o.policies)
    for (const auto& [P, grid] : grids) {
      MachineParams mp_run = mp;
      mp_run.sram_bytes = grid.sram;
      dist::KvSpec s;
      s.policy = dist::kv_policy_from_name(name);
      s.P = int32_t(P);
      s.heads = mc.heads;
      s.kv_heads = mc.kv_heads;
      s.head_dim = mc.head_dim();
      s.layers = grid.layers;
      Fabric f(ctx.comm, mp_run);
      const Region R{0, 0, s.P, s.P};
      std::unique_ptr<PeWindowTrace> pe_trace = trace.record_pes(f);
      const int pid = trace.on() ? trace.new_process(name + " P=" + std::to_string(P)) : 0;
      uint64_t t0 = 0;  // the region's clock when decoding starts
      // SRAM in use on the region after appends (sampled: about a thousand samples at most).
      const int64_t every = std::max<int64_t>(1, o.max_decode / 1000);
      // Every decoded token's K and V: tiles of 0.5 in the decode layout (the values do not matter).
      TileBuf<float> kt(f, R, size_t(s.mtk()), "decoded key", TileBuf<float>::Uncharged{});
      TileBuf<float> vt(f, R, size_t(s.mtk()), "decoded value", TileBuf<float>::Uncharged{});
      for (TileBuf<float>* b : {&kt, &vt})
        b->for_each_local([&](int32_t, int32_t, float* t) { std::fill(t, t + s.mtk(), 0.5f); });
      std::optional<dist::KvCache> cache;  // a cache whose own buffers do not fit is a row too
      std::string status;
      int64_t n = 0;
      uint64_t cycles = 0;
      const double w0 = MPI_Wtime();
      try {
        cache.emplace(f, s);
        // A prompt whose keys and values exceed the whole region's SRAM cannot fit: said without
        // allocating it on the host first (--prompt_tokens goes up to 2^30).
        const int64_t fp = int64_t(mp.wafer_fp_bytes());  // a key or value element on the wafer
        const std::optional<int64_t> need = checked_product({o.prompt, D, 2 * fp, grid.layers});
        const int64_t have = P * P * grid.sram;
        if (!need || *need > have)
          throw LimitError("the prompt's keys and values (" + std::to_string(o.prompt) + " tokens x kv_dim " +
                           std::to_string(D) + " x 2 x " + std::to_string(fp) + " bytes x " + std::to_string(grid.layers) + " layers) exceed the " +
                           std::to_string(have) + " bytes of SRAM of the " + std::to_string(P) + " x " +
                           std::to_string(P) + " region");
        const std::vector<float> prompt(size_t(o.prompt * D), 0.5f);
        cache->prefill(prompt.data(), prompt.data(), o.prompt);
        if (trace.on()) t0 = f.max_clock(R);
        for (; n < o.max_decode; ++n) {
          uint64_t c = 0;
          cache->append(kt, vt, &c);
          cycles += c;
          if (trace.on() && (n + 1) % every == 0)
            trace.json().counter(pid, "SRAM in use (busiest PE)", t0 + cycles, {{"bytes", double(f.sram_in_use_max(R))}});
        }
        status = "kv.max_decode reached";
      } catch (const LimitError& e) {
        status = !cache ? std::string("cache does not fit: ") + e.what()
                 : n == 0 && cache->tokens() == 0 ? std::string("prompt does not fit: ") + e.what()
                                                  : e.what();
      }
      const int64_t tokens = cache ? cache->tokens() : 0;
      if (trace.on()) {
        trace.json().thread(pid, 1, "region " + R.str(), 0);
        if (t0 > 0) trace.json().span(pid, 1, "prefill (" + std::to_string(o.prompt) + " tokens)", "point", 0, t0);
        trace.json().span(pid, 1, "decode " + std::to_string(n) + " tokens into the cache", "point", t0, cycles,
                          {{"tokens", n}, {"stopped_by", status}});
        if (pe_trace) trace.add_pes(pid, *pe_trace);
      }
      const int64_t per_token = cache ? int64_t(cache->bytes_per_token_per_pe()) : 0;
      const double wall = MPI_Wtime() - w0;
      const double per = n ? double(cycles) / double(n) : 0.0;
      t.append_row({name, P, D, grid.layers, per_token, o.prompt, n, tokens, per, status, wall, int64_t(grid.tuned),
                    grid.sram});
      out << std::left << std::setw(8) << name << std::right << std::setw(6) << P << std::setw(14)
          << per_token << std::setw(13) << n << std::setw(10) << tokens << std::setw(14)
          << std::fixed << std::setprecision(1) << per << std::setw(10) << std::setprecision(3) << wall << "  "
          << status << "\n"
          << std::flush;
    }
  write_bench_results(ctx, opts, mp, o.output, "kv", t, -1);
  trace.write(ctx);
  return 0;
}

}  // namespace wm::cli
