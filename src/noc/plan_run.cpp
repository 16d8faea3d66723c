// Executing TransferPlans: departures, tile moves, injection, arrivals, and the route entries and
// report counters the steps leave behind (compiled_plan.hpp describes the items and their order).
#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <thread>

#include "compiled_plan.hpp"
#include "wafermesh/mesh/mpi_traits.hpp"
#include "wafermesh/util/error.hpp"

namespace wm {

namespace {
constexpr int kTagStep = 7100;
constexpr int64_t kNoPe = std::numeric_limits<int64_t>::max();

// The tiles of a buffer, by index (held by value, so the sweeps keep it in registers).
struct Tiles {
  std::byte* base = nullptr;
  const uint32_t* slot = nullptr;
  size_t tb = 0;
  Tiles() = default;
  explicit Tiles(const TileView& v) : base(v.base), slot(v.slotted() ? v.slot : nullptr), tb(v.tile_bytes) {}
  std::byte* at(int64_t i) const { return base + size_t(slot ? slot[i] : uint32_t(i)) * tb; }
};

using Side = TransferPlan::Compiled::Side;

// Tile index in `v` of every item of a transfer-list plan's template T (one side).
void index_view(TransferPlan::Compiled::ViewIndex& vi, const TileView& v, const Region& block, const LineItems& T,
                bool source_side, const std::string& plan) {
  vi.local = v.local;
  LineItems& o = vi.items;
  const uint32_t bw = uint32_t(block.w);
  auto conv = [&](uint32_t i) {
    const int32_t x = block.x0 + int32_t(i % bw), y = block.y0 + int32_t(i / bw);
    if (!v.local.contains(x, y))
      throw std::logic_error("plan " + plan + " moves the tile of PE (" + std::to_string(x) + ", " + std::to_string(y) +
                             "), outside the buffer's part " + v.local.str());
    return uint32_t(v.index(x, y));
  };
  auto map = [&](const std::vector<uint32_t>& in, std::vector<uint32_t>& out) {
    out.resize(in.size());
    for (size_t k = 0; k < in.size(); ++k) out[k] = conv(in[k]);
  };
  map(source_side ? T.loc_from : T.loc_to, source_side ? o.loc_from : o.loc_to);
  o.peer.resize(T.peer.size());
  for (size_t i = 0; i < T.peer.size(); ++i)
    map(source_side ? T.peer[i].send_from : T.peer[i].recv_to, source_side ? o.peer[i].send_from : o.peer[i].recv_to);
  vi.ready = true;
}

// Where the buffer `v` keeps the tiles of the plan's items (the source or the target side).
Side view_side(TransferPlan::Compiled& c, const TileView& v, const Region& block, bool source_side) {
  Side s;
  if (!c.from_lines) {
    TransferPlan::Compiled::ViewIndex& vi = source_side ? c.vsrc : c.vdst;
    if (!vi.ready || !(vi.local == v.local)) index_view(vi, v, block, c.tmpl[0], source_side, c.name);
    s.items = &vi.items;
    return s;
  }
  const Region& r = c.lines.region;
  if (!c.touched.empty() && !(c.touched.intersect(v.local) == c.touched))
    throw std::logic_error("plan " + c.name + " moves tiles of " + c.touched.str() + ", outside the buffer's part " +
                           v.local.str());
  const bool ax = c.lines.axis == Axis::X;
  const int64_t vw = v.local.w;
  s.a = Affine{int64_t(r.y0 - v.local.y0) * vw + int64_t(r.x0 - v.local.x0), ax ? vw : 1, ax ? 1 : vw};
  return s;
}

// Copies a tile of tb bytes (TB: tb when it is fixed at compile time, else 0). Tiles of a few
// hundred bytes, a multiple of 16, go as 16-byte moves: a call to memcpy per tile costs more.
template <size_t TB>
inline void copy_tile(std::byte* to, const std::byte* from, size_t tb) {
  if constexpr (TB != 0) {
    std::memcpy(to, from, TB);
  } else if (tb % 16 == 0 && tb <= 512) {
    for (size_t i = 0; i < tb; i += 16) std::memcpy(to + i, from + i, 16);
  } else {
    std::memcpy(to, from, tb);
  }
}

// The tiles moving inside the rank, copied (TB: the tile size when it is fixed, else 0). With
// `staging`, the buffers alias: every source is read before any destination is written. Without,
// a tile may still be its own destination (the buffers are one and the move keeps a PE's tile).
template <size_t TB>
void copy_local(const TransferPlan::Compiled& c, const Side& vs, const Side& vd, const Tiles src, const Tiles dst,
                std::byte* staging) {
  const size_t tb = TB ? TB : src.tb;
  if (staging) {
    c.spans(ItemKind::loc, 0, vs, vd, [&](const Span& p) {
      for (int64_t j = 0; j < p.n; ++j) copy_tile<TB>(staging + (p.k + size_t(j)) * tb, src.at(p.a + j * p.as), tb);
    });
    c.spans(ItemKind::loc, 0, vs, vd, [&](const Span& p) {
      for (int64_t j = 0; j < p.n; ++j) copy_tile<TB>(dst.at(p.b + j * p.bs), staging + (p.k + size_t(j)) * tb, tb);
    });
  } else {
    c.spans(ItemKind::loc, 0, vs, vd, [&](const Span& p) {
      for (int64_t j = 0; j < p.n; ++j) {
        std::byte* const to = dst.at(p.b + j * p.bs);
        const std::byte* const from = src.at(p.a + j * p.as);
        if (to != from) copy_tile<TB>(to, from, tb);
      }
    });
  }
}
}  // namespace

// ---------------------------------------------------------------- routes
void Fabric::activate_routes(TransferPlan& p) {
  Compiled& c = *p.c_;
  if (c.routes_active) return;
  if (!c.route_key.empty()) {
    auto it = shared_routes_.find(c.route_key);
    if (it != shared_routes_.end() && it->second.users > 0) {  // the same routes are configured
      it->second.users += 1;
      c.routes_active = true;
      return;
    }
  }
  const uint64_t limit = uint64_t(params_.route_entries);
  const Side cs = c.clock_side();
  Routes* const ro = routes_.data();
  int64_t bad = kNoPe;
  uint64_t bad_need = 0;
  c.spans(ItemKind::route, 0, cs, cs, [&](const Span& sp) {
    for (int64_t j = 0; j < sp.n; ++j) {
      const int64_t i = sp.a + j * sp.as;
      const uint64_t need = uint64_t(ro[i].now) + sp.v;
      if (need <= limit) continue;
      const int64_t id = mesh_.id(block_.x0 + int32_t(i % block_.w), block_.y0 + int32_t(i / block_.w));
      if (id < bad) {
        bad = id;
        bad_need = need;
      }
    }
  });
  int64_t gbad = bad;
  MPI_Allreduce(&bad, &gbad, 1, mpi_type<int64_t>(), MPI_MIN, comm());
  if (gbad != kNoPe) {
    if (!c.relay_mode && params_.route_fallback == "relay") {
      rebuild(c, true);  // same on every rank: all saw the same gbad
      activate_routes(p);
      return;
    }
    throw_limit_collective(gbad, gbad == bad ? bad_need : 0, "route entries for " + c.name,
                           "noc.route_entries = " + std::to_string(limit) +
                               (params_.route_fallback == "relay" ? " even with software relays"
                                                                   : " (set noc.route_fallback = relay to relay in software)"));
  }
  std::vector<std::pair<uint32_t, uint32_t>> list;  // kept for plans that share their routes
  uint32_t rose = 0;
  c.spans(ItemKind::route, 0, cs, cs, [&](const Span& sp) {
    const uint32_t e = uint32_t(sp.v);
    for (int64_t j = 0; j < sp.n; ++j) {
      Routes& r = ro[sp.a + j * sp.as];
      r.now += e;
      rose |= uint32_t(r.now > r.peak);
      r.peak = std::max(r.peak, r.now);
      if (!c.route_key.empty()) list.push_back({uint32_t(sp.a + j * sp.as), e});
    }
  });
  peaks_version_ += rose;
  c.routes_active = true;
  if (!c.route_key.empty()) shared_routes_[c.route_key] = SharedRoutes{1, std::move(list)};
}

void Fabric::release_routes(Compiled& c) {
  if (!c.routes_active) return;
  c.routes_active = false;
  if (!c.route_key.empty()) {
    auto it = shared_routes_.find(c.route_key);
    if (it != shared_routes_.end()) {
      if (--it->second.users > 0) return;
      for (const auto& [i, entries] : it->second.routes) routes_[i].now -= entries;
      shared_routes_.erase(it);
      return;
    }
  }
  const Side cs = c.clock_side();
  Routes* const ro = routes_.data();
  c.spans(ItemKind::route, 0, cs, cs, [&](const Span& sp) {
    for (int64_t j = 0; j < sp.n; ++j) ro[sp.a + j * sp.as].now -= uint32_t(sp.v);
  });
}

// ---------------------------------------------------------------- counters read by reports
void Fabric::count_execution(Compiled& c) {
  work_ += c.per_exec;
  if (c.unflushed++ == 0) {
    c.dirty_at = dirty_.size();
    dirty_.push_back(&c);
  }
}

void Fabric::flush_plan(Compiled& c) const {
  if (c.unflushed == 0) return;
  const uint64_t n = c.unflushed, tb = c.tile_bytes, w = cost_.inject_cycles(c.tile_bytes);
  const Side cs = c.clock_side();
  Traffic* const tr = traffic_.data();
  uint32_t* const mh = max_hops_.data();
  c.spans(ItemKind::inj, 0, cs, cs, [&](const Span& sp) {
    const uint32_t hops = uint32_t(sp.v);
    for (int64_t j = 0; j < sp.n; ++j) {
      const int64_t i = sp.a + j * sp.as;
      Traffic& t = tr[i];
      t.inject_cycles += n * w;
      t.bytes_sent += n * tb;
      t.messages_sent += n;
      mh[i] = std::max(mh[i], hops);
    }
  });
  c.spans(ItemKind::inj_links, 0, cs, cs, [&](const Span& sp) {
    const uint64_t bh = n * tb * sp.v;
    if (bh == 0) return;
    for (int64_t j = 0; j < sp.n; ++j) tr[sp.a + j * sp.as].byte_hops += bh;
  });
  c.spans(ItemKind::loc, 0, cs, cs, [&](const Span& sp) {
    for (int64_t j = 0; j < sp.n; ++j)
      if (!(sp.v == 0 && sp.a + j * sp.as == sp.b + j * sp.bs)) tr[sp.b + j * sp.bs].bytes_received += n * tb;
  });
  for (size_t i = 0; i < c.peers.size(); ++i)
    c.spans(ItemKind::recv, i, cs, cs, [&](const Span& sp) {
      for (int64_t j = 0; j < sp.n; ++j) tr[sp.a + j * sp.as].bytes_received += n * tb;
    });
  c.unflushed = 0;
  // Leave the list of plans with pending counts (the last one takes this one's slot).
  Compiled* last = dirty_.back();
  dirty_[c.dirty_at] = last;
  last->dirty_at = c.dirty_at;
  dirty_.pop_back();
}

void Fabric::flush_counters() const {
  while (!dirty_.empty()) flush_plan(*dirty_.back());
}

void Fabric::forget_plan(Compiled& c) {
  release_routes(c);
  flush_plan(c);
  spill_deferred(c);
}

// ---------------------------------------------------------------- arrivals
namespace {
// apply(block index, arrival) for every arrival a deferred execution of c kept.
template <class Apply>
void visit_deferred(const TransferPlan::Compiled& c, Apply&& apply) {
  const Side cs = c.clock_side();
  const uint64_t* const arr = c.arr_loc.data();
  c.spans(ItemKind::loc, 0, cs, cs, [&](const Span& sp) {
    for (int64_t j = 0; j < sp.n; ++j) apply(sp.b + j * sp.bs, arr[sp.k + size_t(j)]);
  });
  const uint64_t* ar = c.arr_recv.data();
  for (size_t i = 0; i < c.peers.size(); ++i) {
    c.spans(ItemKind::recv, i, cs, cs, [&](const Span& sp) {
      for (int64_t j = 0; j < sp.n; ++j) apply(sp.a + j * sp.as, ar[sp.k + size_t(j)]);
    });
    ar += c.peers[i].recvs;
  }
}
}  // namespace

uint64_t Fabric::receive_task_cycles(const Compiled& c) const { return c.streamed ? 0 : cost_.receive_cycles; }

void Fabric::take_in(const Compiled& c, uint64_t execs, bool moves) {
  const uint64_t m = receive_task_cycles(c) * execs;
  if (m == 0) return;
  known_clocks_.valid = false;
  const Side cs = c.clock_side();
  uint64_t* const ck = clock_.data();
  uint64_t* const cp = compute_.data();
  if (moves) c.spans(ItemKind::loc, 0, cs, cs, [&](const Span& sp) {
    for (int64_t j = 0; j < sp.n; ++j) {
      const int64_t d = sp.b + j * sp.bs;
      if (sp.v == 0 && sp.a + j * sp.as == d) continue;  // a PE keeping its own tile takes in nothing
      ck[d] += m;
      cp[d] += m;
    }
  });
  for (size_t i = 0; i < c.peers.size(); ++i)
    c.spans(ItemKind::recv, i, cs, cs, [&](const Span& sp) {
      for (int64_t j = 0; j < sp.n; ++j) {
        ck[sp.a + j * sp.as] += m;
        cp[sp.a + j * sp.as] += m;
      }
    });
}

void Fabric::wait_arrivals() {
  // Every arrival first (clock = max(clock, arrivals)), then the receive tasks of all the messages
  // taken in: the result does not depend on the order in which the steps' messages are applied.
  known_clocks_.valid = false;
  uint64_t* const ck = clock_.data();
  for (Compiled* c : deferred_plans_) visit_deferred(*c, [ck](int64_t i, uint64_t a) { ck[i] = std::max(ck[i], a); });
  uint64_t* pd = pending_.data();
  for (uint32_t i : pending_list_) {
    ck[i] = std::max(ck[i], pd[i]);
    pd[i] = 0;
  }
  for (Compiled* c : deferred_plans_) {
    take_in(*c, c->deferred_execs);
    c->deferred = false;
    c->deferred_execs = 0;
  }
  deferred_plans_.clear();
  const uint64_t m = cost_.receive_cycles;
  for (uint32_t i : pending_list_) {
    ck[i] += m * pending_msgs_[i];
    compute_[i] += m * pending_msgs_[i];
    pending_msgs_[i] = 0;
  }
  pending_list_.clear();
  observe();
}

void Fabric::spill_deferred(Compiled& c) {
  // A plan about to change or vanish while its arrivals wait: they wait in pending_ instead.
  if (!c.deferred) return;
  uint64_t* pd = pending_.data();
  visit_deferred(c, [&](int64_t i, uint64_t a) {
    pd[i] = std::max(pd[i], a);
    pending_list_.push_back(uint32_t(i));
  });
  // The messages each PE takes in (a PE keeping its own tile takes in none; a streamed stage's
  // receivers take in none either).
  const Side cs = c.clock_side();
  if (!c.streamed) {
    c.spans(ItemKind::loc, 0, cs, cs, [&](const Span& sp) {
      for (int64_t j = 0; j < sp.n; ++j)
        if (!(sp.v == 0 && sp.a + j * sp.as == sp.b + j * sp.bs))
          pending_msgs_[size_t(sp.b + j * sp.bs)] += uint32_t(c.deferred_execs);
    });
    for (size_t i = 0; i < c.peers.size(); ++i)
      c.spans(ItemKind::recv, i, cs, cs, [&](const Span& sp) {
        for (int64_t j = 0; j < sp.n; ++j) pending_msgs_[size_t(sp.a + j * sp.as)] += uint32_t(c.deferred_execs);
      });
  }
  c.deferred = false;
  c.deferred_execs = 0;
  deferred_plans_.erase(std::find(deferred_plans_.begin(), deferred_plans_.end(), &c));
}

// ---------------------------------------------------------------- executing steps
void Fabric::execute(TransferPlan& p, const TileView& src, const TileView& dst, Sync sync, Depart depart) {
  check_views(p, src, dst);
  run(p, &src, &dst, sync, depart);
}

void Fabric::execute_remote(TransferPlan& p, const TileView& src, const TileView& dst, Sync sync, Depart depart) {
  check_views(p, src, dst);
  run(p, &src, &dst, sync, depart, false);
}

void Fabric::check_views(const TransferPlan& p, const TileView& src, const TileView& dst) const {
  if (!p.c_ || p.fabric_ != this) throw std::logic_error("plan " + p.name() + " belongs to another fabric");
  if (src.charged_bytes() != p.c_->tile_bytes || dst.charged_bytes() != p.c_->tile_bytes ||
      src.tile_bytes != dst.tile_bytes)
    throw std::logic_error("plan " + p.name() + " was built for " + std::to_string(p.c_->tile_bytes) +
                           "-byte tiles, buffers hold " + std::to_string(src.charged_bytes()) + "/" +
                           std::to_string(dst.charged_bytes()) + " (host " + std::to_string(src.tile_bytes) + "/" +
                           std::to_string(dst.tile_bytes) + ")");
}

void Fabric::configure_routes(TransferPlan& p) {
  if (!p.c_ || p.fabric_ != this) throw std::logic_error("plan " + p.name() + " belongs to another fabric");
  activate_routes(p);
}

void Fabric::execute_data(TransferPlan& p, const TileView& src, const TileView& dst) {
  check_views(p, src, dst);
  if (!p.c_->routes_active) throw std::logic_error("execute_data: plan " + p.name() + " has not run before");
  run(p, &src, &dst, Sync::wait, Depart::now(), false, false);
}

void Fabric::execute_timing(TransferPlan& p, Sync sync, Depart depart) {
  if (!p.c_ || p.fabric_ != this) throw std::logic_error("plan " + p.name() + " belongs to another fabric");
  run(p, nullptr, nullptr, sync, depart);
}

void Fabric::run(TransferPlan& p, const TileView* src, const TileView* dst, Sync sync, Depart depart,
                 bool local_moves, bool clocks) {
  activate_routes(p);  // may rebuild the plan with software relays
  Compiled& c = *p.c_;
  const bool data = src != nullptr;
  // The host's bytes of a tile: what is copied, and carried by the messages (none for a step run
  // for its figures only). Costs are charged for the plan's bytes, the tile on the wafer.
  const size_t tb = data ? src->tile_bytes : 0;
  const auto t0 = std::chrono::steady_clock::now();
  const bool defer = sync == Sync::defer;
  // Arrivals are kept in the plan when the step defers them, or when earlier deferred arrivals
  // wait: all arrivals of a wait come before all of its receive tasks.
  const bool keep = clocks && (defer || !deferred_plans_.empty() || !pending_list_.empty());
  if (tape_ && clocks) {
    if (!keep && c.from_lines && tape_covers(c.lines.region)) tape_->log_.push_back(&c);
    else tape_break();
  }
  const uint64_t early = depart.earlier_cycles;  // departure = clock - early
  if (clocks) known_clocks_.valid = false;
  uint64_t* const ck = clock_.data();
  const size_t nl = c.nloc;
  const Side cs = c.clock_side();
  // 1. Arrivals of the moves inside the rank, from the departure clocks (before any injection),
  // unless they are fused (step 5).
  // A deferred step keeps them in the plan until wait_arrivals(); a second deferred execution
  // before that keeps the later of the two per item.
  const bool merge = keep && c.deferred;
  // A step that completes now, whose receivers inside the rank neither send inside it nor inject
  // (and receive once, unless receiving costs nothing), takes each move's arrival and receive task
  // into the receiver's clock in one pass (step 5), with the same result.
  const uint64_t take = receive_task_cycles(c);
  const bool fused = clocks && !keep && c.clock_fusable && (take == 0 || c.single_receipt);
  std::vector<uint64_t>& arrv = merge || !keep ? arrivals_ : c.arr_loc;
  uint64_t* arr = nullptr;
  if (clocks && !fused) {
    arrv.resize(nl);
    arr = arrv.data();
    c.spans(ItemKind::loc, 0, cs, cs, [&](const Span& sp) {
      uint64_t* const a = arr + sp.k;
      const uint64_t add = sp.v - early;
      for (int64_t j = 0; j < sp.n; ++j) a[j] = ck[sp.a + j * sp.as] + add;
    });
  }
  Side vs, vd;
  Tiles ts, td;
  if (data) {
    vs = view_side(c, *src, block_, true);
    vd = view_side(c, *dst, block_, false);
    ts = Tiles(*src);
    td = Tiles(*dst);
  }
  // 2. Receives: one message per peer: [departure clocks: n x uint64][tiles: n x tile_bytes] (no
  // clocks when only the data moves).
  const size_t hdr = clocks ? sizeof(uint64_t) : 0;
  if (rbuf_.size() < c.peers.size()) {
    rbuf_.resize(c.peers.size());
    sbuf_.resize(c.peers.size());
  }
  reqs_.clear();
  for (size_t i = 0; i < c.peers.size(); ++i) {
    if (c.peers[i].recvs == 0) continue;
    rbuf_[i].resize(c.peers[i].recv_tiles * (hdr + tb));
    reqs_.emplace_back();
    MPI_Irecv(rbuf_[i].data(), int(rbuf_[i].size()), mpi_type<std::byte>(), c.peers[i].rank, kTagStep, comm(),
              &reqs_.back());
  }
  // 3. Sends, packed with the departure clocks read before this step charges anything: each
  // distinct sender's tile once, however many of the peer's PEs receive it.
  for (size_t i = 0; i < c.peers.size(); ++i) {
    const size_t n = c.peers[i].sends;
    if (n == 0) continue;
    sbuf_[i].resize(n * (hdr + tb));
    uint64_t* const dep = reinterpret_cast<uint64_t*>(sbuf_[i].data());
    std::byte* const payload = sbuf_[i].data() + n * hdr;
    if (clocks)
      c.spans(ItemKind::send, i, cs, cs, [&](const Span& sp) {
        for (int64_t j = 0; j < sp.n; ++j) dep[sp.k + size_t(j)] = ck[sp.a + j * sp.as] - early;
      });
    if (data)
      c.spans(ItemKind::send, i, vs, vs, [&](const Span& sp) {
        for (int64_t j = 0; j < sp.n; ++j) copy_tile<0>(payload + (sp.k + size_t(j)) * tb, ts.at(sp.a + j * sp.as), tb);
      });
    reqs_.emplace_back();
    MPI_Isend(sbuf_[i].data(), int(sbuf_[i].size()), mpi_type<std::byte>(), c.peers[i].rank, kTagStep, comm(),
              &reqs_.back());
    ++mpi_messages_sent_;
    mpi_bytes_sent_ += sbuf_[i].size();
  }
  // 4. Tiles moving inside the rank. An in-place permutation of tiles larger than a few bytes
  // moves slot indices, not bytes; the slots of tiles that left for other ranks take the tiles
  // that arrive. (Small tiles move as cheaply as their slot numbers, and staying in PE order keeps
  // the buffer's own sweeps over its PEs sequential.) If the buffers alias otherwise, every
  // source is read before any destination is written.
  const bool by_slot = data && local_moves && tb > 16 && src->base == dst->base && src->slot != nullptr &&
                       src->slot == dst->slot && c.permutes;
  if (by_slot) {
    if (src->permuted) *src->permuted = true;  // the table held the identity until now
    uint32_t* const slot = src->slot;
    moved_slots_.resize(nl);
    uint32_t* const moved = moved_slots_.data();
    c.spans(ItemKind::loc, 0, vs, vd, [&](const Span& sp) {
      for (int64_t j = 0; j < sp.n; ++j) moved[sp.k + size_t(j)] = slot[sp.a + j * sp.as];
    });
    freed_slots_.clear();
    for (size_t i = 0; i < c.peers.size(); ++i)
      c.spans(ItemKind::send, i, vs, vs, [&](const Span& sp) {
        for (int64_t j = 0; j < sp.n; ++j) freed_slots_.push_back(slot[sp.a + j * sp.as]);
      });
    c.spans(ItemKind::loc, 0, vs, vd, [&](const Span& sp) {
      for (int64_t j = 0; j < sp.n; ++j) slot[sp.b + j * sp.bs] = moved[sp.k + size_t(j)];
    });
    ts = td = Tiles(*src);
  } else if (data && local_moves && nl > 0) {
    std::byte* staging = nullptr;
    if (src->base == dst->base && !c.moves_disjoint) {
      staging_.resize(nl * tb);
      staging = staging_.data();
    }
    switch (tb) {  // fixed-size copies for the common small tiles
      case 4: copy_local<4>(c, vs, vd, ts, td, staging); break;
      case 8: copy_local<8>(c, vs, vd, ts, td, staging); break;
      case 12: copy_local<12>(c, vs, vd, ts, td, staging); break;
      case 16: copy_local<16>(c, vs, vd, ts, td, staging); break;
      case 24: copy_local<24>(c, vs, vd, ts, td, staging); break;
      case 32: copy_local<32>(c, vs, vd, ts, td, staging); break;
      default: copy_local<0>(c, vs, vd, ts, td, staging);
    }
  }
  // 5. The fused moves' arrivals and receive tasks (their sources' clocks are still the departures).
  if (fused) {
    uint64_t* const cp = compute_.data();
    c.spans(ItemKind::loc, 0, cs, cs, [&](const Span& sp) {
      const uint64_t add = sp.v - early;
      for (int64_t j = 0; j < sp.n; ++j) {
        const int64_t s = sp.a + j * sp.as, d = sp.b + j * sp.bs;
        if (sp.v == 0 && s == d) continue;  // a PE keeping its own tile: no arrival, nothing taken in
        ck[d] = std::max(ck[d], ck[s] + add) + take;
        cp[d] += take;
      }
    });
  }
  // 6. Senders pay injection.
  const uint64_t w = cost_.inject_cycles(c.tile_bytes);
  if (clocks)
    c.spans(ItemKind::inj, 0, cs, cs, [&](const Span& sp) {
      for (int64_t j = 0; j < sp.n; ++j) ck[sp.a + j * sp.as] += w;
    });
  // 7. Arrivals inside the rank (unless fused): into the clocks now, or kept until wait_arrivals().
  if (clocks && !keep && !fused) {
    c.spans(ItemKind::loc, 0, cs, cs, [&](const Span& sp) {
      const uint64_t* const a = arr + sp.k;
      for (int64_t j = 0; j < sp.n; ++j) {
        uint64_t& x = ck[sp.b + j * sp.bs];
        x = std::max(x, a[j]);
      }
    });
  } else if (merge) {
    for (size_t k = 0; k < nl; ++k) c.arr_loc[k] = std::max(c.arr_loc[k], arr[k]);
  }
  // 8. Complete the exchange; unpack tiles and arrivals.
  if (!reqs_.empty()) MPI_Waitall(int(reqs_.size()), reqs_.data(), MPI_STATUSES_IGNORE);
  if (keep && !merge) c.arr_recv.resize(c.nrecvs);
  uint64_t* ar = c.arr_recv.data();
  for (size_t i = 0; i < c.peers.size(); ++i) {
    const size_t n = c.peers[i].recvs;
    if (n == 0) continue;
    const uint64_t* const dep = reinterpret_cast<const uint64_t*>(rbuf_[i].data());
    const std::byte* const payload = rbuf_[i].data() + c.peers[i].recv_tiles * hdr;
    if (data)
      c.spans(ItemKind::recv, i, vd, vd, [&](const Span& sp) {
        for (int64_t j = 0; j < sp.n; ++j) {
          const int64_t v = sp.a + j * sp.as;
          if (by_slot) {
            dst->slot[v] = freed_slots_.back();
            freed_slots_.pop_back();
          }
          copy_tile<0>(td.at(v), payload + size_t(sp.c + j * sp.cs) * tb, tb);
        }
      });
    if (clocks) c.spans(ItemKind::recv, i, cs, cs, [&](const Span& sp) {
      for (int64_t j = 0; j < sp.n; ++j) {
        const uint64_t a = dep[sp.c + j * sp.cs] + sp.v;
        if (!keep) {
          uint64_t& x = ck[sp.a + j * sp.as];
          x = std::max(x, a);
        } else {
          uint64_t& y = ar[sp.k + size_t(j)];
          y = merge ? std::max(y, a) : a;
        }
      }
    });
    ar += n;
  }
  if (!clocks) return;  // only the data moved: the figures are someone else's (Fabric::replay)
  if (keep) {
    if (!c.deferred) deferred_plans_.push_back(&c);
    c.deferred = true;
    c.deferred_execs += 1;
  } else {
    take_in(c, 1, !fused);
  }
  // 9. Counters that only reports read: one more execution, added when read (the rank's totals now).
  count_execution(c);
  // 10. Injected latency: hold the step in real time as the NoC would. Changes no virtual figure.
  if (params_.inject_ns_per_cycle > 0 && c.max_recv_lat > 0) {
    const auto hold = std::chrono::nanoseconds(int64_t(double(c.max_recv_lat) * params_.inject_ns_per_cycle));
    std::this_thread::sleep_until(t0 + hold);
  }
  // A step that does not defer completes, with the arrivals earlier deferred steps left waiting.
  if (keep && !defer) wait_arrivals();
  else observe();
}

}  // namespace wm
