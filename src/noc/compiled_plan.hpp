#pragma once
// A TransferPlan compiled for one rank (private to src/noc): what fabric.cpp, plan_build.cpp and
// plan_run.cpp share.
//
// Items are kept per line template: a LineItems holds one line's transfers with a local end, by
// position along the line, split into moves inside the rank and, per peer rank, tiles sent and
// received. A plan built from a LinePattern keeps one LineItems per template and the template of
// each local line; the block index of position p of line l is base0 + l * line_step + p * stride
// (an Affine), so executing a step walks the lines and each template's short arrays, and nothing
// is stored per PE. A plan built from a transfer list is a single "line" whose positions are block
// indices (Affine {0, 0, 1}).
//
// Item order: the local lines form segments (runs of consecutive lines with one template). Within a
// segment, items go line by line (each line in template order) when a line's positions are
// adjacent in memory (rows), and entry by entry across the lines when the lines are (columns), so
// every sweep walks memory forwards. A peer's items come in that order on both ranks, so a message
// needs no addressing; the k-th local item's arrival is arr_loc[k].
#include <cstdint>
#include <string>
#include <vector>

#include "wafermesh/noc/fabric.hpp"

namespace wm {

struct Affine {
  int64_t base0 = 0, line_step = 0, stride = 1;
  int64_t line_base(int64_t line) const { return base0 + line * line_step; }
};

// A run of template entries e0 .. e0 + n - 1 whose positions step evenly, a(j) = a0 + j * astep
// (and b(j) likewise: the target of a move), and whose value (latency, hops, route entries) is
// the same. Executing a step walks runs, so its inner loops are index arithmetic.
struct Run {
  uint32_t e0 = 0, n = 0;
  int64_t a0 = 0, astep = 0, b0 = 0, bstep = 0;
  int64_t c0 = 0, cstep = 0;  // received items: the tile in the peer's message (see PeerItems)
  uint64_t v = 0;
};

struct LineItems {
  // Moves inside the rank (a PE keeping its own tile has latency 0).
  std::vector<uint32_t> loc_from, loc_to;
  std::vector<uint64_t> loc_lat;
  // A message to a peer carries each tile once, however many of the peer's PEs receive it (a
  // multicast): send_from lists the distinct senders, in the order they first send to the peer;
  // the receiver finds the tile of each item at recv_src in the same order, computed on its side.
  struct PeerItems {
    std::vector<uint32_t> send_from;  // distinct local senders
    std::vector<uint32_t> recv_to;    // local receivers
    std::vector<uint64_t> recv_lat;
    std::vector<uint32_t> recv_src;   // per received item: its tile among the peer's distinct senders
    uint32_t recv_tiles = 0;          // the peer's distinct senders (tiles in its message)
    std::vector<Run> send_runs, recv_runs;
  };
  std::vector<PeerItems> peer;  // indexed like Compiled::peers
  // One injection per (local source, stream): the source and the longest hop count of the stream,
  // and the links the stream loads (its route, or a multicast's tree: each link once), for the
  // energy of the bytes it moves.
  std::vector<uint32_t> inj_pos, inj_hops, inj_links;
  std::vector<uint32_t> route_pos, route_entries;
  std::vector<Run> loc_runs, inj_runs, inj_link_runs, route_runs;
  // Cuts every array above into runs (of one entry each when max_run == 1).
  void make_runs(uint32_t max_run);
};

// Items of one kind, as the sweeps see them: item j of a span has number k + j among the kind's
// items, index a + j * as on the first side (the source, or the only one) and b + j * bs on the
// second (the target of a move), and value v.
struct Span {
  size_t k = 0;
  int64_t n = 0;
  int64_t a = 0, as = 0, b = 0, bs = 0;
  int64_t c = 0, cs = 0;  // received items: the tile in the peer's message
  uint64_t v = 0;
};
enum class ItemKind { loc, send, recv, inj, inj_links, route };

struct TransferPlan::Compiled {
  std::string name;
  size_t tile_bytes = 0;
  uint64_t max_hops = 0, max_latency = 0;
  bool relay_mode = false, routes_active = false, permutes = false;
  // No tile that a move inside the rank writes is read by a move inside the rank (a PE keeping its
  // own tile reads and writes one tile): the moves can run within one buffer without staging.
  bool moves_disjoint = false;
  // For the clocks: no receiver of a move inside the rank is the source of such a move (a PE
  // keeping its own tile aside) or an injector, so each move's arrival can go into its receiver's
  // clock as it is computed (Fabric::run); and every such receiver receives one tile only (none
  // from a peer), so its receive task can follow at once.
  bool clock_fusable = false, single_receipt = false;
  std::string route_key;
  // What the plan was built from, kept to rebuild it with software relays.
  bool from_lines = false;
  std::vector<Transfer> cover;
  LinePattern lines;

  struct Peer {
    int rank = -1;
    size_t sends = 0, recvs = 0;  // per execution: tiles sent to the peer, items received from it
    size_t recv_tiles = 0;        // per execution: tiles in the peer's message
  };
  std::vector<Peer> peers;
  size_t nloc = 0, nsends = 0, nrecvs = 0;  // items per execution
  uint64_t max_recv_lat = 0;                // for injected latency

  // Items: per template (a transfer-list plan has one), and the runs of local lines using each.
  std::vector<LineItems> tmpl;
  struct Segment {
    int32_t t = 0;               // template
    int64_t first = 0, count = 0;  // lines first .. first + count - 1
    size_t loc0 = 0;             // first local item
    std::vector<size_t> send0, recv0, tile0;  // per peer: first tile sent, item received, tile received
  };
  std::vector<Segment> segs;
  bool across = false;           // items go entry by entry across a segment's lines (columns)
  Affine clock;                  // block index of a (line, position)
  Region touched;                // lines x positions of this rank (line plans), for view checks
  // Tile indices of a transfer-list plan's items in a buffer whose local region is `local`
  // (cached per side); line plans compute them from the view's region instead.
  struct ViewIndex {
    Region local{0, 0, -1, -1};
    bool ready = false;
    LineItems items;  // positions are tile indices of the buffer
  };
  ViewIndex vsrc, vdst;

  // What one execution adds to this rank's work totals (Fabric::work_local): bytes sent and
  // received, byte-hops (the per-PE figures are added at flush time).
  WorkCounts per_exec;
  // Executions whose counters have not been added to the PEs yet, and the slot in Fabric::dirty_.
  uint64_t unflushed = 0;
  size_t dirty_at = 0;
  // Arrivals of the last execution with Sync::defer, kept until Fabric::wait_arrivals(): the local
  // items' and the received items' (peer by peer).
  std::vector<uint64_t> arr_loc, arr_recv;
  bool deferred = false;
  uint64_t deferred_execs = 0;  // executions whose messages are taken in at that wait_arrivals()
  // Every message is a stage of a streaming reduction (noc.stream_reductions): the stage's beta
  // covers the core's work, so its receivers pay no noc.receive_cycles.
  bool streamed = false;

  // Where a side of a step keeps the items: positions through an Affine (line plans), or looked
  // up in `items` (a transfer-list plan in a buffer: tile indices, runs of one entry).
  struct Side {
    Affine a;
    const LineItems* items = nullptr;
  };
  Side clock_side() const { return Side{clock, nullptr}; }

  // f(const Span&) for the items of one kind (and peer), in item order.
  template <class F>
  void spans(ItemKind kind, size_t peer, const Side& A, const Side& B, F&& f) const {
    auto pos_a = [&](const LineItems& T) -> const std::vector<uint32_t>& {
      switch (kind) {
        case ItemKind::loc: return T.loc_from;
        case ItemKind::send: return T.peer[peer].send_from;
        case ItemKind::recv: return T.peer[peer].recv_to;
        case ItemKind::inj:
        case ItemKind::inj_links: return T.inj_pos;
        default: return T.route_pos;
      }
    };
    auto pos_b = [&](const LineItems& T) -> const std::vector<uint32_t>& {
      return kind == ItemKind::loc ? T.loc_to : pos_a(T);
    };
    auto value = [&](const LineItems& T, size_t e) -> uint64_t {
      switch (kind) {
        case ItemKind::loc: return T.loc_lat[e];
        case ItemKind::send: return 0;
        case ItemKind::recv: return T.peer[peer].recv_lat[e];
        case ItemKind::inj: return T.inj_hops[e];
        case ItemKind::inj_links: return T.inj_links[e];
        default: return T.route_entries[e];
      }
    };
    auto runs = [&](const LineItems& T) -> const std::vector<Run>& {
      switch (kind) {
        case ItemKind::loc: return T.loc_runs;
        case ItemKind::send: return T.peer[peer].send_runs;
        case ItemKind::recv: return T.peer[peer].recv_runs;
        case ItemKind::inj: return T.inj_runs;
        case ItemKind::inj_links: return T.inj_link_runs;
        default: return T.route_runs;
      }
    };
    auto first = [&](const Segment& s) -> size_t {
      switch (kind) {
        case ItemKind::loc: return s.loc0;
        case ItemKind::send: return s.send0[peer];
        case ItemKind::recv: return s.recv0[peer];
        default: return 0;
      }
    };
    const bool recv = kind == ItemKind::recv;
    for (const Segment& s : segs) {
      const LineItems& T = tmpl[size_t(s.t)];
      const std::vector<uint32_t>& pa = pos_a(T);
      const size_t m = pa.size(), k0 = first(s);
      if (m == 0) continue;
      if (across) {  // one span per entry, across the segment's lines
        const std::vector<uint32_t>& pb = pos_b(T);
        for (size_t e = 0; e < m; ++e) {
          Span sp;
          sp.k = k0 + e * size_t(s.count);
          sp.n = s.count;
          if (recv) {  // the peer's tiles go distinct sender by sender across the lines too
            sp.c = int64_t(s.tile0[peer]) + int64_t(T.peer[peer].recv_src[e]) * s.count;
            sp.cs = 1;
          }
          sp.a = A.a.line_base(s.first) + int64_t(pa[e]) * A.a.stride;
          sp.as = A.a.line_step;
          sp.b = B.a.line_base(s.first) + int64_t(pb[e]) * B.a.stride;
          sp.bs = B.a.line_step;
          sp.v = value(T, e);
          f(sp);
        }
        continue;
      }
      const std::vector<Run>& rs = runs(T);
      const size_t tiles = recv ? T.peer[peer].recv_tiles : 0;
      const std::vector<uint32_t>* oa = A.items ? &pos_a(*A.items) : nullptr;
      const std::vector<uint32_t>* ob = B.items ? &pos_b(*B.items) : nullptr;
      for (int64_t j = 0; j < s.count; ++j) {
        const int64_t line = s.first + j;
        const int64_t ba = A.a.line_base(line), bb = B.a.line_base(line);
        for (const Run& r : rs) {
          Span sp;
          sp.k = k0 + size_t(j) * m + r.e0;
          sp.n = r.n;
          sp.a = oa ? int64_t((*oa)[r.e0]) : ba + r.a0 * A.a.stride;
          sp.as = r.astep * A.a.stride;
          sp.b = ob ? int64_t((*ob)[r.e0]) : bb + r.b0 * B.a.stride;
          sp.bs = r.bstep * B.a.stride;
          if (recv) {
            sp.c = int64_t(s.tile0[peer] + size_t(j) * tiles) + r.c0;
            sp.cs = r.cstep;
          }
          sp.v = r.v;
          f(sp);
        }
      }
    }
  }
  // Block index of position `pos` of `line`.
  int64_t at(int64_t line, uint32_t pos) const { return clock.line_base(line) + int64_t(pos) * clock.stride; }
};

}  // namespace wm
