// Building TransferPlans: the step's loads, latencies, injections and route entries (the rules of
// cost_model.hpp), compiled to what this rank executes (compiled_plan.hpp).
#include <algorithm>
#include <cstdlib>
#include <limits>
#include <map>
#include <stdexcept>

#include "compiled_plan.hpp"
#include "wafermesh/util/error.hpp"

namespace wm {

namespace {
// Loads, latencies, injections and route entries of one line's transfers (LinePattern template):
// the rules of cost_model.hpp on a single row or column, where every route is a straight run.
// Directed links of a line of n positions: forward link i joins i -> i+1, backward link i joins
// i+1 -> i (i < n-1).
struct LineCosts {
  std::vector<uint64_t> lat, hops;                    // per transfer
  struct Inject {
    int32_t pos;
    uint32_t hops, links;  // the stream's longest hop count; its links (on its first injection only)
  };
  std::vector<Inject> injects;  // per (source, stream)
  std::vector<uint32_t> route_entries;                // per position
  uint64_t max_hops = 0, max_latency = 0;
};

LineCosts line_costs(const std::vector<LineTransfer>& T, int32_t n, bool relay_mode, const CostModel& cost,
                     size_t tile_bytes, const std::string& name) {
  LineCosts out;
  const size_t m = T.size();
  out.lat.assign(m, 0);
  out.hops.assign(m, 0);
  out.route_entries.assign(size_t(n), 0);
  for (const LineTransfer& t : T)
    if (t.from < 0 || t.from >= n || t.to < 0 || t.to >= n)
      throw std::logic_error("transfer " + std::to_string(t.from) + " -> " + std::to_string(t.to) +
                             " outside a line of " + std::to_string(n) + " in plan " + name);
  // Streams: one source each; the positions they cover on either side of it.
  std::vector<size_t> order(m);
  for (size_t k = 0; k < m; ++k) order[k] = k;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return T[a].stream < T[b].stream; });
  struct Stream {
    int32_t src, lo, hi;  // covered positions [lo, hi] (lo == hi == src: nothing moves)
    size_t first, last;   // range in `order`
  };
  std::vector<Stream> streams;
  for (size_t i = 0; i < m;) {
    const LineTransfer& a = T[order[i]];
    Stream s{a.from, a.from, a.from, i, i};
    size_t j = i;
    for (; j < m && T[order[j]].stream == a.stream; ++j) {
      const LineTransfer& t = T[order[j]];
      if (t.from != a.from) throw std::logic_error("multicast stream with two sources in plan " + name);
      s.lo = std::min(s.lo, t.to);
      s.hi = std::max(s.hi, t.to);
    }
    s.last = j;
    streams.push_back(s);
    i = j;
  }
  // Loads: distinct streams per directed link (difference arrays over the line).
  std::vector<int64_t> fwd(size_t(n) + 1, 0), bwd(size_t(n) + 1, 0);
  for (const Stream& s : streams) {
    if (s.hi > s.src) fwd[size_t(s.src)] += 1, fwd[size_t(s.hi)] -= 1;  // links src .. hi-1
    if (s.lo < s.src) bwd[size_t(s.lo)] += 1, bwd[size_t(s.src)] -= 1;  // links lo .. src-1
  }
  for (int32_t i = 1; i < n; ++i) {
    fwd[size_t(i)] += fwd[size_t(i) - 1];
    bwd[size_t(i)] += bwd[size_t(i) - 1];
  }
  // The busiest link from each stream's source to every position it reaches.
  std::vector<uint64_t> pm(size_t(n), 0);
  for (const Stream& s : streams) {
    uint64_t run = 0;
    for (int32_t p = s.src + 1; p <= s.hi; ++p) pm[size_t(p)] = run = std::max<uint64_t>(run, uint64_t(fwd[size_t(p - 1)]));
    run = 0;
    for (int32_t p = s.src - 1; p >= s.lo; --p) pm[size_t(p)] = run = std::max<uint64_t>(run, uint64_t(bwd[size_t(p)]));
    for (size_t i = s.first; i < s.last; ++i) {
      const size_t k = order[i];
      const LineTransfer& t = T[k];
      const uint64_t hops = uint64_t(std::abs(t.to - t.from));
      const uint64_t relays = t.relays + (relay_mode && hops > 1 ? hops - 1 : 0);
      out.hops[k] = hops;
      out.lat[k] = hops == 0                                ? 0
                   : cost.stream_reductions && t.relays > 0 ? cost.stream_stage_cycles(hops, relays)
                                                            : cost.transfer_cycles(hops, relays, tile_bytes, pm[size_t(t.to)]);
      out.max_hops = std::max(out.max_hops, hops);
      out.max_latency = std::max(out.max_latency, out.lat[k]);
    }
    // Route entries: one per stream on every position its routes touch (source included).
    if (!relay_mode && (s.lo < s.src || s.hi > s.src))
      for (int32_t p = s.lo; p <= s.hi; ++p) out.route_entries[size_t(p)] += 1;
  }
  // Injection: once per run of transfers of one (source, stream), in plan order. A stream's links
  // (on a line, the positions it covers on either side of its source) go to its first injection.
  std::map<uint32_t, uint32_t> links;  // stream -> links not yet given to an injection
  for (const Stream& s : streams) links[T[order[s.first]].stream] = uint32_t(s.hi - s.lo);
  uint32_t last_stream = 0;
  int32_t last_src = -1;
  for (size_t k = 0; k < m; ++k) {
    if (out.hops[k] == 0) continue;
    if (!(last_src >= 0 && T[k].stream == last_stream && T[k].from == last_src)) {
      uint32_t& l = links[T[k].stream];
      out.injects.push_back({T[k].from, uint32_t(out.hops[k]), l});
      l = 0;
      last_stream = T[k].stream;
      last_src = T[k].from;
    } else {
      out.injects.back().hops = std::max(out.injects.back().hops, uint32_t(out.hops[k]));
    }
  }
  return out;
}

// Does the template only permute tiles among its local positions (every touched position sends
// exactly one tile and receives exactly one)? `marks` is zero on entry and left zero.
bool permutes_positions(const LineItems& T, uint32_t* marks) {
  std::vector<uint32_t> seen;
  bool ok = true;
  auto mark = [&](uint32_t p, uint32_t bit) {
    if (marks[p] & bit) ok = false;
    if (marks[p] == 0) seen.push_back(p);
    marks[p] |= bit;
  };
  for (uint32_t p : T.loc_from) mark(p, 1);
  for (const auto& pr : T.peer)
    for (uint32_t p : pr.send_from) mark(p, 1);
  for (uint32_t p : T.loc_to) mark(p, 2);
  for (const auto& pr : T.peer)
    for (uint32_t p : pr.recv_to) mark(p, 2);
  for (uint32_t p : seen) {
    if (marks[p] != 3) ok = false;
    marks[p] = 0;
  }
  return ok;
}
// Does no local move of the template write a position that a local move reads (moves from a
// position to itself aside)? `marks` is zero on entry and left zero.
bool moves_disjoint(const LineItems& T, uint32_t* marks) {
  for (uint32_t p : T.loc_from) marks[p] = 1;
  bool ok = true;
  for (size_t k = 0; k < T.loc_to.size(); ++k)
    if (T.loc_to[k] != T.loc_from[k] && marks[T.loc_to[k]]) ok = false;
  for (uint32_t p : T.loc_from) marks[p] = 0;
  return ok;
}
// The template's contribution to Compiled::clock_fusable and single_receipt (moves from a position
// to itself aside). `marks` is zero on entry and left zero.
void clock_flags(const LineItems& T, uint32_t* marks, bool& fusable, bool& single) {
  constexpr uint32_t kSrc = 1, kInj = 2, kRecv = 4, kDst = 8;
  std::vector<uint32_t> seen;
  auto mark = [&](uint32_t p, uint32_t bit) {
    if (marks[p] == 0) seen.push_back(p);
    marks[p] |= bit;
  };
  for (size_t k = 0; k < T.loc_from.size(); ++k)
    if (T.loc_to[k] != T.loc_from[k]) mark(T.loc_from[k], kSrc);
  for (uint32_t p : T.inj_pos) mark(p, kInj);
  for (const auto& pr : T.peer)
    for (uint32_t p : pr.recv_to) mark(p, kRecv);
  for (size_t k = 0; k < T.loc_to.size(); ++k) {
    const uint32_t d = T.loc_to[k];
    if (d == T.loc_from[k]) continue;
    if (marks[d] & (kSrc | kInj)) fusable = false;
    if (marks[d] & (kRecv | kDst)) single = false;
    mark(d, kDst);
  }
  for (uint32_t p : seen) marks[p] = 0;
}
// Runs of entries whose positions (a, and b and c when given) step evenly and whose value is the
// same.
template <class Value>
std::vector<Run> runs_of(const std::vector<uint32_t>& a, const std::vector<uint32_t>* b, const std::vector<uint32_t>* c,
                         Value value, uint32_t max_run) {
  std::vector<Run> out;
  const size_t m = a.size();
  auto step = [](const std::vector<uint32_t>* v, size_t f) { return int64_t((*v)[f]) - int64_t((*v)[f - 1]); };
  for (size_t e = 0; e < m;) {
    Run r;
    r.e0 = uint32_t(e);
    r.n = 1;
    r.a0 = a[e];
    r.b0 = b ? (*b)[e] : a[e];
    r.c0 = c ? (*c)[e] : 0;
    r.v = value(e);
    if (max_run > 1 && e + 1 < m && value(e + 1) == r.v) {
      r.astep = step(&a, e + 1);
      r.bstep = b ? step(b, e + 1) : r.astep;
      r.cstep = c ? step(c, e + 1) : 0;
      size_t f = e + 1;
      while (f < m && r.n < max_run && step(&a, f) == r.astep && (!b || step(b, f) == r.bstep) &&
             (!c || step(c, f) == r.cstep) && value(f) == r.v) {
        ++r.n;
        ++f;
      }
    }
    out.push_back(r);
    e += r.n;
  }
  return out;
}

// Makes a peer's senders distinct (a multicast's tile travels once) and numbers every received
// item's tile among the peer's distinct senders; `recv_key` identifies the sender of each received
// item (positions or PE ids: the same key for the same sender). Both ranks keep the order in which
// the senders first appear among the transfers between them, so the numbers agree.
void distinct_senders(LineItems::PeerItems& p, const std::vector<int64_t>& recv_key) {
  std::vector<uint32_t> senders;
  for (uint32_t s : p.send_from)
    if (std::find(senders.begin(), senders.end(), s) == senders.end()) senders.push_back(s);
  p.send_from = std::move(senders);
  std::vector<int64_t> keys;
  p.recv_src.resize(recv_key.size());
  for (size_t k = 0; k < recv_key.size(); ++k) {
    auto it = std::find(keys.begin(), keys.end(), recv_key[k]);
    if (it == keys.end()) it = keys.insert(keys.end(), recv_key[k]);
    p.recv_src[k] = uint32_t(it - keys.begin());
  }
  p.recv_tiles = uint32_t(keys.size());
}
}  // namespace

void LineItems::make_runs(uint32_t max_run) {
  loc_runs = runs_of(loc_from, &loc_to, nullptr, [&](size_t e) { return loc_lat[e]; }, max_run);
  inj_runs = runs_of(inj_pos, nullptr, nullptr, [&](size_t e) { return uint64_t(inj_hops[e]); }, max_run);
  inj_link_runs = runs_of(inj_pos, nullptr, nullptr, [&](size_t e) { return uint64_t(inj_links[e]); }, max_run);
  route_runs = runs_of(route_pos, nullptr, nullptr, [&](size_t e) { return uint64_t(route_entries[e]); }, max_run);
  for (PeerItems& p : peer) {
    p.send_runs = runs_of(p.send_from, nullptr, nullptr, [](size_t) { return uint64_t(0); }, max_run);
    p.recv_runs = runs_of(p.recv_to, nullptr, &p.recv_src, [&](size_t e) { return p.recv_lat[e]; }, max_run);
  }
}

TransferPlan Fabric::plan(std::vector<Transfer> transfers, size_t tile_bytes, std::string name) {
  TransferPlan p;
  p.fabric_ = this;
  p.c_ = std::make_unique<Compiled>();
  p.c_->name = std::move(name);
  p.c_->tile_bytes = tile_bytes;
  p.c_->cover = std::move(transfers);
  build_generic(*p.c_, false);
  return p;
}

TransferPlan Fabric::plan(LinePattern lines, size_t tile_bytes, std::string name) {
  const Region& r = lines.region;
  const int32_t count = lines.axis == Axis::X ? r.h : r.w;
  if (r.x0 < 0 || r.y0 < 0 || r.w < 0 || r.h < 0 || r.x0 + r.w > mesh_.width || r.y0 + r.h > mesh_.height)
    throw std::logic_error("plan " + name + ": region " + r.str() + " outside the mesh");
  if (lines.template_of_line.size() != size_t(count))
    throw std::logic_error("plan " + name + ": one template index per line needed");
  for (int32_t t : lines.template_of_line)
    if (t < -1 || t >= int32_t(lines.templates.size()))
      throw std::logic_error("plan " + name + ": template index " + std::to_string(t) + " out of range");
  TransferPlan p;
  p.fabric_ = this;
  p.c_ = std::make_unique<Compiled>();
  p.c_->name = std::move(name);
  p.c_->tile_bytes = tile_bytes;
  p.c_->from_lines = true;
  p.c_->lines = std::move(lines);
  build_lines(*p.c_, false);
  return p;
}

void Fabric::rebuild(Compiled& c, bool relay_mode) {
  flush_plan(c);  // the counts so far belong to the items as they were
  spill_deferred(c);
  if (c.from_lines) build_lines(c, relay_mode);
  else build_generic(c, relay_mode);
}

void Fabric::clear_items(Compiled& c, bool relay_mode) {
  c.relay_mode = relay_mode;
  c.max_hops = c.max_latency = 0;
  c.peers.clear();
  c.nloc = c.nsends = c.nrecvs = 0;
  c.max_recv_lat = 0;
  c.tmpl.clear();
  c.segs.clear();
  c.across = false;
  c.clock = Affine{};
  c.touched = Region{};
  c.vsrc.ready = c.vdst.ready = false;
  c.moves_disjoint = false;
  c.clock_fusable = c.single_receipt = false;
}

void Fabric::build_generic(Compiled& c, bool relay_mode) {
  clear_items(c, relay_mode);
  const auto& tr = c.cover;
  c.streamed = cost_.stream_reductions && !tr.empty();
  for (const Transfer& t : tr)
    if (t.relays == 0 && !(t.src == t.dst)) c.streamed = false;
  for (size_t i = 0; i < tr.size(); ++i) {
    if (!mesh_.contains(tr[i].src.x, tr[i].src.y) || !mesh_.contains(tr[i].dst.x, tr[i].dst.y))
      throw std::logic_error("transfer outside the mesh in plan " + c.name);
    // A multicast stream is contiguous and has one source (checked against its predecessor).
    if (i > 0 && tr[i].stream == tr[i - 1].stream && !(tr[i].src == tr[i - 1].src))
      throw std::logic_error("multicast stream with two sources in plan " + c.name);
  }
  if (link_load_.empty()) {  // scratch per directed link of the mesh, allocated at the first such plan
    const size_t links = size_t(mesh_.pe_count()) * 4;
    link_load_.assign(links, 0);
    link_stream_.assign(links, 0);
    link_pmax_.assign(links, 0);
    link_pmax_tag_.assign(links, 0);
  }
  c.tmpl.resize(1);
  c.segs.resize(1);  // one "line" whose positions are block indices
  c.segs[0].count = 1;
  LineItems& T = c.tmpl[0];
  // 1. Loads: distinct streams per directed link. Stream ids are stored +1 so 0 means none.
  std::vector<uint64_t> touched;      // links with a load, reset at the end
  std::vector<uint32_t> touched_pes;  // local PEs with route entries, reset at the end
  touched.reserve(tr.size() * 2);
  // Each path is walked back from its destination and stops where an earlier path of the same
  // stream joined it (links marked with the stream form a tree from the source), so a line
  // multicast costs O(line) rather than O(line^2). The links a path adds to its stream's tree are
  // counted for the energy of the stream's bytes.
  std::vector<uint32_t> new_links(tr.size(), 0);
  for (size_t k = 0; k < tr.size(); ++k) {
    const Transfer& t = tr[k];
    for_each_route_link_reverse(mesh_, t.src, t.dst, [&](uint64_t l) {
      if (link_stream_[l] == t.stream + 1) return false;
      if (link_load_[l] == 0) touched.push_back(l);
      link_stream_[l] = t.stream + 1;
      ++link_load_[l];
      ++new_links[k];
      return true;
    });
  }
  // 2. Per transfer: latency; keep those with a local end.
  std::vector<int> used_peers;
  std::vector<std::vector<int64_t>> recv_keys;  // per peer: the sender of each received item
  auto peer = [&](int r) -> LineItems::PeerItems& {
    if (peer_slot_[size_t(r)] < 0) {
      peer_slot_[size_t(r)] = int(c.peers.size());
      c.peers.push_back({r, 0, 0, 0});
      T.peer.emplace_back();
      recv_keys.emplace_back();
      used_peers.push_back(r);
    }
    return T.peer[size_t(peer_slot_[size_t(r)])];
  };
  const Decomposition& d = decomposition();
  std::vector<uint64_t> chain;  // links of the current path not yet known for its stream
  uint32_t last_inject_stream = 0;
  PeCoord last_inject_src{-1, -1};
  for (size_t ti = 0; ti < tr.size(); ++ti) {
    const Transfer& t = tr[ti];
    // Busiest link of the path: the prefix maximum from the source, kept per link for the stream
    // (again walked back only to where an earlier path of the stream has it).
    chain.clear();
    uint32_t known = 0;
    for_each_route_link_reverse(mesh_, t.src, t.dst, [&](uint64_t l) {
      if (link_pmax_tag_[l] == t.stream + 1) {
        known = link_pmax_[l];
        return false;
      }
      chain.push_back(l);
      return true;
    });
    uint32_t pm = known;
    for (size_t k = chain.size(); k-- > 0;) {
      pm = std::max(pm, link_load_[chain[k]]);
      link_pmax_[chain[k]] = pm;
      link_pmax_tag_[chain[k]] = t.stream + 1;
    }
    const uint64_t hops = hop_count(t.src, t.dst);
    const uint64_t relays = t.relays + (relay_mode && hops > 1 ? hops - 1 : 0);
    const uint64_t lat = hops == 0                                 ? 0
                         : cost_.stream_reductions && t.relays > 0 ? cost_.stream_stage_cycles(hops, relays)
                                                                   : cost_.transfer_cycles(hops, relays, c.tile_bytes, pm);
    c.max_hops = std::max(c.max_hops, hops);
    c.max_latency = std::max(c.max_latency, lat);
    const bool src_local = is_local(t.src.x, t.src.y), dst_local = is_local(t.dst.x, t.dst.y);
    if (src_local && dst_local) {
      T.loc_from.push_back(uint32_t(local_index(t.src.x, t.src.y)));
      T.loc_to.push_back(uint32_t(local_index(t.dst.x, t.dst.y)));
      T.loc_lat.push_back(lat);
    } else if (src_local) {
      peer(d.owner(t.dst.x, t.dst.y)).send_from.push_back(uint32_t(local_index(t.src.x, t.src.y)));
    } else if (dst_local) {
      const int rk = d.owner(t.src.x, t.src.y);
      LineItems::PeerItems& pr = peer(rk);
      pr.recv_to.push_back(uint32_t(local_index(t.dst.x, t.dst.y)));
      pr.recv_lat.push_back(lat);
      recv_keys[size_t(peer_slot_[size_t(rk)])].push_back(mesh_.id(t.src.x, t.src.y));
    }
    // Injection: once per (source, stream); a self-transfer costs nothing.
    if (src_local && hops > 0 && !(t.stream + 1 == last_inject_stream && t.src == last_inject_src)) {
      T.inj_pos.push_back(uint32_t(local_index(t.src.x, t.src.y)));
      T.inj_hops.push_back(uint32_t(hops));
      T.inj_links.push_back(new_links[ti]);
      last_inject_stream = t.stream + 1;
      last_inject_src = t.src;
    } else if (src_local && hops > 0) {
      T.inj_hops.back() = std::max(T.inj_hops.back(), uint32_t(hops));
      T.inj_links.back() += new_links[ti];
    }
    // Routes: one entry per stream on every local PE it touches. In relay mode the message goes
    // core to core over the neighbour links, which need no entries of the pattern's own.
    if (hops > 0 && !relay_mode) {
      auto touch = [&](PeCoord co) {
        if (!is_local(co.x, co.y)) return;
        const uint32_t li = uint32_t(local_index(co.x, co.y));
        if (pe_stream_[li] != t.stream + 1) {
          if (pe_routes_[li] == 0) touched_pes.push_back(li);
          pe_stream_[li] = t.stream + 1;
          ++pe_routes_[li];
        }
      };
      // Walk back from the destination, touching the PE each link enters, and stop at a link an
      // earlier path of this stream already walked (everything upstream of it is touched).
      const uint32_t walked = 0xFFFFFFFFu - t.stream;  // differs from any stream + 1 mark
      bool reached_source = true;
      for_each_route_link_reverse(mesh_, t.src, t.dst, [&](uint64_t l) {
        if (link_stream_[l] == walked) {
          reached_source = false;
          return false;
        }
        link_stream_[l] = walked;
        touch(link_head(l));
        return true;
      });
      if (reached_source) touch(t.src);
    }
  }
  for (uint64_t l : touched) link_load_[l] = link_stream_[l] = link_pmax_[l] = link_pmax_tag_[l] = 0;
  for (int r : used_peers) peer_slot_[size_t(r)] = -1;
  std::sort(touched_pes.begin(), touched_pes.end());
  for (uint32_t i : touched_pes) {
    T.route_pos.push_back(i);
    T.route_entries.push_back(pe_routes_[i]);
    pe_routes_[i] = 0;
    pe_stream_[i] = 0;
  }
  c.permutes = permutes_positions(T, pe_mark_.data());
  c.moves_disjoint = moves_disjoint(T, pe_mark_.data());
  c.clock_fusable = c.single_receipt = true;
  clock_flags(T, pe_mark_.data(), c.clock_fusable, c.single_receipt);
  for (size_t i = 0; i < T.peer.size(); ++i) distinct_senders(T.peer[i], recv_keys[i]);
  T.make_runs(1);  // buffers index these items through a table: one entry per run
  finish_build(c);
}

void Fabric::build_lines(Compiled& c, bool relay_mode) {
  clear_items(c, relay_mode);
  const LinePattern& L = c.lines;
  const Region& r = L.region;
  const bool ax = L.axis == Axis::X;
  const int32_t n = ax ? r.w : r.h;
  // Costs of every template some line uses: the plan's maxima are over every line of the step.
  std::vector<char> used(L.templates.size(), 0);
  for (int32_t t : L.template_of_line)
    if (t >= 0) used[size_t(t)] = 1;
  std::vector<LineCosts> costs(L.templates.size());
  c.streamed = cost_.stream_reductions;
  for (size_t t = 0; t < L.templates.size(); ++t) {
    if (!used[t]) continue;
    for (const LineTransfer& x : L.templates[t])
      if (x.relays == 0 && x.from != x.to) c.streamed = false;
    costs[t] = line_costs(L.templates[t], n, relay_mode, cost_, c.tile_bytes, c.name);
    c.max_hops = std::max(c.max_hops, costs[t].max_hops);
    c.max_latency = std::max(c.max_latency, costs[t].max_latency);
  }
  const Region mine = r.intersect(block_);
  c.permutes = true;
  c.moves_disjoint = true;
  c.clock_fusable = c.single_receipt = true;
  if (mine.empty() || n == 0) {
    finish_build(c);
    return;
  }
  c.touched = mine;
  // This rank's lines and positions: the same positions on every local line.
  const int32_t l0 = ax ? mine.y0 - r.y0 : mine.x0 - r.x0, l1 = l0 + (ax ? mine.h : mine.w);
  const int32_t a = ax ? mine.x0 - r.x0 : mine.y0 - r.y0, b = a + (ax ? mine.w : mine.h);
  const int64_t bw = block_.w;
  for (int32_t l = l0; l < l1;) {  // runs of consecutive lines with one template
    const int32_t t = L.template_of_line[size_t(l)];
    int32_t e = l + 1;
    while (e < l1 && L.template_of_line[size_t(e)] == t) ++e;
    if (t >= 0) {
      c.segs.emplace_back();
      c.segs.back().t = t;
      c.segs.back().first = l;
      c.segs.back().count = e - l;
    }
    l = e;
  }
  c.across = !ax;  // columns: neighbouring lines are neighbours in memory
  c.clock = Affine{int64_t(r.y0 - block_.y0) * bw + int64_t(r.x0 - block_.x0), ax ? bw : 1, ax ? 1 : bw};
  const Decomposition& d = decomposition();
  const int my_cx = rank() % d.ranks_x(), my_cy = rank() / d.ranks_x();
  auto owner_of_pos = [&](int32_t pos) {
    return ax ? d.rank_of(int(d.blocks_x().owner(r.x0 + pos)), my_cy)
              : d.rank_of(my_cx, int(d.blocks_y().owner(r.y0 + pos)));
  };
  auto local = [&](int32_t pos) { return pos >= a && pos < b; };
  std::vector<int> peer_of_rank(size_t(ranks()), -1);
  auto peer_index = [&](int rk) {
    if (peer_of_rank[size_t(rk)] < 0) {
      peer_of_rank[size_t(rk)] = int(c.peers.size());
      c.peers.push_back({rk, 0, 0, 0});
    }
    return size_t(peer_of_rank[size_t(rk)]);
  };
  std::vector<char> here(L.templates.size(), 0);  // used by a local line
  for (const auto& sg : c.segs) here[size_t(sg.t)] = 1;
  c.tmpl.resize(L.templates.size());
  for (size_t t = 0; t < L.templates.size(); ++t) {
    if (!here[t]) continue;
    const auto& src = L.templates[t];
    LineItems& T = c.tmpl[t];
    for (size_t e = 0; e < src.size(); ++e) {
      const int32_t from = src[e].from, to = src[e].to;
      const bool sl = local(from), dl = local(to);
      if (sl && dl) {
        T.loc_from.push_back(uint32_t(from));
        T.loc_to.push_back(uint32_t(to));
        T.loc_lat.push_back(costs[t].lat[e]);
      } else if (sl || dl) {
        const size_t pi = peer_index(owner_of_pos(sl ? to : from));
        if (T.peer.size() <= pi) T.peer.resize(pi + 1);
        if (sl) {
          T.peer[pi].send_from.push_back(uint32_t(from));
        } else {
          T.peer[pi].recv_to.push_back(uint32_t(to));
          T.peer[pi].recv_lat.push_back(costs[t].lat[e]);
        }
      }
    }
    for (const auto& in : costs[t].injects)
      if (local(in.pos)) {
        T.inj_pos.push_back(uint32_t(in.pos));
        T.inj_hops.push_back(in.hops);
        T.inj_links.push_back(in.links);
      }
    for (int32_t pos = a; pos < b; ++pos)
      if (costs[t].route_entries[size_t(pos)] > 0) {
        T.route_pos.push_back(uint32_t(pos));
        T.route_entries.push_back(costs[t].route_entries[size_t(pos)]);
      }
  }
  std::vector<uint32_t> marks(size_t(n), 0);
  for (size_t t = 0; t < c.tmpl.size(); ++t) {
    LineItems& T = c.tmpl[t];
    T.peer.resize(c.peers.size());
    if (here[t] && !permutes_positions(T, marks.data())) c.permutes = false;
    if (here[t] && !moves_disjoint(T, marks.data())) c.moves_disjoint = false;
    if (here[t]) clock_flags(T, marks.data(), c.clock_fusable, c.single_receipt);
    // Received items' senders, by position (the template's order is both ranks' order).
    for (size_t i = 0; i < T.peer.size(); ++i) {
      std::vector<int64_t> keys;
      const auto& src = L.templates[t];
      if (here[t])
        for (size_t e = 0; e < src.size(); ++e)
          if (!local(src[e].from) && local(src[e].to) && peer_index(owner_of_pos(src[e].from)) == i)
            keys.push_back(src[e].from);
      distinct_senders(T.peer[i], keys);
    }
    T.make_runs(std::numeric_limits<uint32_t>::max());
  }
  finish_build(c);
}

void Fabric::finish_build(Compiled& c) {
  // Items per execution, and where each segment's items start.
  c.nloc = 0;
  for (auto& pr : c.peers) pr.sends = pr.recvs = pr.recv_tiles = 0;
  for (auto& sg : c.segs) {
    const LineItems& T = c.tmpl[size_t(sg.t)];
    const size_t lines = size_t(sg.count);
    sg.loc0 = c.nloc;
    c.nloc += T.loc_from.size() * lines;
    sg.send0.resize(c.peers.size());
    sg.recv0.resize(c.peers.size());
    sg.tile0.resize(c.peers.size());
    for (size_t i = 0; i < c.peers.size(); ++i) {
      sg.send0[i] = c.peers[i].sends;
      sg.recv0[i] = c.peers[i].recvs;
      sg.tile0[i] = c.peers[i].recv_tiles;
      c.peers[i].sends += T.peer[i].send_from.size() * lines;
      c.peers[i].recvs += T.peer[i].recv_to.size() * lines;
      c.peers[i].recv_tiles += T.peer[i].recv_tiles * lines;
    }
  }
  c.nsends = c.nrecvs = 0;
  for (const auto& pr : c.peers) {
    c.nsends += pr.sends;
    c.nrecvs += pr.recvs;
  }
  c.max_recv_lat = 0;
  for (const auto& sg : c.segs)
    for (const auto& pr : c.tmpl[size_t(sg.t)].peer)
      for (uint64_t l : pr.recv_lat) c.max_recv_lat = std::max(c.max_recv_lat, l);
  // One execution's bytes and byte-hops on this rank's PEs (the counts flush_plan adds per PE).
  const Compiled::Side cs = c.clock_side();
  const uint64_t tb = c.tile_bytes;
  c.per_exec = WorkCounts{};
  c.spans(ItemKind::inj, 0, cs, cs, [&](const Span& sp) { c.per_exec.bytes_sent += uint64_t(sp.n) * tb; });
  c.spans(ItemKind::inj_links, 0, cs, cs, [&](const Span& sp) { c.per_exec.byte_hops += uint64_t(sp.n) * tb * sp.v; });
  c.spans(ItemKind::loc, 0, cs, cs, [&](const Span& sp) {
    for (int64_t j = 0; j < sp.n; ++j)
      if (!(sp.v == 0 && sp.a + j * sp.as == sp.b + j * sp.bs)) c.per_exec.bytes_received += tb;
  });
  c.per_exec.bytes_received += c.nrecvs * tb;
}

}  // namespace wm
