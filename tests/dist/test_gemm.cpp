// Distributed GEMM: every algorithm against the serial references on awkward shapes, at 1, 2 and 4
// ranks; cost-counter properties of MeshGEMM vs Cannon and SUMMA; SRAM limits.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "fabric_test_util.hpp"
#include "wafermesh/dist/gemm.hpp"
#include "wafermesh/util/error.hpp"

using namespace wm;
using namespace wm::dist;
using namespace wm::test;

namespace {

std::vector<float> random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> m(size_t(rows * cols));
  for (float& v : m) v = u(g);
  return m;
}

// Plain triple loop in double, and the error bound |sum| <= K * eps * sum |a||b| (eps = 2^-23,
// twice the unit roundoff, covering both fp32 accumulation orders).
void expect_close_to_naive(const GemmSpec& s, const std::vector<float>& A, const std::vector<float>& B,
                           const std::vector<float>& C, const std::string& what) {
  size_t bad = 0;
  for (int64_t i = 0; i < s.M; ++i)
    for (int64_t j = 0; j < s.N; ++j) {
      double sum = 0, mag = 0;
      for (int64_t k = 0; k < s.K; ++k) {
        const double a = A[size_t(i * s.K + k)];
        const double b = s.transpose_b ? B[size_t(j * s.K + k)] : B[size_t(k * s.N + j)];
        sum += a * b;
        mag += std::fabs(a * b);
      }
      const double tol = double(s.K) * std::ldexp(1.0, -23) * mag + 1e-30;
      if (std::fabs(C[size_t(i * s.N + j)] - sum) > tol && bad++ < 3)
        ADD_FAILURE() << what << ": C[" << i << "," << j << "] = " << C[size_t(i * s.N + j)] << ", exact " << sum
                      << ", tolerance " << tol;
    }
  EXPECT_EQ(bad, 0u) << what;
}

// The virtual figures of two runs' reports: cycles, NoC bytes, peak SRAM and route entries.
void expect_same_figures(const GemmReport& a, const GemmReport& b, const std::string& what) {
  EXPECT_EQ(a.total_cycles, b.total_cycles) << what;
  EXPECT_EQ(a.compute_cycles, b.compute_cycles) << what;
  EXPECT_EQ(a.comm_cycles, b.comm_cycles) << what;
  EXPECT_EQ(a.noc_bytes, b.noc_bytes) << what;
  EXPECT_EQ(a.peak_sram_bytes, b.peak_sram_bytes) << what;
  EXPECT_EQ(a.max_route_entries, b.max_route_entries) << what;
}

}  // namespace

TEST(Gemm, EveryAlgorithmMatchesReferencesOnAwkwardShapes) {
  MachineParams mp = small_machine(7, 6);
  Fabric f(MPI_COMM_WORLD, mp);
  struct Shape { int64_t M, K, N; };
  const Shape shapes[] = {{1, 1, 1}, {7, 11, 13}, {17, 3, 5}, {2, 19, 4}};
  for (GemmAlgo algo : {GemmAlgo::meshgemm, GemmAlgo::cannon, GemmAlgo::summa})
    for (bool tb : {false, true})
      for (int32_t P : {1, 2, 3, 5})
        for (const Shape& sh : shapes)
          for (bool db : {true, false}) {
            if (!db && P != 3) continue;
            GemmSpec s;
            s.algo = algo;
            s.P = P;
            s.origin = {P == 5 ? 1 : 2, P == 5 ? 1 : 3 - (P > 3)};
            s.M = sh.M;
            s.K = sh.K;
            s.N = sh.N;
            s.transpose_b = tb;
            s.double_buffer = db;
            const auto A = random_matrix(s.M, s.K, 11u + uint32_t(P));
            const auto B = tb ? random_matrix(s.N, s.K, 23u) : random_matrix(s.K, s.N, 23u);
            std::vector<float> C(size_t(s.M * s.N), -7.0f), R(size_t(s.M * s.N), -9.0f);
            const GemmReport rep = gemm_f32(f, s, A.data(), B.data(), C.data());
            if (world_rank() != 0) continue;
            const std::string what = std::string(gemm_algo_name(algo)) + (tb ? " A.B^T" : " A.B") + " P=" +
                                     std::to_string(P) + " " + std::to_string(s.M) + "x" + std::to_string(s.K) +
                                     "x" + std::to_string(s.N) + (db ? "" : " single-buffered");
            gemm_f32_reference(s, A.data(), B.data(), R.data());
            EXPECT_EQ(std::memcmp(C.data(), R.data(), C.size() * sizeof(float)), 0)
                << what << ": not bitwise equal to the reference in the algorithm's summation order";
            expect_close_to_naive(s, A, B, C, what);
            EXPECT_EQ(rep.steps, uint64_t(P));
            if (P > 1) {
              EXPECT_GT(rep.total_cycles, rep.compute_cycles) << what;
            }
            if (algo == GemmAlgo::meshgemm) {
              EXPECT_LE(rep.max_hops, 2u) << what;
            }
          }
}

// Tiles of 4 x 4 at every P, so a step moves the same bytes; only the distances differ.
TEST(Gemm, MeshGemmStepLatencyIsConstantInPWhileCannonAndSummaGrow) {
  MachineParams mp = small_machine(16, 16);
  // SUMMA at P = 16 keeps 16 row and 16 column broadcast routes on every PE (32 > 24): with strict
  // routes it is infeasible; with software relays it runs and pays beta.
  {
    Fabric strict(MPI_COMM_WORLD, mp);
    GemmSpec s;
    s.algo = GemmAlgo::summa;
    s.P = 16;
    s.M = s.K = s.N = 64;
    const auto A = random_matrix(64, 64, 1), B = random_matrix(64, 64, 2);
    EXPECT_THROW(gemm_f32(strict, s, A.data(), B.data(), nullptr), LimitError);
  }
  mp.route_fallback = "relay";
  Fabric f(MPI_COMM_WORLD, mp);
  std::map<GemmAlgo, std::vector<GemmReport>> reps;
  const int32_t Ps[] = {4, 8, 16};
  for (GemmAlgo algo : {GemmAlgo::meshgemm, GemmAlgo::cannon, GemmAlgo::summa})
    for (int32_t P : Ps) {
      GemmSpec s;
      s.algo = algo;
      s.P = P;
      s.M = s.K = s.N = 4 * P;
      const auto A = random_matrix(s.M, s.K, 1), B = random_matrix(s.K, s.N, 2);
      reps[algo].push_back(gemm_f32(f, s, A.data(), B.data(), nullptr));
    }
  if (world_rank() != 0) return;
  // 4x4 fp32 tiles = 64 bytes = 16 wire cycles. MeshGEMM: 2 hops + 16 = 18 at every P.
  for (const GemmReport& r : reps[GemmAlgo::meshgemm]) {
    EXPECT_EQ(r.max_step_latency_cycles, 18u);
    EXPECT_LE(r.max_hops, 2u);
    EXPECT_LE(r.max_route_entries, 8u) << "constant routes per PE";
  }
  // Cannon: the wrap-around crosses P-1 hops: 3 + 16, 7 + 16, 15 + 16.
  EXPECT_EQ(reps[GemmAlgo::cannon][0].max_step_latency_cycles, 19u);
  EXPECT_EQ(reps[GemmAlgo::cannon][1].max_step_latency_cycles, 23u);
  EXPECT_EQ(reps[GemmAlgo::cannon][2].max_step_latency_cycles, 31u);
  // SUMMA: a broadcast reaches P-1 hops from its root at the line's end.
  for (size_t i = 1; i < 3; ++i) {
    EXPECT_GT(reps[GemmAlgo::summa][i].max_step_latency_cycles, reps[GemmAlgo::summa][i - 1].max_step_latency_cycles);
    EXPECT_GT(reps[GemmAlgo::summa][i].max_route_entries, reps[GemmAlgo::summa][i - 1].max_route_entries)
        << "SUMMA keeps a route per broadcast root";
  }
  // Over the whole run the virtual clock is a dataflow clock: with double buffering a late
  // wrap-around delays one PE, and the delay travels the ring one PE per step, so Cannon's longer
  // hops cost it at most as much as MeshGEMM, never less.
  for (size_t i = 0; i < 3; ++i)
    EXPECT_LE(reps[GemmAlgo::meshgemm][i].total_cycles, reps[GemmAlgo::cannon][i].total_cycles) << "P=" << Ps[i];
}

TEST(Gemm, TilesBeyondSramFailWithPeNeedAndLimit) {
  MachineParams mp = small_machine(4, 4);
  mp.sram_bytes = 1000;
  Fabric f(MPI_COMM_WORLD, mp);
  GemmSpec s;
  s.P = 4;
  s.M = s.K = s.N = 64;  // 16 x 16 fp32 tiles: 1024 bytes each
  const auto A = random_matrix(64, 64, 1), B = random_matrix(64, 64, 2);
  std::string msg;
  try {
    gemm_f32(f, s, A.data(), B.data(), nullptr);
  } catch (const LimitError& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("PE (0, 0) needs 1024 bytes of SRAM for tile buffer 'A tiles'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("pe.sram_bytes = 1000"), std::string::npos) << msg;
}

TEST(Gemm, RegionOutsideTheMeshIsAUsageError) {
  Fabric f(MPI_COMM_WORLD, small_machine(4, 4));
  GemmSpec s;
  s.P = 3;
  s.origin = {2, 0};
  float a = 1, b = 1;
  EXPECT_THROW(gemm_f32(f, s, &a, &b, nullptr), UsageError);
}

// int8 x ternary: exact int32 against the plain triple loop, every algorithm and variant, awkward
// shapes, worst-case activations; B tiles travel packed.
TEST(Gemm, TernaryIsExactForEveryAlgorithm) {
  Fabric f(MPI_COMM_WORLD, small_machine(7, 6));
  struct Shape { int64_t M, K, N; };
  for (GemmAlgo algo : {GemmAlgo::meshgemm, GemmAlgo::cannon, GemmAlgo::summa})
    for (bool tb : {false, true})
      for (int32_t P : {1, 2, 3, 5})
        for (Shape sh : {Shape{1, 1, 1}, Shape{7, 11, 13}, Shape{70, 130, 3}}) {
          GemmSpec s;
          s.algo = algo;
          s.P = P;
          s.M = sh.M;
          s.K = sh.K;
          s.N = sh.N;
          s.transpose_b = tb;
          std::mt19937 g(uint32_t(P * 100 + sh.K));
          std::vector<int8_t> A(size_t(s.M * s.K)), B(size_t(s.K * s.N));
          for (auto& v : A) v = int8_t(int(g() % 256) - 128);
          for (auto& v : B) v = int8_t(int(g() % 3) - 1);
          if (sh.M == 70) std::fill(A.begin(), A.end(), int8_t(-128));  // worst case with all-ones rows below
          if (sh.M == 70) std::fill(B.begin(), B.begin() + s.K, int8_t(1));
          std::vector<int32_t> C(size_t(s.M * s.N), 99);
          gemm_ternary(f, s, A.data(), B.data(), C.data());
          if (world_rank() != 0) continue;
          size_t bad = 0;
          for (int64_t i = 0; i < s.M; ++i)
            for (int64_t j = 0; j < s.N; ++j) {
              int32_t want = 0;
              for (int64_t k = 0; k < s.K; ++k)
                want += int32_t(A[size_t(i * s.K + k)]) *
                        int32_t(tb ? B[size_t(j * s.K + k)] : B[size_t(k * s.N + j)]);
              if (C[size_t(i * s.N + j)] != want && bad++ < 3)
                ADD_FAILURE() << gemm_algo_name(algo) << (tb ? " A.B^T" : " A.B") << " P=" << P << " C[" << i << ","
                              << j << "] = " << C[size_t(i * s.N + j)] << ", want " << want;
            }
          EXPECT_EQ(bad, 0u);
        }
}

// Timing only (spec.compute = false): zero tiles move as the operands' would, products are charged
// and not computed. Every PE's clock and counters must equal the full run's, for every algorithm,
// both forms, both element types, at every rank count.
TEST(Gemm, TimingOnlyGivesEveryPeTheFullRunsClocksAndCounters) {
  const MachineParams mp = small_machine(7, 6);
  struct Shape { int64_t M, K, N; };
  for (GemmAlgo algo : {GemmAlgo::meshgemm, GemmAlgo::cannon, GemmAlgo::summa})
    for (bool tb : {false, true})
      for (bool ternary : {false, true})
        for (int32_t P : {1, 3, 4})
          for (Shape sh : {Shape{7, 11, 13}, Shape{4, 4, 4}}) {
            GemmSpec s;
            s.algo = algo;
            s.P = P;
            s.origin = {1, 1};
            s.M = sh.M;
            s.K = sh.K;
            s.N = sh.N;
            s.transpose_b = tb;
            auto run = [&](bool compute) {
              Fabric f(MPI_COMM_WORLD, mp);
              GemmSpec t = s;
              t.compute = compute;
              GemmReport r;
              if (ternary) {
                std::vector<int8_t> A(size_t(s.M * s.K)), B(size_t(s.K * s.N));
                std::mt19937 g(5);
                for (auto& a : A) a = int8_t(int(g() % 255) - 127);
                for (auto& b : B) b = int8_t(int(g() % 3) - 1);
                r = compute ? gemm_ternary(f, t, A.data(), B.data(), nullptr) : gemm_ternary(f, t, nullptr, nullptr, nullptr);
              } else {
                const auto A = random_matrix(s.M, s.K, 1), B = random_matrix(s.K, s.N, 2);
                r = compute ? gemm_f32(f, t, A.data(), B.data(), nullptr) : gemm_f32(f, t, nullptr, nullptr, nullptr);
              }
              return std::pair{r, f.gather_counters(f.mesh().full())};
            };
            const auto [full, full_pes] = run(true);
            const auto [timing, timing_pes] = run(false);
            const std::string what = std::string(gemm_algo_name(algo)) + (tb ? " A B^T" : " A B") +
                                     (ternary ? " ternary" : " fp32") + " P " + std::to_string(P) + " " +
                                     std::to_string(sh.M) + "x" + std::to_string(sh.K) + "x" + std::to_string(sh.N);
            expect_same_figures(timing, full, what);
            if (world_rank() == 0) {
              EXPECT_TRUE(timing_pes == full_pes) << what << ": per-PE counters differ";
            }
          }
}

// Operands loaded already aligned: the skew neither moves nor costs anything, the product is the
// skewed run's bit for bit, and timing-only runs keep every PE's figures.
TEST(Gemm, PreskewedOperandsSkipTheSkewAndGiveTheSameProduct) {
  const MachineParams mp = small_machine(7, 6);
  struct Shape { int64_t M, K, N; };
  for (GemmAlgo algo : {GemmAlgo::meshgemm, GemmAlgo::cannon})
    for (int32_t P : {1, 2, 3, 5})
      for (Shape sh : {Shape{7, 11, 13}, Shape{5, 5, 5}, Shape{1, 9, 2}}) {
        GemmSpec s;
        s.algo = algo;
        s.P = P;
        s.origin = {1, 1};
        s.M = sh.M;
        s.K = sh.K;
        s.N = sh.N;
        const auto A = random_matrix(s.M, s.K, 3), B = random_matrix(s.K, s.N, 4);
        auto run = [&](bool pre, bool compute, std::vector<float>* C) {
          Fabric f(MPI_COMM_WORLD, mp);
          GemmSpec t = s;
          t.preskewed = pre;
          t.compute = compute;
          const GemmReport r = compute ? gemm_f32(f, t, A.data(), B.data(), C ? C->data() : nullptr)
                                       : gemm_f32(f, t, nullptr, nullptr, nullptr);
          return std::pair{r, f.gather_counters(f.mesh().full())};
        };
        std::vector<float> Cs(size_t(s.M * s.N)), Cp(size_t(s.M * s.N)), R(size_t(s.M * s.N));
        const auto [skewed, skewed_pes] = run(false, true, &Cs);
        const auto [pre, pre_pes] = run(true, true, &Cp);
        const auto [pre_t, pre_t_pes] = run(true, false, nullptr);
        const std::string what =
            std::string(gemm_algo_name(algo)) + " P " + std::to_string(P) + " " + std::to_string(sh.M) + "x" +
            std::to_string(sh.K) + "x" + std::to_string(sh.N);
        if (world_rank() == 0) {
          gemm_f32_reference(s, A.data(), B.data(), R.data());
          EXPECT_EQ(std::memcmp(Cp.data(), R.data(), R.size() * sizeof(float)), 0) << what;
          EXPECT_EQ(std::memcmp(Cp.data(), Cs.data(), R.size() * sizeof(float)), 0) << what;
          EXPECT_TRUE(pre_t_pes == pre_pes) << what << ": timing-only per-PE counters differ";
        }
        EXPECT_EQ(pre_t.total_cycles, pre.total_cycles) << what;
        if (P > 1) {  // the skew moves row 1 of A and column 1 of B at least
          EXPECT_LT(pre.total_cycles, skewed.total_cycles) << what;
          EXPECT_LT(pre.noc_bytes, skewed.noc_bytes) << what;
        } else {
          EXPECT_EQ(pre.total_cycles, skewed.total_cycles) << what;
        }
      }
  GemmSpec bad;
  bad.P = 2;
  bad.M = bad.K = bad.N = 4;
  bad.preskewed = true;
  bad.algo = GemmAlgo::summa;
  EXPECT_THROW(check_gemm_spec(MeshShape{4, 4}, bad), UsageError);
  bad.algo = GemmAlgo::meshgemm;
  bad.transpose_b = true;
  EXPECT_THROW(check_gemm_spec(MeshShape{4, 4}, bad), UsageError);
}

namespace {

// Matrix m (rows x cols, row-major) as tiles of the GEMM's placement: logical block (r, c) of
// tr x tc elements (zero beyond the matrix) on PE (x0 + perm.phys(c), y0 + perm.phys(r)).
template <class T>
TileBuf<T> to_tiles(Fabric& f, const GemmSpec& s, const std::vector<T>& m, int64_t rows, int64_t cols, int64_t tr,
                    int64_t tc) {
  const LinePerm perm = gemm_line_perm(s);
  const Region R{s.origin.x, s.origin.y, s.P, s.P};
  TileBuf<T> t(f, R, size_t(tr * tc), "test tiles");
  t.for_each_local([&](int32_t x, int32_t y, T* o) {
    const int64_t r = perm.logical(y - R.y0), c = perm.logical(x - R.x0);
    for (int64_t i = 0; i < tr; ++i)
      for (int64_t j = 0; j < tc; ++j) {
        const int64_t gi = r * tr + i, gj = c * tc + j;
        o[i * tc + j] = gi < rows && gj < cols ? m[size_t(gi * cols + gj)] : T{};
      }
  });
  return t;
}

// Every PE's clock, row-major, on rank 0 (empty elsewhere). Collective.
std::vector<uint64_t> clocks(const Fabric& f) {
  std::vector<uint64_t> c;
  for (const PeCounters& p : f.gather_counters({0, 0, f.mesh().width, f.mesh().height})) c.push_back(p.clock_cycles);
  return c;
}

// The inverse, on rank 0 (empty elsewhere).
template <class T>
std::vector<T> from_tiles(const GemmSpec& s, const TileBuf<T>& t, int64_t rows, int64_t cols, int64_t tr, int64_t tc) {
  const std::vector<T> all = t.gather();
  if (all.empty()) return {};
  const LinePerm perm = gemm_line_perm(s);
  std::vector<T> m(size_t(rows * cols));
  for (int32_t py = 0; py < s.P; ++py)
    for (int32_t px = 0; px < s.P; ++px) {
      const int64_t r = perm.logical(py), c = perm.logical(px);
      const T* o = all.data() + (size_t(py) * size_t(s.P) + size_t(px)) * size_t(tr * tc);
      for (int64_t i = 0; i < tr; ++i)
        for (int64_t j = 0; j < tc; ++j) {
          const int64_t gi = r * tr + i, gj = c * tc + j;
          if (gi < rows && gj < cols) m[size_t(gi * cols + gj)] = o[i * tc + j];
        }
    }
  return m;
}

}  // namespace

// The tile entry points (operands already on the PEs, as a model's prefill holds them) give the
// host path's results bit for bit and the same clocks, for every algorithm, both variants, B from
// the host or as tiles, fp32 and ternary, on awkward shapes.
TEST(Gemm, TileEntryPointsEqualTheHostPathWithTheSameClocks) {
  const MachineParams mp = small_machine(7, 6);
  struct Shape { int64_t M, K, N; };
  for (GemmAlgo algo : {GemmAlgo::meshgemm, GemmAlgo::cannon, GemmAlgo::summa})
    for (bool tb : {false, true})
      for (int32_t P : {1, 2, 3, 5})
        for (Shape sh : {Shape{1, 1, 1}, Shape{7, 11, 13}, Shape{17, 3, 5}}) {
          GemmSpec s;
          s.algo = algo;
          s.P = P;
          s.origin = {1, 1};
          s.M = sh.M;
          s.K = sh.K;
          s.N = sh.N;
          s.transpose_b = tb;
          const int64_t mt = (s.M + P - 1) / P, kt = (s.K + P - 1) / P, nt = (s.N + P - 1) / P;
          const int64_t b_rows = tb ? s.N : s.K, b_cols = tb ? s.K : s.N;
          const std::string what = std::string(gemm_algo_name(algo)) + (tb ? " A.B^T" : " A.B") + " P=" +
                                   std::to_string(P) + " " + std::to_string(s.M) + "x" + std::to_string(s.K) + "x" +
                                   std::to_string(s.N);
          const auto A = random_matrix(s.M, s.K, 5u + uint32_t(P));
          const auto B = random_matrix(b_rows, b_cols, 29u);
          std::vector<float> want(size_t(s.M * s.N));
          gemm_f32_reference(s, A.data(), B.data(), want.data());
          std::vector<uint64_t> host_clock;
          {
            Fabric f(MPI_COMM_WORLD, mp);
            std::vector<float> C(size_t(s.M * s.N));
            gemm_f32(f, s, A.data(), B.data(), C.data());
            host_clock = clocks(f);
          }
          for (bool b_as_tiles : {false, true}) {
            Fabric f(MPI_COMM_WORLD, mp);
            TileBuf<float> a = to_tiles(f, s, A, s.M, s.K, mt, kt);
            GemmReport rep;
            TileBuf<float> c = [&] {
              if (!b_as_tiles) return gemm_f32_tiles(f, s, a, B.data(), &rep);
              TileBuf<float> b = to_tiles(f, s, B, b_rows, b_cols, tb ? nt : kt, tb ? kt : nt);
              return gemm_f32_tiles(f, s, a, b, &rep);
            }();
            EXPECT_EQ(clocks(f), host_clock) << what << (b_as_tiles ? ", B as tiles" : "");
            const std::vector<float> C = from_tiles(s, c, s.M, s.N, mt, nt);
            if (world_rank() == 0) {
              EXPECT_EQ(std::memcmp(C.data(), want.data(), C.size() * sizeof(float)), 0)
                  << what << (b_as_tiles ? ", B as tiles" : "") << ": not the reference's bits";
            }
          }
          // Ternary: int8 A as tiles, ternary B from the host; exact, same clocks as gemm_ternary.
          std::mt19937 g(uint32_t(P * 7 + sh.K));
          std::vector<int8_t> Ai(size_t(s.M * s.K)), Bi(size_t(s.K * s.N));
          for (auto& v : Ai) v = int8_t(int(g() % 255) - 127);
          for (auto& v : Bi) v = int8_t(int(g() % 3) - 1);
          std::vector<int32_t> Ch(size_t(s.M * s.N));
          std::vector<uint64_t> ternary_clock;
          {
            Fabric f(MPI_COMM_WORLD, mp);
            gemm_ternary(f, s, Ai.data(), Bi.data(), Ch.data());
            ternary_clock = clocks(f);
          }
          Fabric f(MPI_COMM_WORLD, mp);
          TileBuf<int8_t> a = to_tiles(f, s, Ai, s.M, s.K, mt, kt);
          const TileBuf<int32_t> c = gemm_ternary_tiles(f, s, a, Bi.data());
          EXPECT_EQ(clocks(f), ternary_clock) << what << ", ternary";
          const std::vector<int32_t> C = from_tiles(s, c, s.M, s.N, mt, nt);
          if (world_rank() == 0) {
            EXPECT_EQ(C, Ch) << what << ", ternary";
          }
        }
}

namespace {
GemmSpec spec_of(GemmAlgo algo, int32_t P, PeCoord origin, int64_t M, int64_t K, int64_t N, bool transpose_b) {
  GemmSpec s;
  s.algo = algo;
  s.P = P;
  s.origin = origin;
  s.M = M;
  s.K = K;
  s.N = N;
  s.transpose_b = transpose_b;
  return s;
}
}  // namespace

// The fabric keeps the skew and shift plans of a MeshGEMM for the next one on the region: a second
// product on the same fabric costs exactly what the first did, and every route entry is given back
// after each (a kept plan holds none between uses).
TEST(Gemm, ASecondProductReusesTheKeptPlansWithTheFirstOnesFigures) {
  const MachineParams mp = small_machine(8, 7);
  for (GemmAlgo algo : {GemmAlgo::meshgemm, GemmAlgo::cannon})
    for (bool tb : {false, true})
      for (int32_t P : {3, 4, 5}) {
        const GemmSpec s = spec_of(algo, P, {1, 1}, 9, 7, 11, tb);
        const auto A = random_matrix(s.M, s.K, 3), B = random_matrix(s.K, s.N, 4);
        Fabric f(MPI_COMM_WORLD, mp);
        std::vector<float> C1(size_t(s.M * s.N)), C2(C1.size());
        const GemmReport r1 = gemm_f32(f, s, A.data(), B.data(), C1.data());
        const std::vector<PeCounters> after1 = f.gather_counters(f.mesh().full());
        const GemmReport r2 = gemm_f32(f, s, A.data(), B.data(), C2.data());
        const std::vector<PeCounters> after2 = f.gather_counters(f.mesh().full());
        const std::string what = std::string(gemm_algo_name(algo)) + (tb ? " A B^T" : " A B") + " P " + std::to_string(P);
        expect_same_figures(r2, r1, what);
        EXPECT_EQ(r2.max_step_latency_cycles, r1.max_step_latency_cycles) << what;
        if (world_rank() == 0) {
          EXPECT_EQ(0, std::memcmp(C1.data(), C2.data(), C1.size() * sizeof(float))) << what;
          for (size_t i = 0; i < after2.size(); ++i) {
            EXPECT_EQ(after1[i].route_entries, 0u) << what << ": PE " << i << " holds routes after the first";
            EXPECT_EQ(after2[i].route_entries, 0u) << what << ": PE " << i << " holds routes after the second";
            // Every PE of the region did the same work twice.
            EXPECT_EQ(after2[i].bytes_sent, 2 * after1[i].bytes_sent) << what << ": PE " << i;
            EXPECT_EQ(after2[i].compute_cycles, 2 * after1[i].compute_cycles) << what << ": PE " << i;
          }
        }
      }
}

// Without a report the tile entry points skip the report's collectives and passes; every PE's
// figures stay those of a run that asks for one (two products in a row, so that the second starts
// from the uneven clocks the first leaves).
TEST(Gemm, TileEntryPointsWithoutAReportLeaveThePesAsAReportedRun) {
  const MachineParams mp = small_machine(8, 7);
  for (GemmAlgo algo : {GemmAlgo::meshgemm, GemmAlgo::cannon, GemmAlgo::summa})
    for (bool tb : {false, true})
      for (int32_t P : {1, 3, 4}) {
        const GemmSpec s = spec_of(algo, P, {2, 1}, 10, 7, 9, tb);
        const int64_t mt = (s.M + P - 1) / P, kt = (s.K + P - 1) / P;
        const auto A = random_matrix(s.M, s.K, 11), B = random_matrix(tb ? s.N : s.K, tb ? s.K : s.N, 12);
        auto run = [&](bool report) {
          Fabric f(MPI_COMM_WORLD, mp);
          std::vector<float> out;
          for (int k = 0; k < 2; ++k) {
            TileBuf<float> a(f, Region{s.origin.x, s.origin.y, P, P}, size_t(mt * kt), "A");
            a.for_each_local([&](int32_t x, int32_t y, float* t) {
              for (int64_t i = 0; i < mt * kt; ++i) t[i] = A[size_t((x * 31 + y * 7 + i) % int64_t(A.size()))];
            });
            GemmReport rep;
            TileBuf<float> c = gemm_f32_tiles(f, s, a, B.data(), report ? &rep : nullptr);
            const std::vector<float> all = c.gather();
            out.insert(out.end(), all.begin(), all.end());
          }
          return std::pair{f.gather_counters(f.mesh().full()), out};
        };
        const auto [with, c_with] = run(true);
        const auto [without, c_without] = run(false);
        const std::string what = std::string(gemm_algo_name(algo)) + (tb ? " A B^T" : " A B") + " P " + std::to_string(P);
        if (world_rank() == 0) {
          EXPECT_TRUE(with == without) << what << ": per-PE counters differ";
          EXPECT_EQ(0, std::memcmp(c_with.data(), c_without.data(), c_with.size() * sizeof(float))) << what;
        }
      }
}
