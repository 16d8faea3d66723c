#pragma once
// The plain reference of the fabric: one process, the whole mesh in global arrays, every step
// computed from the rules of cost_model.hpp with ordered maps and no caching, no MPI and no
// decomposition. Tests run the same sequence on Fabric (any rank count) and here, and require
// identical tiles, clocks and counters.
#include <cstring>
#include <map>
#include <set>
#include <vector>

#include "wafermesh/noc/cost_model.hpp"
#include "wafermesh/noc/fabric.hpp"
#include "wafermesh/noc/line_plans.hpp"
#include "wafermesh/noc/wafer_data.hpp"
#include "wafermesh/util/error.hpp"

namespace wm {

template <class T>
struct RefBuf {
  Region region;
  size_t elems = 0;
  std::vector<std::vector<T>> tiles;  // (region PEs row-major, elems)
  std::vector<T>& at(PeCoord c) { return tiles[size_t(c.y - region.y0) * size_t(region.w) + size_t(c.x - region.x0)]; }
};

struct RefCosts {
  std::vector<uint64_t> latency, hops;    // per transfer
  std::map<int64_t, uint64_t> routes;     // PE id -> route entries this step needs
  std::map<std::pair<int64_t, uint32_t>, uint64_t> stream_links;  // (source PE id, stream) -> distinct links
};
// Loads, latencies and route needs of one step (strict routes, no relay fallback).
RefCosts reference_step_costs(const MachineParams& p, const MeshShape& m, const std::vector<Transfer>& t,
                              size_t tile_bytes);

class ReferenceFabric {
 public:
  explicit ReferenceFabric(const MachineParams& p)
      : p_(p), cost_(CostModel::from(p)), mesh_{int32_t(p.width_pes), int32_t(p.height_pes)},
        pes_(size_t(mesh_.pe_count())) {}

  std::vector<PeCounters>& pes() { return pes_; }
  PeCounters& pe(PeCoord c) { return pes_[size_t(mesh_.id(c.x, c.y))]; }

  // A tile of `elems` T on the wafer: wafer_elem_bytes<T> each (fp data at wafer.dtype).
  template <class T>
  uint64_t wafer_bytes(size_t elems) const {
    return uint64_t(elems) * (WaferFp<T>::value ? (p_.wafer_dtype == "fp32" ? 4 : 2) : sizeof(T));
  }
  template <class T>
  RefBuf<T> alloc(Region r, size_t elems) {
    const uint64_t b = wafer_bytes<T>(elems);
    for (int32_t y = r.y0; y < r.y0 + r.h; ++y)
      for (int32_t x = r.x0; x < r.x0 + r.w; ++x) {
        PeCounters& c = pe({x, y});
        if (c.sram_bytes + b > uint64_t(p_.sram_bytes)) throw LimitError("reference: SRAM");
        c.sram_bytes += b;
        c.sram_peak_bytes = std::max(c.sram_peak_bytes, c.sram_bytes);
      }
    return RefBuf<T>{r, elems, std::vector<std::vector<T>>(size_t(r.size()), std::vector<T>(elems))};
  }
  template <class T>
  void free(RefBuf<T>& b) {
    for (int32_t y = b.region.y0; y < b.region.y0 + b.region.h; ++y)
      for (int32_t x = b.region.x0; x < b.region.x0 + b.region.w; ++x) pe({x, y}).sram_bytes -= wafer_bytes<T>(b.elems);
  }

  // Cycles of `n` operations at the rate of their kind of work: pe.fp16_macs_per_cycle for fp work
  // (multiply-accumulates and element operations) with an fp16/bf16 wafer, pe.ternary_ops_per_cycle for ternary, else (and for a rate of 0)
  // pe.macs_per_cycle. A task adds its overhead.
  uint64_t ops_cycles(uint64_t n, Work w) const {
    uint64_t rate = uint64_t(p_.macs_per_cycle);
    if ((w == Work::fp || w == Work::elem) && p_.wafer_dtype != "fp32" && p_.fp16_macs_per_cycle > 0) rate = uint64_t(p_.fp16_macs_per_cycle);
    if (w == Work::ternary && p_.ternary_ops_per_cycle > 0) rate = uint64_t(p_.ternary_ops_per_cycle);
    return (n + rate - 1) / rate;
  }
  uint64_t task_cycles(uint64_t n, Work w) const { return n ? uint64_t(p_.task_overhead_cycles) + ops_cycles(n, w) : 0; }
  void charge_compute(PeCoord c, uint64_t ops, Work w = Work::fp) {
    const uint64_t cyc = task_cycles(ops, w);
    pe(c).clock_cycles += cyc;
    pe(c).compute_cycles += cyc;
    pe(c).ops.of(w) += ops;
  }

  // Applies pending arrivals (after a deferred step): the latest arrival, then noc.receive_cycles
  // for every message taken in.
  void wait_arrivals() {
    for (auto& [id, a] : pending_) {
      PeCounters& c = pes_[size_t(id)];
      if (a.first > c.clock_cycles) {
        c.stall_cycles += a.first - c.clock_cycles;
        c.clock_cycles = a.first;
      }
      c.clock_cycles += cost_.receive_cycles * a.second;
      c.compute_cycles += cost_.receive_cycles * a.second;
    }
    pending_.clear();
  }
  // Every PE of r takes the latest clock of r.
  void barrier_clocks(const Region& r) {
    uint64_t mx = 0;
    for (int32_t y = r.y0; y < r.y0 + r.h; ++y)
      for (int32_t x = r.x0; x < r.x0 + r.w; ++x) mx = std::max(mx, pe({x, y}).clock_cycles);
    for (int32_t y = r.y0; y < r.y0 + r.h; ++y)
      for (int32_t x = r.x0; x < r.x0 + r.w; ++x) {
        pe({x, y}).stall_cycles += mx - pe({x, y}).clock_cycles;
        pe({x, y}).clock_cycles = mx;
      }
  }

  // One step: every transfer moves src's tile (read before the step) to dst. With defer, the
  // arrivals wait for wait_arrivals().
  template <class T>
  void step(const std::vector<Transfer>& t, RefBuf<T>& src, RefBuf<T>& dst, bool defer = false) {
    const uint64_t bytes = wafer_bytes<T>(src.elems);
    const RefCosts k = reference_step_costs(p_, mesh_, t, bytes);
    for (const auto& [id, n] : k.routes) {  // configure
      PeCounters& c = pes_[size_t(id)];
      if (c.route_entries + n > uint64_t(p_.route_entries)) throw LimitError("reference: routes");
      c.route_entries += n;
      c.route_peak_entries = std::max(c.route_peak_entries, c.route_entries);
    }
    std::vector<std::vector<T>> moved;
    std::vector<uint64_t> depart;
    for (const Transfer& x : t) {
      moved.push_back(src.at(x.src));
      depart.push_back(pe(x.src).clock_cycles);
    }
    // A step of streaming reduction stages only: its receivers pay no receive_cycles (as the engine).
    bool streamed = cost_.stream_reductions;
    for (size_t i = 0; i < t.size(); ++i)
      if (k.hops[i] > 0 && t[i].relays == 0) streamed = false;
    std::set<std::pair<int64_t, uint32_t>> injected;  // (source, stream)
    for (size_t i = 0; i < t.size(); ++i) {
      if (k.hops[i] == 0) continue;
      PeCounters& s = pe(t[i].src);
      const std::pair<int64_t, uint32_t> key{mesh_.id(t[i].src.x, t[i].src.y), t[i].stream};
      if (injected.insert(key).second) {
        const uint64_t w = cost_.inject_cycles(bytes);
        s.clock_cycles += w;
        s.inject_cycles += w;
        s.bytes_sent += bytes;
        s.messages_sent += 1;
        s.byte_hops += bytes * k.stream_links.at(key);
      }
      s.max_hops = std::max(s.max_hops, k.hops[i]);
    }
    for (size_t i = 0; i < t.size(); ++i) {
      dst.at(t[i].dst) = moved[i];
      if (k.hops[i] == 0) continue;
      auto& a = pending_[mesh_.id(t[i].dst.x, t[i].dst.y)];
      a.first = std::max(a.first, depart[i] + k.latency[i]);
      a.second += streamed ? 0 : 1;
      pe(t[i].dst).bytes_received += bytes;
    }
    if (!defer) wait_arrivals();
    for (const auto& [id, n] : k.routes) pes_[size_t(id)].route_entries -= n;  // release
  }

  template <class T>
  void shift(RefBuf<T>& b, Axis axis, int64_t d, bool wrap, const LinePerm& perm, bool defer = false) {
    const int32_t n = line_length(b.region, axis);
    std::vector<Transfer> t;
    for (int32_t line = 0; line < line_count(b.region, axis); ++line)
      for (int32_t l = 0; l < n; ++l) {
        int64_t to = l + d;
        if (wrap) to = ((to % n) + n) % n;
        else if (to < 0 || to >= n) continue;
        t.push_back({line_pe(b.region, axis, line, perm.phys(l)), line_pe(b.region, axis, line, perm.phys(int32_t(to))),
                     uint32_t(line * n + l), 0});
      }
    step(t, b, b, defer);
  }
  template <class T>
  void broadcast(RefBuf<T>& b, Axis axis, int32_t root) {
    std::vector<Transfer> t;
    for (int32_t line = 0; line < line_count(b.region, axis); ++line)
      for (int32_t pos = 0; pos < line_length(b.region, axis); ++pos)
        if (pos != root)
          t.push_back({line_pe(b.region, axis, line, root), line_pe(b.region, axis, line, pos), uint32_t(line), 0});
    step(t, b, b);
  }
  template <class T>
  void reduce(RefBuf<T>& b, Axis axis, int32_t root) {
    const int32_t n = line_length(b.region, axis), lines = line_count(b.region, axis);
    RefBuf<T> inl = alloc<T>(b.region, b.elems), inr = alloc<T>(b.region, b.elems);
    auto add = [&](RefBuf<T>& in, int32_t pos) {
      for (int32_t line = 0; line < lines; ++line) {
        const PeCoord c = line_pe(b.region, axis, line, pos);
        for (size_t k = 0; k < b.elems; ++k) b.at(c)[k] = in.at(c)[k] + b.at(c)[k];
        if (cost_.stream_reductions) {  // an add folded into the stream: no task overhead
          const uint64_t cyc = ops_cycles(b.elems, work_of<T>());
          pe(c).clock_cycles += cyc;
          pe(c).compute_cycles += cyc;
          pe(c).ops.of(work_of<T>()) += b.elems;  // one operation per element added
        } else {
          charge_compute(c, b.elems, work_of<T>());
        }
      }
    };
    auto chain = [&](int32_t from, RefBuf<T>& in) {
      const int32_t to = from < root ? from + 1 : from - 1;
      std::vector<Transfer> t;
      for (int32_t line = 0; line < lines; ++line)
        t.push_back({line_pe(b.region, axis, line, from), line_pe(b.region, axis, line, to), uint32_t(line), 1});
      step(t, b, in);
      if (to != root) add(in, to);
    };
    for (int32_t s = 0; s < std::max(root, n - 1 - root); ++s) {
      if (s < root) chain(s, inl);
      if (s < n - 1 - root) chain(n - 1 - s, inr);
    }
    if (root > 0) add(inl, root);
    if (root < n - 1) add(inr, root);
    if (cost_.stream_reductions && n > 1)  // the root waits for the streams' tail once
      for (int32_t line = 0; line < lines; ++line) {
        PeCounters& c = pe(line_pe(b.region, axis, line, root));
        const uint64_t w = cost_.wire_cycles(wafer_bytes<T>(b.elems));
        c.clock_cycles += w;
        c.stall_cycles += w;
      }
    free(inr);
    free(inl);
  }
  template <class T>
  void send(RefBuf<T>& b, PeCoord s, PeCoord d) {
    step(std::vector<Transfer>{{s, d, 0, 0}}, b, b);
  }

 private:
  MachineParams p_;
  CostModel cost_;
  MeshShape mesh_;
  std::vector<PeCounters> pes_;  // by PE id
  std::map<int64_t, std::pair<uint64_t, uint64_t>> pending_;  // PE id -> latest pending arrival, messages
};

}  // namespace wm
