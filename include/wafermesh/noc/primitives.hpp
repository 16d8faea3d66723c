#pragma once
// Fabric primitives on TileBufs: shift, broadcast, reduce along lines, and point-to-point send.
// Each builds its plan, executes it collectively and releases its routes; algorithms that repeat
// a pattern build the plan once with line_plans.hpp and call Fabric::execute themselves.
#include <string>

#include "wafermesh/noc/line_plans.hpp"
#include "wafermesh/noc/tile_buf.hpp"

namespace wm {

template <class T>
void shift(Fabric& f, TileBuf<T>& buf, Axis axis, int64_t d, bool wrap, const LinePerm& perm) {
  TransferPlan p = plan_shift(f, buf.region(), axis, d, wrap, perm, buf.bytes_per_pe());
  f.execute(p, buf.view(), buf.view());
}

template <class T>
void shift(Fabric& f, TileBuf<T>& buf, Axis axis, int64_t d, bool wrap) {
  shift(f, buf, axis, d, wrap, LinePerm::natural(line_length(buf.region(), axis)));
}

// Copies the tile at physical position `root` of every line to all PEs of that line.
template <class T>
void broadcast(Fabric& f, TileBuf<T>& buf, Axis axis, int32_t root) {
  TransferPlan p = plan_broadcast(f, buf.region(), axis, root, buf.bytes_per_pe());
  f.execute(p, buf.view(), buf.view());
}

// Sums the tiles of every line into the PE at position `root`, by two chains that start at the
// ends of the line and move one hop per step (each hop a reduction stage: beta + an add task).
// Summation order is fixed by the line, never by the ranks:
//   left chain  a = ((t0 + t1) + t2) + ...  up to root-1
//   right chain b = ((tn-1 + tn-2) + ...)   down to root+1
//   root        (a + t_root) + b
// Afterwards the root holds the sum; the other PEs hold their chain's partial sums. With
// noc.stream_reductions the chains stream (cost_model.hpp): the adds take no task overhead and
// the root waits for the streams' tail once, at the end.
template <class T>
void reduce(Fabric& f, TileBuf<T>& buf, Axis axis, int32_t root) {
  const Region& r = buf.region();
  const int32_t n = line_length(r, axis), lines = line_count(r, axis);
  if (root < 0 || root >= n)
    throw std::invalid_argument("reduce root " + std::to_string(root) + " outside a line of " + std::to_string(n));
  const size_t e = buf.elems();
  const bool stream = f.cost().stream_reductions;
  TileBuf<T> in_left(f, r, e, "reduce: from the left"), in_right(f, r, e, "reduce: from the right");
  auto add_into = [&](const TileBuf<T>& in, int32_t pos) {  // buf[pos] = in[pos] + buf[pos]
    for (int32_t line = 0; line < lines; ++line) {
      const PeCoord c = line_pe(r, axis, line, pos);
      if (!buf.is_local(c.x, c.y)) continue;
      const T* a = in.tile(c.x, c.y);
      T* b = buf.tile(c.x, c.y);
      for (size_t k = 0; k < e; ++k) b[k] = a[k] + b[k];
    }
    const Region strip = axis == Axis::X ? Region{r.x0 + pos, r.y0, 1, r.h} : Region{r.x0, r.y0 + pos, r.w, 1};
    if (stream) f.charge_stream_add(strip, e, work_of<T>());
    else f.charge_compute(strip, e, work_of<T>());
  };
  const int32_t steps = std::max(root, n - 1 - root);
  for (int32_t s = 0; s < steps; ++s) {
    if (s < root) {
      TransferPlan p = plan_chain_step(f, r, axis, s, root, buf.bytes_per_pe());
      f.execute(p, buf.view(), in_left.view());
      if (s + 1 != root) add_into(in_left, s + 1);
    }
    if (s < n - 1 - root) {
      TransferPlan p = plan_chain_step(f, r, axis, n - 1 - s, root, buf.bytes_per_pe());
      f.execute(p, buf.view(), in_right.view());
      if (n - 2 - s != root) add_into(in_right, n - 2 - s);
    }
  }
  if (root > 0) add_into(in_left, root);
  if (root < n - 1) add_into(in_right, root);
  if (stream && n > 1) {
    const Region strip = axis == Axis::X ? Region{r.x0 + root, r.y0, 1, r.h} : Region{r.x0, r.y0 + root, r.w, 1};
    f.wait_cycles(strip, f.cost().wire_cycles(buf.bytes_per_pe()));
  }
}

// Copies the tile of `src` to `dst` (any two PEs of the buffer's region). Collective.
template <class T>
void send(Fabric& f, TileBuf<T>& buf, PeCoord src, PeCoord dst) {
  TransferPlan p = plan_pairs(f, {{src, dst}}, buf.bytes_per_pe(),
                              "send (" + std::to_string(src.x) + "," + std::to_string(src.y) + ") -> (" +
                                  std::to_string(dst.x) + "," + std::to_string(dst.y) + ")");
  f.execute(p, buf.view(), buf.view());
}

}  // namespace wm
