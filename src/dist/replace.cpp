// Re-placement of tiled tensors between regions (see replace.hpp).
#include "wafermesh/dist/replace.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>
#include <utility>

namespace wm::dist {

namespace {

std::vector<int64_t> even_starts(int64_t n, int32_t parts) {
  const int64_t b = parts > 0 ? (n + parts - 1) / parts : 0;
  std::vector<int64_t> s(size_t(parts) + 1);
  for (int32_t i = 0; i <= parts; ++i) s[size_t(i)] = std::min(n, int64_t(i) * b);
  return s;
}

int64_t widest(const std::vector<int64_t>& starts) {
  int64_t w = 0;
  for (size_t i = 0; i + 1 < starts.size(); ++i) w = std::max(w, starts[i + 1] - starts[i]);
  return w;
}

// The pairs (a, b) of blocks of two partitions of one range that overlap, with the overlap.
struct Overlap {
  int32_t a, b;
  int64_t lo, hi;
};
std::vector<Overlap> overlaps(const std::vector<int64_t>& A, const std::vector<int64_t>& B) {
  std::vector<Overlap> out;
  for (size_t j = 0; j + 1 < B.size(); ++j)
    for (size_t i = 0; i + 1 < A.size(); ++i) {
      const int64_t lo = std::max(A[i], B[j]), hi = std::min(A[i + 1], B[j + 1]);
      if (lo < hi) out.push_back({int32_t(i), int32_t(j), lo, hi});
    }
  return out;
}

}  // namespace

BlockTiling BlockTiling::even(const Region& R, int64_t rows, int64_t cols) {
  return {R, even_starts(rows, R.h), even_starts(cols, R.w)};
}

BlockTiling BlockTiling::with_rows(const Region& R, const std::vector<int64_t>& row_sizes, int64_t cols) {
  if (int64_t(row_sizes.size()) != R.h) throw std::logic_error("BlockTiling::with_rows: one size per row of PEs");
  std::vector<int64_t> s(1, 0);
  for (int64_t n : row_sizes) s.push_back(s.back() + n);
  return {R, std::move(s), even_starts(cols, R.w)};
}

int64_t BlockTiling::tile_rows() const { return widest(row_starts); }
int64_t BlockTiling::tile_cols() const { return widest(col_starts); }

std::vector<ReplacePiece> replace_pieces(const ReplaceItem& item) {
  const BlockTiling &F = item.from, &T = item.to;
  if (F.rows() != T.rows() || F.cols() != T.cols())
    throw std::logic_error("re-placement between tilings of different matrices");
  // Overlaps along rows (source row of PEs a, destination row b) and along columns; every pair
  // of them is a piece. Destinations row-major, then sources row-major.
  const std::vector<Overlap> rows = overlaps(F.row_starts, T.row_starts), cols = overlaps(F.col_starts, T.col_starts);
  std::vector<ReplacePiece> out;
  for (const Overlap& r : rows)      // by destination row, then source row
    for (const Overlap& c : cols) {  // by destination column, then source column
      ReplacePiece p;
      p.src = {F.R.x0 + c.a, F.R.y0 + r.a};
      p.dst = {T.R.x0 + c.b, T.R.y0 + r.b};
      p.r0 = r.lo, p.r1 = r.hi, p.c0 = c.lo, p.c1 = c.hi;
      p.bytes = item.bytes(p.elems()) * uint64_t(item.copies);
      out.push_back(p);
    }
  std::stable_sort(out.begin(), out.end(), [](const ReplacePiece& a, const ReplacePiece& b) {
    if (a.dst.y != b.dst.y) return a.dst.y < b.dst.y;
    if (a.dst.x != b.dst.x) return a.dst.x < b.dst.x;
    if (a.src.y != b.src.y) return a.src.y < b.src.y;
    return a.src.x < b.src.x;
  });
  return out;
}

std::vector<ReplaceStep> replace_schedule(const std::vector<ReplacePiece>& pieces) {
  // Per size: the steps so far, and per PE the first step after its last send / receive.
  struct Size {
    std::vector<ReplaceStep> steps;
    std::map<std::pair<int32_t, int32_t>, size_t> next_send, next_recv;
  };
  std::map<uint64_t, Size> by_size;
  for (size_t k = 0; k < pieces.size(); ++k) {
    const ReplacePiece& p = pieces[k];
    if (p.src == p.dst) continue;
    Size& s = by_size[p.bytes];
    size_t& ns = s.next_send[{p.src.x, p.src.y}];
    size_t& nr = s.next_recv[{p.dst.x, p.dst.y}];
    const size_t at = std::max(ns, nr);
    if (at == s.steps.size()) s.steps.push_back({p.bytes, {}});
    s.steps[at].pieces.push_back(k);
    ns = nr = at + 1;
  }
  std::vector<ReplaceStep> out;
  for (auto& [bytes, s] : by_size)
    for (ReplaceStep& st : s.steps) out.push_back(std::move(st));
  return out;
}

Replacement::Replacement(Fabric& f, std::vector<ReplaceItem> items, std::string name)
    : f_(f), name_(std::move(name)), items_(std::move(items)) {
  for (const ReplaceItem& it : items_) {
    std::vector<ReplacePiece> p = replace_pieces(it);
    pieces_.insert(pieces_.end(), p.begin(), p.end());
  }
  const int32_t budget = std::max<int32_t>(1, int32_t(f.params().route_entries / 4));
  for (const ReplaceStep& st : replace_schedule(pieces_)) {
    std::vector<Transfer> t;
    for (size_t k : st.pieces) {
      t.push_back({pieces_[k].src, pieces_[k].dst, uint32_t(t.size()), 0});
      bytes_moved_ += pieces_[k].bytes;
    }
    // route_rounds keeps the transfers' order within a round: match them back to the pieces.
    std::map<std::pair<int64_t, int64_t>, size_t> piece_of;  // (src id, dst id) -> piece
    const MeshShape& m = f.mesh();
    for (size_t k : st.pieces)
      piece_of[{m.id(pieces_[k].src.x, pieces_[k].src.y), m.id(pieces_[k].dst.x, pieces_[k].dst.y)}] = k;
    for (std::vector<Transfer>& round : route_rounds(t, budget)) {
      Round r;
      r.bytes = st.bytes;
      for (const Transfer& x : round) r.pieces.push_back(piece_of.at({m.id(x.src.x, x.src.y), m.id(x.dst.x, x.dst.y)}));
      rounds_.push_back(std::move(r));
    }
  }
}

TransferPlan Replacement::plan(const Round& r) const {
  std::vector<Transfer> t;
  t.reserve(r.pieces.size());
  for (size_t k : r.pieces) t.push_back({pieces_[k].src, pieces_[k].dst, uint32_t(t.size()), 0});
  return f_.plan(std::move(t), size_t(r.bytes), name_ + " (" + std::to_string(r.bytes) + "-byte pieces)");
}

void Replacement::run_timing() {
  for (const Round& r : rounds_) {
    TransferPlan p = plan(r);
    f_.execute_timing(p);
  }  // the rounds run one after another: each gives its routes back as it goes
}

}  // namespace wm::dist
