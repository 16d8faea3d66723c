#pragma once
// Re-placement: a tensor tiled on the PEs of one region moves onto another region and tiling over
// the NoC (DESIGN.md section 4, "Layer placement": the switch between the prefill and the decode
// placement re-places the KV cache and the weights).
//
// Tiling. A rows x cols matrix is cut into blocks on a region R: PE (R.x0 + j, R.y0 + i) holds
// rows row_starts[i] .. row_starts[i + 1] and columns col_starts[j] .. col_starts[j + 1], row-major
// in a tile of tile_rows() x tile_cols() elements (the tallest and the widest block; the rest of the
// tile is padding). Empty blocks are allowed.
//   Example: 10 x 6 on a 3 x 3 region, even: rows 0-3 | 4-7 | 8-9, columns 0-1 | 2-3 | 4-5.
//
// Pieces. Every destination PE receives, from every source PE whose block overlaps its own, the
// overlap (a rectangle of the matrix): one piece. A piece whose two PEs are one PE is a memory move
// (free). The others travel in steps: in a step a PE sends at most one piece and receives at most
// one, and all pieces of a step are the same number of bytes (the step's tile size); piece k of a
// size goes to the first step of that size after every earlier step in which its source sent or
// its destination received. Steps of one size run in that order, sizes in increasing order; a step
// is cut into route_rounds (line_plans.hpp) of at most a quarter of a router's entries per PE, run
// one after another. So each destination PE receives its bytes from its source PEs at the modelled
// distance, bandwidth and link load of the rules of cost_model.hpp.
//   Example: 4 x 4 on a 2 x 2 region (2 x 2 blocks) onto a 4 x 4 matrix on a 1 x 1 region:
//   four pieces of 4 elements into one PE, four steps of one piece each.
//
// Several tensors may move at once (ReplaceItem list): their pieces share the steps. `copies`
// identical tensors of one tiling (the same-shaped weights of every layer on a region, a layer's
// keys and values) move as one piece of copies x the bytes. The bytes of n elements on the wafer
// are the item's (fp at wafer.dtype, ternary weights in the wafer's format).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "wafermesh/noc/fabric.hpp"
#include "wafermesh/noc/line_plans.hpp"
#include "wafermesh/noc/reference_fabric.hpp"
#include "wafermesh/noc/tile_buf.hpp"

namespace wm::dist {

struct BlockTiling {
  Region R;
  std::vector<int64_t> row_starts, col_starts;  // R.h + 1 and R.w + 1 entries: 0 ... rows, 0 ... cols
  // Blocks of ceil(rows / R.h) x ceil(cols / R.w) (the last ones shorter, or empty).
  static BlockTiling even(const Region& R, int64_t rows, int64_t cols);
  // Row i of PEs holds row_sizes[i] rows (R.h entries); columns as even().
  static BlockTiling with_rows(const Region& R, const std::vector<int64_t>& row_sizes, int64_t cols);
  int64_t rows() const { return row_starts.back(); }
  int64_t cols() const { return col_starts.back(); }
  int64_t tile_rows() const;
  int64_t tile_cols() const;
  size_t tile_elems() const { return size_t(tile_rows() * tile_cols()); }
};

struct ReplaceItem {
  BlockTiling from, to;  // the same rows x cols
  int64_t copies = 1;
  std::function<uint64_t(int64_t elems)> bytes;  // bytes of `elems` elements on the wafer
};

// The elements [r0, r1) x [c0, c1) from PE src to PE dst; `bytes` on the wafer, copies included.
struct ReplacePiece {
  PeCoord src, dst;
  int64_t r0 = 0, r1 = 0, c0 = 0, c1 = 0;
  uint64_t bytes = 0;
  int64_t elems() const { return (r1 - r0) * (c1 - c0); }
};

// Every overlap of a source block and a destination block, destinations row-major, then sources
// row-major.
std::vector<ReplacePiece> replace_pieces(const ReplaceItem& item);

// The steps of the pieces (see above): per step its tile bytes and its pieces (indices into
// `pieces`), in execution order; memory moves (src == dst) in none.
struct ReplaceStep {
  uint64_t bytes = 0;
  std::vector<size_t> pieces;
};
std::vector<ReplaceStep> replace_schedule(const std::vector<ReplacePiece>& pieces);

class Replacement {
 public:
  // Schedules every step into rounds (collective only in that every rank must build the same
  // Replacement). Each round's plan is built when the round runs and dropped after it: a switch
  // of a large model has thousands of rounds of a whole region's pieces each.
  Replacement(Fabric& f, std::vector<ReplaceItem> items, std::string name);
  // Charges every step (clocks and counters as the data would move; no data). Collective.
  void run_timing();
  // Moves the data of a single item of one copy: src's tiles (item.from) into dst's (item.to);
  // tile sizes as the tilings say, the bytes of the item the buffers' own. Collective.
  template <class T>
  void run(const TileBuf<T>& src, TileBuf<T>& dst);
  size_t rounds() const { return rounds_.size(); }
  uint64_t bytes_moved() const { return bytes_moved_; }  // over every piece that leaves its PE
  const std::vector<ReplacePiece>& pieces() const { return pieces_; }

 private:
  struct Round {
    uint64_t bytes = 0;
    std::vector<size_t> pieces;  // in the order of the round's transfers
  };
  TransferPlan plan(const Round& r) const;
  Fabric& f_;
  std::string name_;
  std::vector<ReplaceItem> items_;
  std::vector<ReplacePiece> pieces_;
  std::vector<Round> rounds_;
  uint64_t bytes_moved_ = 0;
};

// Copies piece p's elements from a tile of tiling `from` into a packed buffer, and from a packed
// buffer into a tile of tiling `to` (row-major in the rectangle).
template <class T>
void pack_piece(const ReplacePiece& p, const BlockTiling& from, const T* tile, T* out) {
  const int64_t i = p.src.y - from.R.y0, j = p.src.x - from.R.x0, w = from.tile_cols();
  for (int64_t r = p.r0; r < p.r1; ++r)
    for (int64_t c = p.c0; c < p.c1; ++c)
      *out++ = tile[(r - from.row_starts[size_t(i)]) * w + (c - from.col_starts[size_t(j)])];
}
template <class T>
void unpack_piece(const ReplacePiece& p, const BlockTiling& to, const T* in, T* tile) {
  const int64_t i = p.dst.y - to.R.y0, j = p.dst.x - to.R.x0, w = to.tile_cols();
  for (int64_t r = p.r0; r < p.r1; ++r)
    for (int64_t c = p.c0; c < p.c1; ++c) tile[(r - to.row_starts[size_t(i)]) * w + (c - to.col_starts[size_t(j)])] = *in++;
}

template <class T>
void Replacement::run(const TileBuf<T>& src, TileBuf<T>& dst) {
  if (items_.size() != 1 || items_[0].copies != 1 || !(src.region() == items_[0].from.R) ||
      !(dst.region() == items_[0].to.R) || src.elems() != items_[0].from.tile_elems() ||
      dst.elems() != items_[0].to.tile_elems())
    throw std::logic_error("Replacement::run: the buffers do not match the single item's tilings");
  const ReplaceItem& it = items_[0];
  for (const ReplacePiece& p : pieces_)  // memory moves
    if (p.src == p.dst && dst.is_local(p.dst.x, p.dst.y)) {
      std::vector<T> tmp(size_t(p.elems()));
      pack_piece(p, it.from, src.tile(p.src.x, p.src.y), tmp.data());
      unpack_piece(p, it.to, tmp.data(), dst.tile(p.dst.x, p.dst.y));
    }
  for (Round& r : rounds_) {
    const size_t e = size_t(pieces_[r.pieces.front()].elems());
    TileBuf<T> out(f_, it.from.R, e, "re-placement: outgoing piece", typename TileBuf<T>::Uncharged{});
    TileBuf<T> in(f_, it.to.R, e, "re-placement: incoming piece", typename TileBuf<T>::Uncharged{});
    for (size_t k : r.pieces) {
      const ReplacePiece& p = pieces_[k];
      if (src.is_local(p.src.x, p.src.y)) pack_piece(p, it.from, src.tile(p.src.x, p.src.y), out.tile(p.src.x, p.src.y));
    }
    TransferPlan pl = plan(r);
    f_.execute(pl, out.view(), in.view());
    pl.release_routes();  // the rounds run one after another
    for (size_t k : r.pieces) {
      const ReplacePiece& p = pieces_[k];
      if (dst.is_local(p.dst.x, p.dst.y)) unpack_piece(p, it.to, in.tile(p.dst.x, p.dst.y), dst.tile(p.dst.x, p.dst.y));
    }
  }
}

// The plain reference: the same pieces and steps on the ReferenceFabric, one transfer list per
// round, the data of every piece copied on its own. Staging tiles are not SRAM (as the engine's).
template <class T>
void replace_ref(ReferenceFabric& rf, const ReplaceItem& item, int32_t route_budget, RefBuf<T>& src, RefBuf<T>& dst) {
  const std::vector<ReplacePiece> pieces = replace_pieces(item);
  for (const ReplacePiece& p : pieces)
    if (p.src == p.dst) {
      std::vector<T> tmp(size_t(p.elems()));
      pack_piece(p, item.from, src.at(p.src).data(), tmp.data());
      unpack_piece(p, item.to, tmp.data(), dst.at(p.dst).data());
    }
  for (const ReplaceStep& st : replace_schedule(pieces)) {
    std::vector<Transfer> t;
    for (size_t k : st.pieces) t.push_back({pieces[k].src, pieces[k].dst, uint32_t(t.size()), 0});
    for (const std::vector<Transfer>& round : route_rounds(t, route_budget)) {
      const size_t e = size_t(pieces[st.pieces.front()].elems());
      RefBuf<T> out{item.from.R, e, std::vector<std::vector<T>>(size_t(item.from.R.size()), std::vector<T>(e))};
      RefBuf<T> in{item.to.R, e, std::vector<std::vector<T>>(size_t(item.to.R.size()), std::vector<T>(e))};
      std::vector<const ReplacePiece*> of_round;
      for (const Transfer& x : round)
        for (size_t k : st.pieces)
          if (pieces[k].src == x.src && pieces[k].dst == x.dst) of_round.push_back(&pieces[k]);
      for (const ReplacePiece* p : of_round) pack_piece(*p, item.from, src.at(p->src).data(), out.at(p->src).data());
      rf.step(round, out, in);
      for (const ReplacePiece* p : of_round) unpack_piece(*p, item.to, in.at(p->dst).data(), dst.at(p->dst).data());
    }
  }
}

}  // namespace wm::dist
