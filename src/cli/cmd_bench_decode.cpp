// `wafermesh bench decode`: the emulator's speed-up from 1 rank to the job's N ranks on a model's
// decode, measured in one run. The same placement is built on a communicator of one rank alone
// (rank 0, or each rank that --solo-ranks names: machines whose cores differ in speed show it) and
// on all N ranks. Rounds of decoded tokens alternate between them (the order flips every round, so
// that a machine that speeds up or slows down during the run favours none), and each round's ratio
// is 1-rank wall time / N-rank wall time per token. The runs must agree token for token and cycle
// for cycle (the figures do not depend on the rank count); a difference is an error.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <iomanip>
#include <memory>
#include <ostream>
#include <stdexcept>

#include "wafermesh/cli/bench_common.hpp"
#include "wafermesh/cli/machine_options.hpp"
#include "wafermesh/cli/rank0.hpp"
#include "wafermesh/mesh/mpi_traits.hpp"
#include "wafermesh/model/mesh_transformer.hpp"
#include "wafermesh/model/model_config.hpp"
#include "wafermesh/model/sampler.hpp"
#include "wafermesh/model/tokenizer.hpp"
#include "wafermesh/model/weights.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::cli {

namespace {

struct DecodeBenchOptions {
  std::string model = "configs/models/bitnet_2b4t.ini";
  std::string weights;  // empty: the model file's
  int64_t region = 160;
  int64_t tokens = 8;
  int64_t rounds = 6;
  int64_t seed = 42;
  std::vector<int64_t> solo_ranks{0};
  std::string output = "results/bench_decode.h5";
  std::vector<ParamSpec> specs() {
    return {
        param_text("model", &model, "model config (configs/models/*.ini): shape, weights"),
        param_text("weights", &weights,
                   "weights as generate takes them ('synthetic', 'none' for timing only, a checkpoint path); "
                   "empty = the model file's `weights`"),
        param_int("region", &region, "PEs", "side of the square region a group of layers occupies (as generate's)",
                  1, 1 << 20),
        param_int("tokens", &tokens, "tokens", "decoded tokens per round and rank count", 1, 1 << 20),
        param_int("rounds", &rounds, "rounds",
                  "rounds; each decodes --tokens at 1 rank and at the job's ranks, the order flipping every round",
                  1, 1 << 16),
        param_int("seed", &seed, "", "seed of the sampler (temperature 1, top-p 0.9, as generate) and of synthetic "
                  "weights", 1, int64_t(1) << 62),
        param_int_list("solo-ranks", &solo_ranks, "ranks",
                       "ranks that each run the 1-rank rounds alone, comma-separated (each holds a whole 1-rank "
                       "placement; two or more show whether the cores differ in speed)",
                       0, 1 << 20),
        param_text("output", &output, "HDF5 results file (written complete or not at all; empty = none)"),
    };
  }
};

// One placement of the model and the chain of tokens it produces.
struct Run {
  std::unique_ptr<Fabric> f;
  std::unique_ptr<model::MeshTransformer> m;
  std::unique_ptr<model::Sampler> sampler;
  int token = model::Tokenizer::kBos;
  int pos = 0;
  std::vector<int> tokens;         // fed, in order
  std::vector<uint64_t> cycles;    // virtual cycles of each position
  // Decodes n positions; returns the wall seconds of their forward() calls (the slowest rank's).
  double decode(int64_t n) {
    double wall = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float* logits = m->forward(token, pos);
      tokens.push_back(token);
      cycles.push_back(m->last_token().total);
      wall += m->last_token().wall_s;
      token = sampler->sample(logits);
      ++pos;
    }
    return wall;
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int cmd_bench_decode(const Context& ctx, const std::vector<std::string>& args) {
  MachineParams mp;
  DecodeBenchOptions o;
  OptionSet opts;
  const bool run = parse_command(ctx, args, opts, mp, o.specs(),
                                 "usage: wafermesh bench decode [--config FILE] [--model FILE] [options]\n\n"
                                 "Decodes a model placed as generate places it, at 1 rank and at the job's ranks in\n"
                                 "alternating rounds, and prints the emulator's speed-up (wall time per decoded token at\n"
                                 "1 rank / at N ranks) measured in this one run. Needs at least 2 ranks.");
  if (opts.help_requested()) return 0;
  std::ostream& out = *ctx.out;
  model::ModelConfig cfg = model::load_model_config(o.model);
  if (!o.weights.empty()) cfg.weights = o.weights;
  const int64_t positions = 1 + o.tokens * o.rounds;  // a warm-up position, then the rounds
  if (positions > cfg.seq_len)
    throw UsageError("options --tokens x --rounds = " + std::to_string(o.tokens * o.rounds) +
                     " positions (+1 warm-up) exceed the model's context seq_len = " + std::to_string(cfg.seq_len));
  const std::unique_ptr<model::WeightSource> source = model::open_weight_source(cfg, uint64_t(o.seed));
  const bool timing_only = !source->has_values();
  model::MeshPlacementSpec spec;
  spec.P = int32_t(o.region);
  spec.context = positions;
  const MeshShape mesh{int32_t(mp.width_pes), int32_t(mp.height_pes)};
  // The N-rank job as generate runs it (its preferred rank grid unless one is given); the 1-rank
  // run on the whole mesh.
  MachineParams mp_n = mp, mp_1 = mp;
  model::MeshTransformer::use_preferred_rank_grid(mp_n, ctx.size);
  mp_1.ranks_x = mp_1.ranks_y = 0;
  (void)model::MeshTransformer::plan(mesh, mp_n, cfg, spec);  // the one-line error, before placing
  if (ctx.size < 2)
    throw UsageError("bench decode compares 1 rank with the job's ranks: run it with at least 2 ranks "
                     "(mpirun -np 2 ...); this job has " + std::to_string(ctx.size));
  const std::vector<int64_t>& solo_ranks = o.solo_ranks;
  for (size_t i = 0; i < solo_ranks.size(); ++i) {
    if (solo_ranks[i] >= ctx.size)
      throw UsageError("option --solo-ranks = " + std::to_string(solo_ranks[i]) + " names no rank of this job: its ranks are 0.." +
                       std::to_string(ctx.size - 1));
    if (std::find(solo_ranks.begin(), solo_ranks.begin() + std::ptrdiff_t(i), solo_ranks[i]) !=
        solo_ranks.begin() + std::ptrdiff_t(i))
      throw UsageError("option --solo-ranks names rank " + std::to_string(solo_ranks[i]) + " twice");
  }
  if (!run) return 0;

  auto make_sampler = [&] {
    return std::make_unique<model::Sampler>(cfg.vocab, timing_only ? 0.0f : 1.0f, 0.9f, uint64_t(o.seed));
  };
  // One communicator per solo rank: that rank alone.
  const size_t S = solo_ranks.size();
  std::vector<MPI_Comm> solo(S, MPI_COMM_NULL);
  struct CommsFree {
    std::vector<MPI_Comm>& c;
    ~CommsFree() {
      for (MPI_Comm& x : c)
        if (x != MPI_COMM_NULL) MPI_Comm_free(&x);
    }
  } solo_free{solo};
  for (size_t k = 0; k < S; ++k) MPI_Comm_split(ctx.comm, ctx.rank == solo_ranks[k] ? 0 : MPI_UNDEFINED, 0, &solo[k]);
  // Placed first at N ranks (an error there reaches every rank as it does in generate), then at 1.
  Run many;
  std::vector<Run> ones(S);
  const auto t0 = std::chrono::steady_clock::now();
  many.f = std::make_unique<Fabric>(ctx.comm, mp_n);
  many.m = std::make_unique<model::MeshTransformer>(*many.f, *source, spec);
  many.sampler = make_sampler();
  const double place_n = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<double> place_1(S, 0.0);
  const std::chrono::milliseconds idle(5);
  for (size_t k = 0; k < S; ++k) {
    const int root = int(solo_ranks[k]);
    on_rank(ctx, root, [&] {
      const auto t1 = std::chrono::steady_clock::now();
      ones[k].f = std::make_unique<Fabric>(solo[k], mp_1);
      ones[k].m = std::make_unique<model::MeshTransformer>(*ones[k].f, *source, spec);
      ones[k].sampler = make_sampler();
      place_1[k] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    }, idle);
    MPI_Bcast(&place_1[k], 1, mpi_type<double>(), root, ctx.comm);
  }
  out << "bench decode: " << cfg.name << ", " << cfg.layers << " layers on regions of " << o.region << " x "
      << o.region << " PEs, mesh " << mp.width_pes << " x " << mp.height_pes << "; 1 rank against " << ctx.size
      << " ranks, " << o.rounds << " round(s) of " << o.tokens << " decoded token(s) each, the order flipping every "
      << "round; placed in " << fixed_point(place_1[0], 1) << " s (1 rank: rank " << solo_ranks[0];
  for (size_t k = 1; k < S; ++k) out << "; " << fixed_point(place_1[k], 1) << " s on rank " << solo_ranks[k];
  out << ") and " << fixed_point(place_n, 1) << " s (" << ctx.size << " ranks)"
      << (timing_only ? "; timing only (weights none)" : "") << "\n\n"
      << std::flush;

  // Timed at 1 rank: one rank alone, the others waiting without taking a core.
  auto solo_decode = [&](size_t k, int64_t n) {
    const int root = int(solo_ranks[k]);
    double wall = 0;
    on_rank(ctx, root, [&] { wall = ones[k].decode(n); }, idle);
    MPI_Bcast(&wall, 1, mpi_type<double>(), root, ctx.comm);
    return wall;
  };
  // Position 0 (the prompt's BOS) on each, untimed: first touches of the weights and caches.
  for (size_t k = 0; k < S; ++k) (void)solo_decode(k, 1);
  (void)many.decode(1);

  io::Table t;
  t.add_column("round", "", io::ColumnKind::integer);
  t.add_column("first", "ranks", io::ColumnKind::integer);
  t.add_column("solo_rank", "", io::ColumnKind::integer);
  t.add_column("tokens", "tokens", io::ColumnKind::integer);
  t.add_column("wall_s_per_token_1_rank", "s", io::ColumnKind::real);
  t.add_column("wall_s_per_token_n_ranks", "s", io::ColumnKind::real);
  t.add_column("ranks", "ranks", io::ColumnKind::integer);
  t.add_column("speedup", "", io::ColumnKind::real);
  out << std::setw(6) << "round" << std::setw(9) << "first" << std::setw(11) << "1 rank on" << std::setw(16)
      << "1 rank s/tok" << std::setw(16) << (std::to_string(ctx.size) + " ranks s/tok") << std::setw(10) << "speed-up"
      << "\n"
      << std::flush;
  std::vector<std::vector<double>> ratios(S), w1s(S);
  std::vector<double> wns;
  for (int64_t r = 0; r < o.rounds; ++r) {
    // Even rounds: the solo ranks in the order given, then the N ranks; odd rounds the reverse.
    const bool solo_first = r % 2 == 0;
    std::vector<double> w1(S, 0.0);
    auto solos = [&] {
      for (size_t i = 0; i < S; ++i) {
        const size_t k = solo_first ? i : S - 1 - i;
        w1[k] = solo_decode(k, o.tokens) / double(o.tokens);
      }
    };
    if (solo_first) solos();
    const double wn = many.decode(o.tokens) / double(o.tokens);
    if (!solo_first) solos();
    wns.push_back(wn);
    for (size_t k = 0; k < S; ++k) {
      const double ratio = wn > 0 ? w1[k] / wn : 0.0;
      ratios[k].push_back(ratio);
      w1s[k].push_back(w1[k]);
      t.append_row({r, int64_t(solo_first ? 1 : ctx.size), solo_ranks[k], o.tokens, w1[k], wn, int64_t(ctx.size), ratio});
      out << std::setw(6) << r << std::setw(9) << (solo_first ? "1" : std::to_string(ctx.size)) << std::setw(11)
          << solo_ranks[k] << std::setw(16) << fixed_point(w1[k], 4) << std::setw(16) << fixed_point(wn, 4)
          << std::setw(10) << fixed_point(ratio, 2) << "\n"
          << std::flush;
    }
  }

  // The chains must be the same: tokens and virtual cycles, position by position.
  for (size_t k = 0; k < S; ++k) {
    const int root = int(solo_ranks[k]);
    std::vector<int> tok1 = ones[k].tokens;
    std::vector<uint64_t> cyc1 = ones[k].cycles;
    int64_t n1 = int64_t(tok1.size());
    MPI_Bcast(&n1, 1, mpi_type<int64_t>(), root, ctx.comm);
    tok1.resize(size_t(n1));
    cyc1.resize(size_t(n1));
    MPI_Bcast(tok1.data(), int(n1), MPI_INT, root, ctx.comm);
    MPI_Bcast(cyc1.data(), int(n1), mpi_type<uint64_t>(), root, ctx.comm);
    for (size_t i = 0; i < many.tokens.size(); ++i)
      if (i >= tok1.size() || tok1[i] != many.tokens[i] || cyc1[i] != many.cycles[i])
        throw std::logic_error("bench decode: position " + std::to_string(i) + " differs between 1 rank (rank " +
                               std::to_string(root) + ") and " + std::to_string(ctx.size) + " ranks (token " +
                               (i < tok1.size() ? std::to_string(tok1[i]) : std::string("-")) + " vs " +
                               std::to_string(many.tokens[i]) + ", cycles " +
                               (i < cyc1.size() ? std::to_string(cyc1[i]) : std::string("-")) + " vs " +
                               std::to_string(many.cycles[i]) + ")");
  }

  io::Table s;
  s.add_column("solo_rank", "", io::ColumnKind::integer);
  s.add_column("ranks", "ranks", io::ColumnKind::integer);
  s.add_column("rounds", "rounds", io::ColumnKind::integer);
  s.add_column("median_speedup", "", io::ColumnKind::real);
  s.add_column("min_speedup", "", io::ColumnKind::real);
  s.add_column("max_speedup", "", io::ColumnKind::real);
  s.add_column("median_wall_s_per_token_1_rank", "s", io::ColumnKind::real);
  s.add_column("median_wall_s_per_token_n_ranks", "s", io::ColumnKind::real);
  s.add_column("place_s_1_rank", "s", io::ColumnKind::real);
  s.add_column("place_s_n_ranks", "s", io::ColumnKind::real);
  out << "\n";
  const double mn = median(wns);
  for (size_t k = 0; k < S; ++k) {
    const double med = median(ratios[k]), m1 = median(w1s[k]);
    const auto [lo, hi] = std::minmax_element(ratios[k].begin(), ratios[k].end());
    out << "speed-up 1 -> " << ctx.size << " ranks: median of the rounds " << fixed_point(med, 2) << " (min "
        << fixed_point(*lo, 2) << ", max " << fixed_point(*hi, 2) << "); median s per decoded token "
        << fixed_point(m1, 4) << " at 1 rank (rank " << solo_ranks[k] << " alone), " << fixed_point(mn, 4) << " at "
        << ctx.size << "\n";
    s.append_row({solo_ranks[k], int64_t(ctx.size), o.rounds, med, *lo, *hi, m1, mn, place_1[k], place_n});
  }
  out << "the " << many.tokens.size() << " positions' tokens and virtual cycles are the same at 1 and " << ctx.size
      << " ranks\n"
      << std::flush;
  // The chain both runs produced (position 0 is the warm-up), as generate's tokens table has it.
  io::Table ps;
  ps.add_column("position", "", io::ColumnKind::integer);
  ps.add_column("token", "", io::ColumnKind::integer);
  ps.add_column("cycles", "cycles", io::ColumnKind::integer);
  for (size_t i = 0; i < many.tokens.size(); ++i) ps.append_row({int64_t(i), int64_t(many.tokens[i]), int64_t(many.cycles[i])});
  if (!o.output.empty())
    write_bench_results(ctx, opts, mp, o.output, "decode", t, o.seed, {{"summary", s}, {"positions", ps}});
  // The 1-rank runs are torn down on their ranks before the shared one (their communicators are
  // freed last).
  for (size_t k = 0; k < S; ++k)
    on_rank(ctx, int(solo_ranks[k]), [&] {
      ones[k].m.reset();
      ones[k].f.reset();
    });
  return 0;
}

}  // namespace wm::cli
