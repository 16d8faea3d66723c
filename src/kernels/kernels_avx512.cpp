// ISA level "avx512": AVX-512 F/BW/VL + AVX512-VNNI (this file is compiled with those -m flags and
// reached only through cpu_dispatch when the CPU has them).
// GCC 12 flags the deliberately undefined pass-through operand of some avx512fintrin.h wrappers
// (_mm512_extracti64x4_epi64, _mm512_cvtepi16_epi32) as uninitialised (GCC PR 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <cstdlib>
#include <new>
#include <vector>

#include "fp32_gemm_impl.hpp"
#include "isa_kernels.hpp"

namespace wm::kernels::detail {
namespace {

// ---------------------------------------------------------------- table build (one token)
// One pair (two groups, six activations) per iteration: the six int8 are widened to int16 and
// vpermw broadcasts a0 / a1 / a2 of group g to lanes 0-15 and of group g' to lanes 16-31; the
// entries d0 a0 + d1 a1 + d2 a2 (d in {-1, 0, 1}, exact in int16) are then split into low and
// high bytes and permuted into the pair layout of LutTables (each 16-byte run twice).
void lut_table_build_range_avx512(const std::int8_t* q, std::int64_t K, std::int64_t p_begin,
                                  std::int64_t p_end, std::uint8_t* table) {
  auto digits = [](const std::int8_t (&d)[16]) {
    alignas(64) std::int16_t v[32];
    for (int i = 0; i < 32; ++i) v[i] = d[i % 16];
    return _mm512_load_si512(v);
  };
  auto lanes = [](int g_elem, int g2_elem) {
    alignas(64) std::int16_t v[32];
    for (int i = 0; i < 32; ++i) v[i] = static_cast<std::int16_t>(i < 16 ? g_elem : g2_elem);
    return _mm512_load_si512(v);
  };
  const __m512i d0 = digits(kLutD0), d1 = digits(kLutD1), d2 = digits(kLutD2);
  const __m512i sel0 = lanes(0, 3), sel1 = lanes(1, 4), sel2 = lanes(2, 5);
  const __m512i low = _mm512_set1_epi16(0x00FF);
  const __m512i lo_order = _mm512_setr_epi64(0, 2, 0, 2, 4, 6, 4, 6);
  const __m512i hi_order = _mm512_setr_epi64(1, 3, 1, 3, 5, 7, 5, 7);
  const std::int64_t full_end = std::min(p_end, K / 6);  // pairs whose six activations all exist
  for (std::int64_t p = p_begin; p < full_end; ++p) {
    const __m128i a8 = _mm_maskz_loadu_epi8(0x3F, q + 6 * p);  // reads exactly 6 bytes
    const __m512i a = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(a8));
    const __m512i v = _mm512_add_epi16(
        _mm512_add_epi16(_mm512_mullo_epi16(_mm512_permutexvar_epi16(sel0, a), d0),
                         _mm512_mullo_epi16(_mm512_permutexvar_epi16(sel1, a), d1)),
        _mm512_mullo_epi16(_mm512_permutexvar_epi16(sel2, a), d2));
    // packus per 128-bit lane: qwords [lo g 0-7, hi g 0-7, lo g 8-15, hi g 8-15, same for g']
    const __m512i packed = _mm512_packus_epi16(_mm512_and_si512(v, low),
                                               _mm512_and_si512(_mm512_srli_epi16(v, 8), low));
    std::uint8_t* out = table + p * LutTables::kPairBytes;
    const __m512i lo = _mm512_permutexvar_epi64(lo_order, packed);
    const __m512i hi = _mm512_permutexvar_epi64(hi_order, packed);
    _mm512_storeu_si512(out, lo);
    _mm512_storeu_si512(out + LutTables::kHighOffset, hi);
  }
  for (std::int64_t p = std::max(p_begin, full_end); p < p_end; ++p) {
    lut_table_build_pair_scalar(q, K, p, table);
  }
}

void lut_table_build_avx512(const std::int8_t* q, std::int64_t K, std::uint8_t* table) {
  lut_table_build_range_avx512(q, K, 0, ((K + 2) / 3 + 1) / 2, table);
}

// ---------------------------------------------------------------- LUT GEMM
// Per record (64 rows x a pair of groups g, g'): one 64-byte load; its low nibbles are the byte
// indices of rows 0-31 (lanes 0-1: group g, lanes 2-3: group g'), its high nibbles those of rows
// 32-63. Two 64-byte table loads (low / high bytes, already laid out per lane by LutTables) serve
// both index vectors: four pshufb give every row's int16 entry T as two bytes. A sign mask (64 bits)
// turns a negative row's bytes into 0xFF - byte = byte ^ 0xFF, i.e. the int16 becomes
// ~T = -T - 1; neg_count adds the missing 1 per negative group at the end.
// unpacklo/hi rebuild the int16 values, summed in int16 for at most kLutI16AddsPerBlock pairs, then
// widened: lanes 0-1 (group g) and 2-3 (group g') hold the same rows and are added in int32.
// int16 sums of one record stream: [rows 0-31 | rows 32-63][unpack lo | hi].
struct LutSums512 {
  __m512i s00 = _mm512_setzero_si512(), s01 = _mm512_setzero_si512();
  __m512i s10 = _mm512_setzero_si512(), s11 = _mm512_setzero_si512();
};

// One record: see the comment above lut_gemm_i32_avx512. Takes and returns the sums by value
// (passing them by reference made GCC 12 copy every accumulator once per record).
// pf: where the stream will be kLutPrefetchBytes later (usually rec + kLutPrefetchBytes).
[[gnu::always_inline]] inline LutSums512 lut_record_avx512(const std::uint8_t* rec,
                                                           const std::uint8_t* tb, LutSums512 s,
                                                           const std::uint8_t* pf) {
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  // A record is 80 bytes, so one prefetch per record would skip every fifth cache line.
  _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(pf) + 64, _MM_HINT_T0);
  const __m512i nib = _mm512_loadu_si512(rec);
  const __m512i idx0 = _mm512_and_si512(nib, low4);
  const __m512i idx1 = _mm512_and_si512(_mm512_srli_epi16(nib, 4), low4);
  const __m512i tl = _mm512_loadu_si512(tb);
  const __m512i th = _mm512_loadu_si512(tb + LutTables::kHighOffset);
  std::uint64_t sign_bits[2];
  std::memcpy(sign_bits, rec + TernaryMatrixLut::kSignOffset, sizeof(sign_bits));
  // On negative rows (mask bit set) each byte b becomes 0xFF - b = ~b, one merge-masked subtract
  // per vector (expanding the masks to 0xFF bytes and XOR-ing costs two more instructions per
  // record; results/PERFORMANCE.md has the comparison).
  const __mmask64 k0 = _cvtu64_mask64(sign_bits[0]), k1 = _cvtu64_mask64(sign_bits[1]);
  const __m512i ones = _mm512_set1_epi8(-1);
  auto flip = [&](__m512i v, __mmask64 k) { return _mm512_mask_sub_epi8(v, k, ones, v); };
  const __m512i lo0 = flip(_mm512_shuffle_epi8(tl, idx0), k0);
  const __m512i hi0 = flip(_mm512_shuffle_epi8(th, idx0), k0);
  const __m512i lo1 = flip(_mm512_shuffle_epi8(tl, idx1), k1);
  const __m512i hi1 = flip(_mm512_shuffle_epi8(th, idx1), k1);
  s.s00 = _mm512_add_epi16(s.s00, _mm512_unpacklo_epi8(lo0, hi0));
  s.s01 = _mm512_add_epi16(s.s01, _mm512_unpackhi_epi8(lo0, hi0));
  s.s10 = _mm512_add_epi16(s.s10, _mm512_unpacklo_epi8(lo1, hi1));
  s.s11 = _mm512_add_epi16(s.s11, _mm512_unpackhi_epi8(lo1, hi1));
  return s;
}

// Widens one stream's int16 sums into the tile's int32 accumulators a (64, position order).
// s00 lanes are [g rows 0-7 | g rows 16-23 | g' rows 0-7 | g' rows 16-23]: the halves are added.
inline void lut_widen_avx512(const LutSums512& s, std::int32_t* a) {
  const __m512i sums[4] = {s.s00, s.s01, s.s10, s.s11};
  for (int q = 0; q < 4; ++q) {
    const __m512i both =
        _mm512_add_epi32(_mm512_cvtepi16_epi32(_mm512_castsi512_si256(sums[q])),
                         _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(sums[q], 1)));
    __m512i* dst = reinterpret_cast<__m512i*>(a + 16 * q);
    _mm512_storeu_si512(dst, _mm512_add_epi32(_mm512_loadu_si512(dst), both));
  }
}

// Adds pairs [a, b) of one tile into acc (64, position order). The range is read as two record
// streams at once (its first and second half): one stream per thread keeps too few cache misses in
// flight to reach DRAM bandwidth; two interleaved streams double the misses in flight.
inline void lut_tile_pairs_avx512(const std::uint8_t* tile, const std::uint8_t* tab, std::int64_t a,
                                  std::int64_t b, std::int32_t* acc) {
  constexpr std::int64_t kRec = TernaryMatrixLut::kRecordBytes, kPb = LutTables::kPairBytes;
  const std::int64_t h = (b - a) / 2;
  for (std::int64_t p0 = a; p0 < a + h; p0 += kLutI16AddsPerBlock) {
    const std::int64_t p1 = std::min(a + h, p0 + kLutI16AddsPerBlock);
    LutSums512 first, second;
    for (std::int64_t p = p0; p < p1; ++p) {
      first = lut_record_avx512(tile + p * kRec, tab + p * kPb, first, tile + p * kRec + kLutPrefetchBytes);
      second = lut_record_avx512(tile + (p + h) * kRec, tab + (p + h) * kPb, second,
                                 tile + (p + h) * kRec + kLutPrefetchBytes);
    }
    lut_widen_avx512(first, acc);
    lut_widen_avx512(second, acc);
  }
  if ((b - a) % 2 == 1) {  // the record left over by the two equal halves
    LutSums512 last;
    last = lut_record_avx512(tile + (b - 1) * kRec, tab + (b - 1) * kPb, last,
                             tile + (b - 1) * kRec + kLutPrefetchBytes);
    lut_widen_avx512(last, acc);
  }
}

// Pairs [a, b) of two tiles at once, one record of each per step (they share the table loads of
// the pair). Each stream goes on with the same pairs of the tile after its own, so near the end of
// the range the prefetch skips the other pairs (the gap) to where the stream will really be.
inline void lut_two_tiles_avx512(const std::uint8_t* tile_a, const std::uint8_t* tile_b,
                                 const std::uint8_t* tab, std::int64_t a, std::int64_t b,
                                 std::int64_t P, std::int32_t* acc_a, std::int32_t* acc_b) {
  constexpr std::int64_t kRec = TernaryMatrixLut::kRecordBytes, kPb = LutTables::kPairBytes;
  constexpr std::int64_t kAhead = (kLutPrefetchBytes + kRec - 1) / kRec;  // records
  const std::int64_t gap = (P - (b - a)) * kRec;
  for (std::int64_t p0 = a; p0 < b; p0 += kLutI16AddsPerBlock) {
    const std::int64_t p1 = std::min(b, p0 + kLutI16AddsPerBlock);
    LutSums512 sa, sb;
    for (std::int64_t p = p0; p < p1; ++p) {
      const std::int64_t ahead = (p + kAhead) * kRec + (p + kAhead >= b ? gap : 0);
      sa = lut_record_avx512(tile_a + p * kRec, tab + p * kPb, sa, tile_a + ahead);
      sb = lut_record_avx512(tile_b + p * kRec, tab + p * kPb, sb, tile_b + ahead);
    }
    lut_widen_avx512(sa, acc_a);
    lut_widen_avx512(sb, acc_b);
  }
}

inline void lut_store_tile(std::int64_t ti, const std::int32_t* acc, const std::int32_t* neg,
                           std::int64_t M, std::int32_t* y) {
  for (int p = 0; p < TernaryMatrixLut::kTileRows; ++p) {
    const std::int64_t row = ti * TernaryMatrixLut::kTileRows + lut_pos_row(p);
    if (row < M) y[row] = acc[p] + neg[row];
  }
}

// Decode (N = 1): thread j of nt owns tiles [T j / nt, T (j+1) / nt) and reads them as two record
// streams, the first and the second half of its tiles, one tile of each at a time. Tiles are
// contiguous, so each stream runs front to back through its half, and the software prefetch ahead
// of a stream lands in the stream's own next tile. (Two halves of one tile instead left the start
// of every second half without a prefetch: a cold 8 KiB in each 55 KiB tile at K = 4096.)
// This is thread j's share; called inside a parallel region (or with j = 0, nt = 1).
void lut_gemv_rows_avx512(const TernaryMatrixLut& w, const std::uint8_t* tab, std::int32_t* y, int j,
                          int nt) {
  constexpr std::int64_t kRows = TernaryMatrixLut::kTileRows;
  const std::int64_t M = w.rows(), P = w.pairs(), T = w.tiles();
  const std::int32_t* neg = w.neg_count();
  const std::int64_t t0 = T * j / nt, t1 = T * (j + 1) / nt, h = (t1 - t0) / 2;
  for (std::int64_t i = 0; i < h; ++i) {
    alignas(64) std::int32_t acc_a[kRows] = {}, acc_b[kRows] = {};  // position order
    lut_two_tiles_avx512(w.tile(t0 + i), w.tile(t0 + h + i), tab, 0, P, P, acc_a, acc_b);
    lut_store_tile(t0 + i, acc_a, neg, M, y);
    lut_store_tile(t0 + h + i, acc_b, neg, M, y);
  }
  if ((t1 - t0) % 2 == 1) {  // an odd tile left: its two halves are the streams
    alignas(64) std::int32_t acc[kRows] = {};
    lut_tile_pairs_avx512(w.tile(t1 - 1), tab, 0, P, acc);
    lut_store_tile(t1 - 1, acc, neg, M, y);
  }
}

// Small matrices stay on the calling thread: waking a team (a parallel region with one barrier
// costs microseconds) costs more than they do. The team starts at 2^20 record rows (1.25 MiB of
// records), about where 2 threads overtake 1 in `bench kernel` (results/PERFORMANCE.md).
bool lut_gemv_parallel(const TernaryMatrixLut& w) { return w.rows() * w.pairs() >= (1 << 20); }

void lut_gemv_i32_avx512(const TernaryMatrixLut& w, const LutTables& t, std::int32_t* y) {
#pragma omp parallel if (lut_gemv_parallel(w))
  lut_gemv_rows_avx512(w, t.token(0), y, omp_get_thread_num(), omp_get_num_threads());
}

// Decode with the table build fused in (see lut_gemv_i32 with ActivationsQ8). Either
//  - rows: every thread builds the whole table for itself and runs its tiles against it (as
//    lut_gemv_i32_avx512), or
//  - K: thread j of nt builds the tables of pairs [P j / nt, P (j+1) / nt), runs them against
//    every tile and leaves int32 partial sums per row, which are added after a barrier (integers:
//    exact, and the same result for any nt).
// The K split reads only tables the thread built itself but cuts every tile into one chunk per
// thread, so its streams jump from chunk to chunk (the prefetch follows the jumps, see
// lut_two_tiles_avx512). The row split is faster from DRAM on every large shape and as fast from
// cache (results/PERFORMANCE.md), so the K split is kept only for matrices with too few tiles to
// give every thread two streams. In the row split every thread builds the whole table for itself:
// a few hundred more pair builds than sharing one table, but no barrier and no table read from
// memory.
// A table buffer of the calling thread's own, grown as needed and kept for the thread's life.
std::uint8_t* private_table(std::int64_t bytes) {
  struct Buf {
    std::uint8_t* p = nullptr;
    std::int64_t n = 0;
    ~Buf() { std::free(p); }
  };
  thread_local Buf b;
  if (b.n < bytes) {
    std::free(b.p);
    b.n = (bytes + 63) / 64 * 64;
    b.p = static_cast<std::uint8_t*>(std::aligned_alloc(64, static_cast<std::size_t>(b.n)));
    if (!b.p) throw std::bad_alloc();
  }
  return b.p;
}

void lut_gemv_fused_avx512(const TernaryMatrixLut& w, const ActivationsQ8& a, LutTables& t,
                           std::int32_t* y) {
  constexpr std::int64_t kRows = TernaryMatrixLut::kTileRows;
  const std::int64_t M = w.rows(), P = w.pairs(), T = w.tiles(), K = w.cols();
  const std::int32_t* neg = w.neg_count();
  std::uint8_t* tab = t.token(0);
  const int max_threads = omp_get_max_threads();
  if (max_threads == 1 || !lut_gemv_parallel(w)) {
    lut_table_build_avx512(a.token(0), K, tab);
    lut_gemv_rows_avx512(w, tab, y, 0, 1);
    return;
  }
  if (T >= 2 * max_threads) {
#pragma omp parallel
    {
      const int j = omp_get_thread_num(), nt = omp_get_num_threads();
      // Thread 0 builds the whole table into t (which keeps it, as documented), every other
      // thread into a buffer of its own. No line of a table is shared between cores, so there is
      // no barrier, the builder's stores hit its own cache, and the reads stay there.
      std::uint8_t* mine = j == 0 ? tab : private_table(P * LutTables::kPairBytes);
      lut_table_build_range_avx512(a.token(0), K, 0, P, mine);
      lut_gemv_rows_avx512(w, mine, y, j, nt);
    }
    return;
  }
  std::vector<std::int32_t> partial(static_cast<std::size_t>(max_threads * T * kRows));  // (threads, T, 64)
  int team = 1;
#pragma omp parallel
  {
    const int j = omp_get_thread_num(), nt = omp_get_num_threads();
#pragma omp single
    team = nt;
    const std::int64_t q0 = P * j / nt, q1 = P * (j + 1) / nt;
    lut_table_build_range_avx512(a.token(0), K, q0, q1, tab);
    std::int32_t* part = partial.data() + static_cast<std::int64_t>(j) * T * kRows;
    std::fill(part, part + T * kRows, 0);
    const std::int64_t h = T / 2;  // streams: tiles [0, h) and [h, 2h), this thread's pairs of each
    for (std::int64_t ti = 0; ti < h; ++ti) {
      lut_two_tiles_avx512(w.tile(ti), w.tile(ti + h), tab, q0, q1, P, part + ti * kRows,
                           part + (ti + h) * kRows);
    }
    if (T % 2 == 1) lut_tile_pairs_avx512(w.tile(T - 1), tab, q0, q1, part + (T - 1) * kRows);
#pragma omp barrier
#pragma omp for schedule(static)
    for (std::int64_t ti = 0; ti < T; ++ti) {
      for (int p = 0; p < kRows; ++p) {
        const std::int64_t row = ti * kRows + lut_pos_row(p);
        if (row >= M) continue;
        std::int32_t sum = neg[row];
        for (int jj = 0; jj < team; ++jj) sum += partial[static_cast<std::size_t>((jj * T + ti) * kRows + p)];
        y[row] = sum;
      }
    }
  }
}

// Prefill (N > 1): a thread takes kTilesPerGemmStep tiles (256 rows) at a time, so each 64-pair
// block of a token's tables (8 KiB) is read into L1 once and used by four tiles instead of one;
// the weights of the step (4 x 5 KiB) stay in L1 while the tokens loop.
constexpr std::int64_t kTilesPerGemmStep = 4;

void lut_gemm_i32_avx512(const TernaryMatrixLut& w, const LutTables& t, std::int32_t* y,
                         std::int64_t ldy) {
  constexpr std::int64_t kRows = TernaryMatrixLut::kTileRows, kRec = TernaryMatrixLut::kRecordBytes;
  const std::int64_t M = w.rows(), P = w.pairs(), N = t.tokens(), T = w.tiles();
  if (N == 1 && ldy >= M) {
    lut_gemv_i32_avx512(w, t, y);
    return;
  }
  const std::int64_t R = kTilesPerGemmStep;
  const std::int64_t steps = (T + R - 1) / R;
  const std::int32_t* neg = w.neg_count();
#pragma omp parallel
  {
    std::vector<std::int32_t> acc(static_cast<std::size_t>(N * R * kRows));  // (N, R, 64) position order
#pragma omp for schedule(static)
    for (std::int64_t step = 0; step < steps; ++step) {
      const std::int64_t t0 = step * R, t1 = std::min(T, t0 + R);
      std::fill(acc.begin(), acc.end(), 0);
      for (std::int64_t p0 = 0; p0 < P; p0 += kLutI16AddsPerBlock) {
        const std::int64_t p1 = std::min(P, p0 + kLutI16AddsPerBlock);
        for (std::int64_t n = 0; n < N; ++n) {
          const std::uint8_t* tab = t.token(n);
          for (std::int64_t ti = t0; ti < t1; ++ti) {
            const std::uint8_t* tile = w.tile(ti);
            LutSums512 sums;
            for (std::int64_t p = p0; p < p1; ++p) {
              sums = lut_record_avx512(tile + p * kRec, tab + p * LutTables::kPairBytes, sums,
                                       tile + p * kRec + kLutPrefetchBytes);
            }
            lut_widen_avx512(sums, acc.data() + (n * R + (ti - t0)) * kRows);
          }
        }
      }
      for (std::int64_t n = 0; n < N; ++n) {
        for (std::int64_t ti = t0; ti < t1; ++ti) {
          const std::int32_t* a = acc.data() + (n * R + (ti - t0)) * kRows;
          for (int p = 0; p < kRows; ++p) {
            const std::int64_t row = ti * kRows + lut_pos_row(p);
            if (row < M) y[n * ldy + row] = a[p] + neg[row];
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------- 2-bit multiply-add GEMM
// kR rows x kT tokens per call; every 64-byte block of a row is loaded and split into its four code
// vectors once, then used against each token's four 64-byte runs of q. vpdpbusd multiplies u8 codes
// (0..2) by s8 activations and adds groups of four products straight into int32: no intermediate
// int16, so nothing to bound. With one token, two accumulators per row halve the dependency chain.
template <int kR, int kT>
void mad2b_tile_avx512(const TernaryMatrix2b& w, const ActivationsQ8& a, std::int64_t i0,
                       std::int64_t n0, std::int32_t* y, std::int64_t ldy) {
  constexpr int kAcc = kT == 1 ? 2 : 1;
  const std::int64_t blocks = w.padded_cols() / TernaryMatrix2b::kBlockWeights;
  const __m512i m3 = _mm512_set1_epi8(3);
  __m512i acc[kR][kT][kAcc];
  for (int r = 0; r < kR; ++r)
    for (int t = 0; t < kT; ++t)
      for (int c = 0; c < kAcc; ++c) acc[r][t][c] = _mm512_setzero_si512();
  const std::uint8_t* rows[kR];
  for (int r = 0; r < kR; ++r) rows[r] = w.row(i0 + r);
  const std::int8_t* qs[kT];
  for (int t = 0; t < kT; ++t) qs[t] = a.token(n0 + t);
  for (std::int64_t b = 0; b < blocks; ++b) {
    for (int r = 0; r < kR; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(rows[r] + b * 64) + kMad2bPrefetchBytes, _MM_HINT_T0);
      const __m512i wb = _mm512_loadu_si512(rows[r] + b * 64);
      const __m512i c0 = _mm512_and_si512(wb, m3);
      const __m512i c1 = _mm512_and_si512(_mm512_srli_epi16(wb, 2), m3);
      const __m512i c2 = _mm512_and_si512(_mm512_srli_epi16(wb, 4), m3);
      const __m512i c3 = _mm512_and_si512(_mm512_srli_epi16(wb, 6), m3);
      for (int t = 0; t < kT; ++t) {
        const std::int8_t* qb = qs[t] + b * 256;
        acc[r][t][0] = _mm512_dpbusd_epi32(acc[r][t][0], c0, _mm512_loadu_si512(qb));
        acc[r][t][kAcc - 1] = _mm512_dpbusd_epi32(acc[r][t][kAcc - 1], c1, _mm512_loadu_si512(qb + 64));
        acc[r][t][0] = _mm512_dpbusd_epi32(acc[r][t][0], c2, _mm512_loadu_si512(qb + 128));
        acc[r][t][kAcc - 1] = _mm512_dpbusd_epi32(acc[r][t][kAcc - 1], c3, _mm512_loadu_si512(qb + 192));
      }
    }
  }
  for (int r = 0; r < kR; ++r) {
    for (int t = 0; t < kT; ++t) {
      __m512i s = acc[r][t][0];
      if constexpr (kAcc == 2) s = _mm512_add_epi32(s, acc[r][t][1]);
      y[(n0 + t) * ldy + i0 + r] = _mm512_reduce_add_epi32(s) - a.sum(n0 + t);
    }
  }
}

void mad2b_gemm_i32_avx512(const TernaryMatrix2b& w, const ActivationsQ8& a, std::int32_t* y,
                           std::int64_t ldy) {
  mad2b_for_tiles<4>(w.rows(), a.tokens(), [&]<int kR, int kT>(std::int64_t i0, std::int64_t n0) {
    mad2b_tile_avx512<kR, kT>(w, a, i0, n0, y, ldy);
  });
}

void gemm_f32_avx512(std::int64_t M, std::int64_t N, std::int64_t K, const float* A,
                     std::int64_t lda, const float* B, std::int64_t ldb, bool b_trans, float* C,
                     std::int64_t ldc, bool accumulate) {
  gemm_f32_tiled<16, 8>(M, N, K, A, lda, B, ldb, b_trans, C, ldc, accumulate);
}

}  // namespace

const IsaKernels& isa_kernels_avx512() {
  static const IsaKernels k{lut_table_build_avx512, lut_gemm_i32_avx512, mad2b_gemm_i32_avx512,
                            lut_gemv_fused_avx512, gemm_f32_avx512};
  return k;
}

}  // namespace wm::kernels::detail
