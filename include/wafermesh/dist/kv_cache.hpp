#pragma once
// The decode KV cache on a P x P region (DESIGN.md §4). Tokens live along Y: every token's K and V
// vectors (kv_dim each) are cut into P slices of ceil(kv_dim / P) along X, so one row of PEs holds
// a token. Row r holds logical tokens [start_r, start_r + n_r), older rows above.
//
//   concat  prefill spreads the prompt evenly over the rows; every decoded token goes to the bottom
//           row, which holds the tail. That row fills first and takes all the new work.
//   shift   rows stay balanced (occupancies within one): when token T arrives, the row g = T mod P
//           grows; each row below it passes its oldest token to the row above (one hop, all rows at
//           once) and the new token enters the bottom row. Physical order stays logical order, and
//           the longest context grows by about the number of rows.
//
// Every token costs layers x 2 x slice x 4 bytes of SRAM on each PE of its row (the cache stands
// for `layers` identical layer caches; it keeps the data of one and charges SRAM for all). The
// first append that would overflow a PE is a LimitError naming the PE; the cache is unchanged.
//
// attention(q) computes softmax(q . k_t / sqrt(kv_dim)) . v_t over every token t, as one head of
// dimension kv_dim: partial dot products on every PE, an allreduce along each row, then a chain down
// the rows carrying the running max, sum and output slice (online softmax) in logical token order.
// The order depends on nothing but the tokens, so both policies (and every rank count) give
// bit-identical results.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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
  int64_t kv_dim = 1;  // elements of one token's K (and of its V)
  int64_t layers = 1;  // layer caches of this shape sharing the region (SRAM multiplier)
};

class KvCache {
 public:
  KvCache(Fabric& f, const KvSpec& s);  // collective; UsageError if the region does not fit
  ~KvCache();
  // Prompt tokens, spread evenly over the rows (first rows one more). keys, values: (n, kv_dim)
  // on every rank. Collective.
  void prefill(const float* keys, const float* values, int64_t n);
  // One decoded token (kv_dim each, on every rank). Returns the virtual cycles the append took on
  // the region. Collective.
  uint64_t append(const float* key, const float* value);
  int64_t tokens() const;
  std::vector<int64_t> row_tokens() const;  // occupancy per row, top to bottom
  uint64_t bytes_per_token_per_pe() const;
  // Attention output (kv_dim) on rank 0 (empty elsewhere). Collective.
  std::vector<float> attention(const float* q);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

namespace detail {
// The shift policy's step, shared by the KV caches: rows grow+1 .. P-1 of region R pass their
// oldest token (K then V, `slice` floats each) one row up, all at once, and rows grow .. P-2 append
// what they receive. k, v: the tokens of each local PE of R (row-major over R and this rank's
// block), `slice` floats per token. out, in: tiles of 2 * slice over R. plans: the step for each
// value of grow, built at its first use and kept (their routes are held only while they run; P
// entries, empty at first). Collective.
void shift_rows_up(Fabric& f, const Region& R, int32_t grow, int64_t slice, std::vector<std::vector<float>>& k,
                   std::vector<std::vector<float>>& v, TileBuf<float>& out, TileBuf<float>& in,
                   std::vector<std::optional<TransferPlan>>& plans);
}  // namespace detail

// One process: the same online softmax in token order. keys, values: (n, kv_dim).
std::vector<float> kv_attention_reference(const float* q, const float* keys, const float* values, int64_t n,
                                          int64_t kv_dim, int32_t P);

}  // namespace wm::dist
