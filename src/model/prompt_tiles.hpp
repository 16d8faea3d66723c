#pragma once
// The prompt's activations on the mesh during prefill (internal to src/model).
//
// Layout (DESIGN.md §4, "Prefill layout"): a matrix of the prompt, rows = the n tokens, columns
// = features, is cut into P x P blocks of row_block = ceil(n / P) tokens by col_block features,
// and logical block (r, c) sits on PE (x0 + perm.phys(c), y0 + perm.phys(r)) with the MeshGEMM's
// interleaved line permutation (dist::gemm_line_perm): the tokens run along Y, the features along
// X, and every MeshGEMM's output is in the layout its next MeshGEMM reads. A PE's tile holds its
// row_block tokens one after another, col_block features each (zero beyond the matrix). A rank
// holds the tiles of its own PEs only.
//   Example: P = 4 (interleaved: logical 0 1 2 3 at physical 0 2 3 1), n = 9 tokens (row_block
//   3), dim = 64 (col_block 16): tokens 3..5 (logical row 1) sit on the region's third row of
//   PEs, features 48..63 (logical column 3) on its second column.
//
// The moves here change which PEs hold which elements; each is a fabric step (or a few), charged
// as the wafer would pay it. Packing elements for a transfer and unpacking them are memory moves
// inside a PE (free, as the wafer's cores stream from and into their memory); the host's staging
// tiles for them are not SRAM.
#include <cstdint>
#include <utility>
#include <memory>
#include <string>
#include <vector>

#include "wafermesh/noc/line_plans.hpp"
#include "wafermesh/noc/tile_buf.hpp"

namespace wm::model {

struct PromptLayout {
  Region R;
  LinePerm perm;
  int64_t tokens = 0;     // n
  int64_t row_block = 0;  // ceil(n / P): tokens per row of PEs
  PromptLayout(const Region& region, LinePerm line_perm, int64_t n);
  int32_t side() const { return R.w; }
  int32_t row_of(int32_t y) const { return perm.logical(y - R.y0); }  // logical row of physical y
  int32_t col_of(int32_t x) const { return perm.logical(x - R.x0); }  // logical column of physical x
  int32_t x_of(int32_t col) const { return R.x0 + perm.phys(col); }
  int32_t y_of(int32_t row) const { return R.y0 + perm.phys(row); }
  // Token of row i of the tiles of physical row y (may be >= tokens: padding).
  int64_t token(int32_t y, int64_t i) const { return int64_t(row_of(y)) * row_block + i; }
};

// A prompt matrix's tiles with the width of their rows.
struct PromptTiles {
  std::unique_ptr<TileBuf<float>> tiles;
  int64_t width = 0;  // col_block
  PromptTiles() = default;
  PromptTiles(Fabric& f, const PromptLayout& lay, int64_t width, const std::string& name);
  TileBuf<float>& buf() const { return *tiles; }
  float* tile(int32_t x, int32_t y) const { return tiles->tile(x, y); }
  explicit operator bool() const { return bool(tiles); }
};

// Route entries the moves here may add at any PE at once: a quarter of a router's table, beside
// the routes the resident decode path (allreduces, GEMVs, KV cache) keeps configured.
int32_t move_route_budget(const Fabric& f);

// Elements from_off .. from_off + len of every tile row at logical column from_col go to
// to_off .. of the same rows at logical column to_col (the same in every row of PEs).
struct ColumnPiece {
  int32_t from_col = 0, to_col = 0;
  int64_t from_off = 0, to_off = 0, len = 0;
};

// Moves the pieces from `src` into `dst` (both in `lay`): pieces that stay on their column are
// copied on the PE; the others travel along the rows in steps in which a PE sends at most one
// piece and receives at most one, all pieces of a step of one length (the step's tile size), each
// step in route_rounds. Collective.
void move_columns(Fabric& f, const PromptLayout& lay, const PromptTiles& src, PromptTiles& dst,
                  const std::vector<ColumnPiece>& pieces, const std::string& what);

// Every PE's tile of region A to the PE at the same place in region B (the next region of the
// snake: same x0 or same y0). The tiles travel along the lines (rows or columns) joining the
// regions over pass-through routes, all lines at once, in rounds of move_route_budget tiles per
// line (consecutive ones: no PE is touched by more of a round's streams). Collective.
class PromptHandoff {
 public:
  PromptHandoff(Fabric& f, const Region& A, const Region& B, size_t tile_bytes, const std::string& what);
  void run(const TileBuf<float>& from, TileBuf<float>& to);

 private:
  Fabric& f_;
  std::vector<TransferPlan> rounds_;
};

// The plans of send_token_row's last call, kept for the next: consecutive tokens of a prompt on one
// tile row go to the same cache row alike. Only the last key's plans are kept (the host's memory
// stays O(side)); a kept plan gives its route entries back after every use.
struct TokenRowPlans {
  std::pair<int32_t, int64_t> key{-1, -1};  // (tile row, the caller's name for the destinations)
  std::vector<TransferPlan> rounds;
};

// Row `row` (a token) of the tiles at logical tile row `tile_row` of each matrix of `srcs`, side
// by side, from logical column c to PE dests[c] of `out` (whose tiles hold the widths of `srcs`
// together; `out` may cover only the destinations): one transfer per column, in route_rounds.
// With `keep`, the plans are kept there under (tile_row, dest_key) until a call with another key,
// and a call with the same key must pass the same destinations. Collective.
void send_token_row(Fabric& f, const PromptLayout& lay, const std::vector<const PromptTiles*>& srcs, int32_t tile_row,
                    int64_t row, const std::vector<PeCoord>& dests, TileBuf<float>& out, const std::string& what,
                    TokenRowPlans* keep = nullptr, int64_t dest_key = 0);

}  // namespace wm::model
