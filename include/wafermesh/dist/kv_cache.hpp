#pragma once
// The KV cache of a transformer layer during decode, and its grouped-query attention, on a P x P
// region (DESIGN.md §4). One type serves the model (one per layer) and `bench kv`. Vectors arrive
// in the decode layout: split along X (column c holds block c) and replicated along Y — the output
// layout of a GEMV that reduces along Y.
//
// Layout. kv_dim = kv_heads * head_dim is cut into P blocks of mtk = ceil(kv_dim / P) (zero-padded);
// column c holds kv elements [c*mtk, (c+1)*mtk). A query has heads = g * kv_heads heads; it arrives
// as g vectors of kv_dim, q_j[kvh*head_dim + d] = q[(kvh*g + j)*head_dim + d], so that query
// head (kvh, j) meets its key head kvh on the same PEs. A PE's q tile is (g, mtk): q_0 block c, ...,
// q_{g-1} block c. The attention output comes back in the same (g, mtk) form. (The model lays out
// W_q's rows and W_o's columns to match: no data moves to line up heads.)
//
// Cache. Tokens live along Y: row r holds logical tokens [start_r, start_r + n_r), older rows
// above, every PE of the row its column's block of each token's K and V (2 * mtk floats per token).
//   concat  every appended token goes to the bottom row, which fills first.
//   shift   rows stay within one token of each other: when token T arrives the row T mod P grows,
//           every row below it passes its oldest token one row up (one hop, all rows at once), and
//           the new token enters the bottom row. Until the bottom row holds a token (the first P
//           tokens), a token goes straight to the growing row.
// A token costs layers * 2 * mtk * 4 bytes of SRAM on each PE of its row (`layers` identical layer
// caches may share the region: the cache holds and moves the data of one and charges the SRAM of
// all); an append that overflows a PE is a LimitError naming the PE, with the cache unchanged.
//
// attention(q):
//   1. scores: every PE dots q_j with its tokens' key blocks, head by head (partial over its
//      column's dims), and the partials are summed along each row (allreduce along X);
//      score /= sqrt(head_dim).
//   2. softmax over all tokens: per head the max and then the sum of exp(score - max) are
//      allreduced along Y (each row contributes its own tokens); a_t = exp(score_t - max) / sum.
//   3. output: every PE sums a_t * v_t over its row's tokens (in token order), and the partials are
//      summed along each column (allreduce along Y).
// Summation orders follow the virtual PEs (dims within a block, then the allreduce tree; tokens
// within a row, then the tree), so results are bit-identical for every rank count. They depend on
// how tokens are spread over rows, so concat and shift may differ in the last bits.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "wafermesh/dist/allreduce.hpp"
#include "wafermesh/noc/fabric.hpp"
#include "wafermesh/noc/tile_buf.hpp"

namespace wm::dist {

enum class KvPolicy { concat, shift };
KvPolicy kv_policy_from_name(const std::string& name);  // UsageError listing the names
const char* kv_policy_name(KvPolicy p);

struct KvSpec {
  KvPolicy policy = KvPolicy::shift;
  int32_t P = 1;
  PeCoord origin{0, 0};
  int64_t heads = 1, kv_heads = 1, head_dim = 1;
  int64_t layers = 1;       // identical layer caches sharing the region (SRAM multiplier)
  AllreduceSpec allreduce;  // for the score, softmax and output allreduces
  int64_t kv_dim() const { return kv_heads * head_dim; }
  int64_t group() const { return heads / kv_heads; }
  int64_t mtk() const { return (kv_dim() + P - 1) / P; }
};

// Cycles of one attention(), from the region's common start.
struct AttentionReport {
  uint64_t score_cycles = 0;      // partial scores and their allreduce
  uint64_t softmax_cycles = 0;    // max, exp, sum
  uint64_t output_cycles = 0;     // weighted values and their allreduce
};

// The tokens one PE holds, oldest first: appended at the back, passed on from the front, in
// amortised constant time (the front is compacted once the dead part outgrows the live one).
class TokenQueue {
 public:
  const float* data() const { return buf_.data() + start_; }
  size_t size() const { return buf_.size() - start_; }  // floats
  void push(const float* v, size_t n) { buf_.insert(buf_.end(), v, v + n); }
  void pop(size_t n) {
    start_ += n;
    if (start_ > size()) {
      buf_.erase(buf_.begin(), buf_.begin() + std::ptrdiff_t(start_));
      start_ = 0;
    }
  }

 private:
  std::vector<float> buf_;
  size_t start_ = 0;
};

class KvCache {
 public:
  KvCache(Fabric& f, const KvSpec& s);  // UsageError if the spec cannot run on the mesh
  ~KvCache();
  // Appends one token: k, v tiles of mtk per PE in the decode layout (split along X). With
  // `cycles`, also the virtual cycles the append took on the region (one more collective).
  // Collective.
  void append(const TileBuf<float>& k, const TileBuf<float>& v, uint64_t* cycles = nullptr);
  // The row (0 .. P-1 from the top of the region) whose PEs append() reads the next token's k and
  // v tiles from: the only row whose tiles a caller must fill.
  int32_t entry_row() const;
  // Places n prompt tokens from the host, spread evenly over the rows (first rows one more), in an
  // empty cache: SRAM is charged (all rows or none), no clock moves. keys, values: (n, kv_dim) on
  // every rank. Collective.
  void prefill(const float* keys, const float* values, int64_t n);
  // The same, in the layout n append()s leave (rows_after): a cache filled elsewhere continues as
  // if it had been filled here token by token. Collective.
  void load(const float* keys, const float* values, int64_t n);
  // Every token's key and value, (tokens, kv_dim) each, on every rank, bit for bit. Collective.
  void read_tokens(std::vector<float>& keys, std::vector<float>& values) const;
  // Tokens per row, top to bottom, after n appends under policy p on P rows (row r holds the
  // tokens after those of rows 0 .. r-1).
  static std::vector<int64_t> rows_after(KvPolicy p, int32_t P, int64_t n);
  // q: tiles of (g, mtk) per PE. Returns the output tiles, (g, mtk) per PE, same layout. Collective.
  TileBuf<float> attention(const TileBuf<float>& q, AttentionReport* rep = nullptr);
  int64_t tokens() const;
  std::vector<int64_t> row_tokens() const;  // occupancy per row, top to bottom
  uint64_t bytes_per_token_per_pe() const;
  // Tokens the fullest row may hold for `context` tokens in all (the SRAM to reserve).
  static int64_t row_capacity(KvPolicy p, int32_t P, int64_t context);

 private:
  void place_rows(const float* keys, const float* values, const std::vector<int64_t>& rows);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One process, same order: queries (tokens, heads*head_dim) after RoPE, keys/values (tokens,
// kv_dim); returns the attention output of the last query over tokens 0..n-1 with the cache filled
// token by token under `policy`, in the summation order of KvCache::attention. (heads*head_dim).
std::vector<float> kv_attention_reference(const KvSpec& s, const float* q, const float* keys, const float* values,
                                          int64_t n);

}  // namespace wm::dist
