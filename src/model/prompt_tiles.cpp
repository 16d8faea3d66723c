#include "prompt_tiles.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>

namespace wm::model {

int32_t move_route_budget(const Fabric& f) { return std::max<int32_t>(1, int32_t(f.params().route_entries / 4)); }

PromptLayout::PromptLayout(const Region& region, LinePerm line_perm, int64_t n)
    : R(region), perm(std::move(line_perm)), tokens(n), row_block((n + region.w - 1) / region.w) {}

PromptTiles::PromptTiles(Fabric& f, const PromptLayout& lay, int64_t w, const std::string& name)
    : tiles(std::make_unique<TileBuf<float>>(f, lay.R, size_t(lay.row_block * w), name)), width(w) {}

void move_columns(Fabric& f, const PromptLayout& lay, const PromptTiles& src, PromptTiles& dst,
                  const std::vector<ColumnPiece>& pieces, const std::string& what) {
  const int32_t P = lay.side();
  const int64_t rows = lay.row_block;
  auto copy_piece = [&](const float* from, float* to, const ColumnPiece& p, int64_t from_w, int64_t from_off,
                        int64_t to_w, int64_t to_off) {
    for (int64_t i = 0; i < rows; ++i)
      std::copy(from + i * from_w + from_off, from + i * from_w + from_off + p.len, to + i * to_w + to_off);
  };
  // Steps: a column sends at most one piece and receives at most one per step, pieces of one length.
  struct Step {
    int64_t len = 0;
    std::vector<int32_t> sends, receives;  // per logical column: index into `pieces` or -1
    std::vector<LineTransfer> transfers;
  };
  std::vector<Step> steps;
  for (size_t i = 0; i < pieces.size(); ++i) {
    const ColumnPiece& p = pieces[i];
    if (p.len <= 0 || p.from_col == p.to_col) continue;
    Step* st = nullptr;
    for (Step& s : steps)
      if (s.len == p.len && s.sends[size_t(p.from_col)] < 0 && s.receives[size_t(p.to_col)] < 0) {
        st = &s;
        break;
      }
    if (!st) {
      steps.push_back({p.len, std::vector<int32_t>(size_t(P), -1), std::vector<int32_t>(size_t(P), -1), {}});
      st = &steps.back();
    }
    st->sends[size_t(p.from_col)] = st->receives[size_t(p.to_col)] = int32_t(i);
    st->transfers.push_back({lay.perm.phys(p.from_col), lay.perm.phys(p.to_col), uint32_t(st->transfers.size()), 0});
  }
  // Pieces that stay on their PEs.
  src.tiles->for_each_local([&](int32_t x, int32_t y, float* from) {
    const int32_t c = lay.col_of(x);
    for (const ColumnPiece& p : pieces)
      if (p.len > 0 && p.from_col == c && p.to_col == c)
        copy_piece(from, dst.tile(x, y), p, src.width, p.from_off, dst.width, p.to_off);
  });
  for (size_t s = 0; s < steps.size(); ++s) {
    Step& st = steps[s];
    const size_t elems = size_t(rows * st.len);
    TileBuf<float> out(f, lay.R, elems, what + ": outgoing", TileBuf<float>::Uncharged{});
    TileBuf<float> in(f, lay.R, elems, what + ": incoming", TileBuf<float>::Uncharged{});
    out.for_each_local([&](int32_t x, int32_t y, float* o) {
      const int32_t i = st.sends[size_t(lay.col_of(x))];
      if (i >= 0) copy_piece(src.tile(x, y), o, pieces[size_t(i)], src.width, pieces[size_t(i)].from_off, st.len, 0);
    });
    for (std::vector<LineTransfer>& round : route_rounds(st.transfers, move_route_budget(f))) {
      LinePattern lp{lay.R, Axis::X, {std::move(round)}, std::vector<int32_t>(size_t(P), 0)};
      TransferPlan plan = f.plan(std::move(lp), out.bytes_per_pe(), what + " step " + std::to_string(s));
      f.execute(plan, out.view(), in.view());
    }
    in.for_each_local([&](int32_t x, int32_t y, const float* from) {
      const int32_t i = st.receives[size_t(lay.col_of(x))];
      if (i >= 0) copy_piece(from, dst.tile(x, y), pieces[size_t(i)], st.len, 0, dst.width, pieces[size_t(i)].to_off);
    });
  }
}

PromptHandoff::PromptHandoff(Fabric& f, const Region& A, const Region& B, size_t tile_bytes, const std::string& what)
    : f_(f) {
  if (A.w != B.w || A.h != B.h || (A.x0 != B.x0 && A.y0 != B.y0))
    throw std::logic_error("prompt hand-off between " + A.str() + " and " + B.str() +
                           ": regions of one size in one row or column expected");
  // The lines joining A and B (rows when B is beside A, columns when above or below); tile i of
  // every line moves from A's position i to B's.
  const Axis axis = A.y0 == B.y0 ? Axis::X : Axis::Y;
  const int32_t P = axis == Axis::X ? A.w : A.h, lines = axis == Axis::X ? A.h : A.w;
  const int32_t per_round = move_route_budget(f);
  for (int32_t first = 0; first < P; first += per_round) {
    std::vector<Transfer> t;
    for (int32_t line = 0; line < lines; ++line)
      for (int32_t i = first; i < std::min(P, first + per_round); ++i) {
        const PeCoord a = axis == Axis::X ? PeCoord{A.x0 + i, A.y0 + line} : PeCoord{A.x0 + line, A.y0 + i};
        const PeCoord b = axis == Axis::X ? PeCoord{B.x0 + i, B.y0 + line} : PeCoord{B.x0 + line, B.y0 + i};
        t.push_back({a, b, uint32_t(t.size()), 0});
      }
    rounds_.push_back(f.plan(std::move(t), tile_bytes, what + " (tiles " + std::to_string(first) + "..)"));
  }
}

void PromptHandoff::run(const TileBuf<float>& from, TileBuf<float>& to) {
  for (TransferPlan& p : rounds_) {
    f_.execute(p, from.view(), to.view());
    p.release_routes();
  }
}

void send_token_row(Fabric& f, const PromptLayout& lay, const std::vector<const PromptTiles*>& srcs, int32_t tile_row,
                    int64_t row, const std::vector<PeCoord>& dests, TileBuf<float>& out, const std::string& what,
                    TokenRowPlans* keep, int64_t dest_key) {
  const int32_t P = lay.side();
  int64_t width = 0;
  for (const PromptTiles* s : srcs) width += s->width;
  if (int64_t(out.elems()) != width || dests.size() != size_t(P))
    throw std::logic_error("send_token_row: the destination does not match the rows");
  // The outgoing row is staged on its own row of PEs only.
  const int32_t y = lay.y_of(tile_row);
  TileBuf<float> staged(f, Region{lay.R.x0, y, P, 1}, size_t(width), what + ": outgoing", TileBuf<float>::Uncharged{});
  for (int32_t x = staged.local().x0; x < staged.local().x0 + staged.local().w; ++x) {
    float* o = staged.tile(x, y);
    for (const PromptTiles* s : srcs) {
      const float* r = s->tile(x, y) + row * s->width;
      o = std::copy(r, r + s->width, o);
    }
  }
  auto build = [&] {
    std::vector<Transfer> t;
    for (int32_t c = 0; c < P; ++c) t.push_back({{lay.x_of(c), y}, dests[size_t(c)], uint32_t(c), 0});
    std::vector<TransferPlan> plans;
    for (std::vector<Transfer>& round : route_rounds(t, move_route_budget(f)))
      plans.push_back(f.plan(std::move(round), staged.bytes_per_pe(), what));
    return plans;
  };
  if (!keep) {
    for (TransferPlan& plan : build()) f.execute(plan, staged.view(), out.view());
    return;
  }
  if (keep->key != std::make_pair(tile_row, dest_key)) {
    keep->rounds.clear();  // the old plans go first: at most one key's plans at a time
    keep->rounds = build();
    keep->key = {tile_row, dest_key};
  }
  for (TransferPlan& plan : keep->rounds) {
    f.execute(plan, staged.view(), out.view());
    plan.release_routes();
  }
}

}  // namespace wm::model
