#include "wafermesh/noc/fabric.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "wafermesh/mesh/mpi_traits.hpp"
#include "wafermesh/util/error.hpp"

namespace wm {

namespace {
// MPI reduction of Fabric::summarize's element: max of the first six figures, sum of the last two.
void reduce_summary(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const uint64_t*>(in);
  auto* b = static_cast<uint64_t*>(inout);
  for (int n = 0; n < *len; ++n, a += 8, b += 8) {
    for (int i = 0; i < 6; ++i) b[i] = std::max(a[i], b[i]);
    b[6] += a[6];
    b[7] += a[7];
  }
}

constexpr int kTagStep = 7100;
constexpr int64_t kNoPe = std::numeric_limits<int64_t>::max();

std::string pe_text(const MeshShape& m, int64_t id) {
  const PeCoord c = m.coord(id);
  return "PE (" + std::to_string(c.x) + ", " + std::to_string(c.y) + ")";
}
}  // namespace

// ---------------------------------------------------------------- TransferPlan
TransferPlan::TransferPlan(TransferPlan&& o) noexcept { *this = std::move(o); }

TransferPlan& TransferPlan::operator=(TransferPlan&& o) noexcept {
  if (this == &o) return *this;
  if (fabric_ && routes_active_) fabric_->release_routes(*this);
  fabric_ = o.fabric_;
  name_ = std::move(o.name_);
  tile_bytes_ = o.tile_bytes_;
  max_hops_ = o.max_hops_;
  max_latency_ = o.max_latency_;
  relay_mode_ = o.relay_mode_;
  routes_active_ = o.routes_active_;
  cover_ = std::move(o.cover_);
  local_ = std::move(o.local_);
  peers_ = std::move(o.peers_);
  injects_ = std::move(o.injects_);
  routes_ = std::move(o.routes_);
  route_key_ = std::move(o.route_key_);
  permutes_ = o.permutes_;
  o.routes_active_ = false;
  o.fabric_ = nullptr;
  return *this;
}

TransferPlan::~TransferPlan() {
  if (fabric_ && routes_active_) fabric_->release_routes(*this);
}

void TransferPlan::release_routes() {
  if (!fabric_) return;
  if (routes_active_) fabric_->release_routes(*this);
  if (relay_mode_) fabric_->build(*this, false);
}

// ---------------------------------------------------------------- Fabric
Fabric::Fabric(MPI_Comm comm, const MachineParams& params)
    : params_(params),
      cost_(CostModel::from(params)),
      mesh_{int32_t(params.width_pes), int32_t(params.height_pes)},
      cart_(comm, mesh_, int(params.ranks_x), int(params.ranks_y)) {
  block_ = cart_.decomposition().block(cart_.rank());
  pes_.assign(size_t(block_.size()), PeCounters{});
  pending_.assign(size_t(block_.size()), 0);
  // Scratch for plan building, allocated (and touched) once here rather than inside a timed step.
  link_load_.assign(size_t(mesh_.pe_count()) * 4, 0);
  link_stream_.assign(size_t(mesh_.pe_count()) * 4, 0);
  link_pmax_.assign(size_t(mesh_.pe_count()) * 4, 0);
  link_pmax_tag_.assign(size_t(mesh_.pe_count()) * 4, 0);
  pe_stream_.assign(pes_.size(), 0);
  pe_routes_.assign(pes_.size(), 0);
  sram_all_.assign(size_t(mesh_.pe_count()), 0);
  MPI_Type_contiguous(8, mpi_type<uint64_t>(), &summary_type_);
  MPI_Type_commit(&summary_type_);
  MPI_Op_create(&reduce_summary, 1, &summary_op_);
}

void Fabric::charge_compute(int32_t x, int32_t y, uint64_t macs) {
  PeCounters& c = pe(x, y);
  const uint64_t cyc = cost_.compute_cycles(macs);
  c.clock_cycles += cyc;
  c.compute_cycles += cyc;
}

void Fabric::charge_compute(const Region& r, uint64_t macs_each) {
  const Region l = r.intersect(block_);
  const uint64_t cyc = cost_.compute_cycles(macs_each);
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y)
    for (int32_t x = l.x0; x < l.x0 + l.w; ++x) {
      PeCounters& c = pe(x, y);
      c.clock_cycles += cyc;
      c.compute_cycles += cyc;
    }
}

void Fabric::wait_arrivals() {
  for (size_t i : pending_list_) {
    if (pending_[i] > pes_[i].clock_cycles) {
      pes_[i].stall_cycles += pending_[i] - pes_[i].clock_cycles;
      pes_[i].clock_cycles = pending_[i];
    }
    pending_[i] = 0;
  }
  pending_list_.clear();
}

void Fabric::note_arrival(size_t i, uint64_t arrival) {
  if (pending_[i] == 0) pending_list_.push_back(i);
  pending_[i] = std::max(pending_[i], arrival);
}

void Fabric::barrier_clocks(const Region& r) {
  const Region l = r.intersect(block_);
  uint64_t mx = 0;
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y)
    for (int32_t x = l.x0; x < l.x0 + l.w; ++x) mx = std::max(mx, pe(x, y).clock_cycles);
  // A region inside one rank's block needs nobody else: every rank sees the same decomposition, so
  // all agree on skipping the collective, and the others stay free to work on their own regions.
  // (Blocks form a grid, so two opposite corners with one owner put the whole region in its block.)
  if (r.w <= 0 || r.h <= 0) return;
  const Decomposition& dec = decomposition();
  if (dec.owner(r.x0, r.y0) != dec.owner(r.x0 + r.w - 1, r.y0 + r.h - 1))
    MPI_Allreduce(MPI_IN_PLACE, &mx, 1, mpi_type<uint64_t>(), MPI_MAX, comm());
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y)
    for (int32_t x = l.x0; x < l.x0 + l.w; ++x) {
      PeCounters& c = pe(x, y);
      c.stall_cycles += mx - c.clock_cycles;
      c.clock_cycles = mx;
    }
}

void Fabric::advance_clocks(const Region& r, uint64_t t) {
  const Region l = r.intersect(block_);
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y)
    for (int32_t x = l.x0; x < l.x0 + l.w; ++x) {
      PeCounters& c = pe(x, y);
      if (c.clock_cycles >= t) continue;
      c.stall_cycles += t - c.clock_cycles;
      c.clock_cycles = t;
    }
}

void Fabric::reset_peaks() {
  if (peaks_held_) return;
  for (PeCounters& c : pes_) {
    c.sram_peak_bytes = c.sram_bytes;
    c.route_peak_entries = c.route_entries;
    c.max_hops = 0;
  }
}

void Fabric::throw_limit_collective(int64_t bad_pe, uint64_t need_local, const std::string& what,
                                    const std::string& limit_text) {
  // The owner of the offending PE knows its exact need; everyone learns it, then all throw.
  const PeCoord c = mesh_.coord(bad_pe);
  const int owner = decomposition().owner(c.x, c.y);
  uint64_t need = need_local;
  MPI_Bcast(&need, 1, mpi_type<uint64_t>(), owner, comm());
  std::ostringstream s;
  s << pe_text(mesh_, bad_pe) << " needs " << need << " " << what << "; the limit is " << limit_text;
  throw LimitError(s.str());
}

void Fabric::sram_acquire(const Region& r, uint64_t bytes_each, const std::string& what) {
  // Every rank keeps the SRAM use of every PE (all allocations are collective and region-uniform),
  // so every rank finds the same first offending PE without communicating.
  const uint64_t limit = uint64_t(params_.sram_bytes);
  for (int32_t y = r.y0; y < r.y0 + r.h; ++y) {
    const uint32_t* row = sram_all_.data() + size_t(mesh_.id(r.x0, y));
    for (int32_t x = 0; x < r.w; ++x)
      if (uint64_t(row[x]) + bytes_each > limit) {
        std::ostringstream msg;
        msg << pe_text(mesh_, mesh_.id(r.x0 + x, y)) << " needs " << uint64_t(row[x]) + bytes_each
            << " bytes of SRAM for " << what << "; the limit is pe.sram_bytes = " << limit
            << " (shrink the tiles: a larger region or a smaller problem)";
        throw LimitError(msg.str());
      }
  }
  for (int32_t y = r.y0; y < r.y0 + r.h; ++y) {
    uint32_t* row = sram_all_.data() + size_t(mesh_.id(r.x0, y));
    for (int32_t x = 0; x < r.w; ++x) row[x] += uint32_t(bytes_each);
  }
  const Region l = r.intersect(block_);
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y)
    for (int32_t x = l.x0; x < l.x0 + l.w; ++x) {
      PeCounters& c = pe(x, y);
      c.sram_bytes += bytes_each;
      c.sram_peak_bytes = std::max(c.sram_peak_bytes, c.sram_bytes);
    }
}

void Fabric::sram_release(const Region& r, uint64_t bytes_each) {
  for (int32_t y = r.y0; y < r.y0 + r.h; ++y) {
    uint32_t* row = sram_all_.data() + size_t(mesh_.id(r.x0, y));
    for (int32_t x = 0; x < r.w; ++x) row[x] -= uint32_t(bytes_each);
  }
  const Region l = r.intersect(block_);
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y)
    for (int32_t x = l.x0; x < l.x0 + l.w; ++x) pe(x, y).sram_bytes -= bytes_each;
}

TransferPlan Fabric::plan(std::vector<Transfer> transfers, size_t tile_bytes, std::string name) {
  TransferPlan p;
  p.fabric_ = this;
  p.name_ = std::move(name);
  p.tile_bytes_ = tile_bytes;
  p.cover_ = std::move(transfers);
  build(p, false);
  return p;
}

void Fabric::build(TransferPlan& p, bool relay_mode) {
  p.relay_mode_ = relay_mode;
  p.local_.clear();
  p.peers_.clear();
  p.injects_.clear();
  p.routes_.clear();
  p.max_hops_ = p.max_latency_ = 0;
  const auto& tr = p.cover_;
  for (size_t i = 0; i < tr.size(); ++i) {
    if (!mesh_.contains(tr[i].src.x, tr[i].src.y) || !mesh_.contains(tr[i].dst.x, tr[i].dst.y))
      throw std::logic_error("transfer outside the mesh in plan " + p.name_);
    // A multicast stream is contiguous and has one source (checked against its predecessor).
    if (i > 0 && tr[i].stream == tr[i - 1].stream && !(tr[i].src == tr[i - 1].src))
      throw std::logic_error("multicast stream with two sources in plan " + p.name_);
  }
  // 1. Loads: distinct streams per directed link. Stream ids are stored +1 so 0 means none.
  std::vector<uint64_t> touched;      // links with a load, reset at the end
  std::vector<size_t> touched_pes;    // local PEs with route entries, reset at the end
  touched.reserve(tr.size() * 2);
  // Each path is walked back from its destination and stops where an earlier path of the same
  // stream joined it (links marked with the stream form a tree from the source), so a line
  // multicast costs O(line) rather than O(line^2).
  for (const Transfer& t : tr) {
    for_each_route_link_reverse(mesh_, t.src, t.dst, [&](uint64_t l) {
      if (link_stream_[l] == t.stream + 1) return false;
      if (link_load_[l] == 0) touched.push_back(l);
      link_stream_[l] = t.stream + 1;
      ++link_load_[l];
      return true;
    });
  }
  // 2. Per transfer: latency; keep those with a local end.
  std::map<int, size_t> peer_index;
  auto peer = [&](int r) -> TransferPlan::Peer& {
    auto it = peer_index.find(r);
    if (it == peer_index.end()) {
      it = peer_index.emplace(r, p.peers_.size()).first;
      p.peers_.push_back({r, {}, {}});
    }
    return p.peers_[it->second];
  };
  const Decomposition& d = decomposition();
  std::vector<uint64_t> chain;  // links of the current path not yet known for its stream
  uint32_t last_inject_stream = 0;
  PeCoord last_inject_src{-1, -1};
  for (const Transfer& t : tr) {
    // Busiest link of the path: the prefix maximum from the source, kept per link for the stream
    // (again walked back only to where an earlier path of the stream has it).
    uint64_t load = 0;
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
    load = pm;
    const uint64_t hops = hop_count(t.src, t.dst);
    const uint64_t relays = t.relays + (relay_mode && hops > 1 ? hops - 1 : 0);
    const uint64_t lat = hops == 0 ? 0 : cost_.transfer_cycles(hops, relays, p.tile_bytes_, load);
    p.max_hops_ = std::max(p.max_hops_, hops);
    p.max_latency_ = std::max(p.max_latency_, lat);
    const bool src_local = is_local(t.src.x, t.src.y), dst_local = is_local(t.dst.x, t.dst.y);
    const TransferPlan::Item item{t.src, t.dst, lat};
    if (src_local && dst_local) {
      p.local_.push_back(item);
    } else if (src_local) {
      peer(d.owner(t.dst.x, t.dst.y)).sends.push_back(item);
    } else if (dst_local) {
      peer(d.owner(t.src.x, t.src.y)).recvs.push_back(item);
    }
    // Injection: once per (source, stream); a self-transfer costs nothing.
    if (src_local && hops > 0 && !(t.stream + 1 == last_inject_stream && t.src == last_inject_src)) {
      p.injects_.push_back({t.src, cost_.wire_cycles(p.tile_bytes_), p.tile_bytes_, hops});
      last_inject_stream = t.stream + 1;
      last_inject_src = t.src;
    } else if (src_local && hops > 0) {
      p.injects_.back().hops = std::max(p.injects_.back().hops, hops);
    }
    // Routes: one entry per stream on every local PE it touches. In relay mode the message goes
    // core to core over the neighbour links, which need no entries of the pattern's own.
    if (hops > 0 && !relay_mode) {
      auto touch = [&](PeCoord c) {
        if (!is_local(c.x, c.y)) return;
        const size_t li = local_index(c.x, c.y);
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
  {
    // Does the step only permute tiles among this rank's PEs (each sends one, receives one)?
    std::vector<size_t> from, to;
    for (const auto& it : p.local_) {
      from.push_back(local_index(it.src.x, it.src.y));
      to.push_back(local_index(it.dst.x, it.dst.y));
    }
    for (const auto& pr : p.peers_) {
      for (const auto& it : pr.sends) from.push_back(local_index(it.src.x, it.src.y));
      for (const auto& it : pr.recvs) to.push_back(local_index(it.dst.x, it.dst.y));
    }
    std::sort(from.begin(), from.end());
    std::sort(to.begin(), to.end());
    p.permutes_ = from == to && std::adjacent_find(from.begin(), from.end()) == from.end();
  }
  std::sort(touched_pes.begin(), touched_pes.end());
  for (size_t i : touched_pes) {
    const PeCoord c{int32_t(block_.x0 + int32_t(i % size_t(block_.w))), int32_t(block_.y0 + int32_t(i / size_t(block_.w)))};
    p.routes_.push_back({c, pe_routes_[i]});
    pe_routes_[i] = 0;
    pe_stream_[i] = 0;
  }
}

void Fabric::activate_routes(TransferPlan& p) {
  if (p.routes_active_) return;
  if (!p.route_key_.empty()) {
    auto it = shared_routes_.find(p.route_key_);
    if (it != shared_routes_.end() && it->second.users > 0) {  // the same routes are configured
      it->second.users += 1;
      p.routes_active_ = true;
      return;
    }
  }
  const uint64_t limit = uint64_t(params_.route_entries);
  int64_t bad = kNoPe;
  uint64_t bad_need = 0;
  for (const auto& r : p.routes_) {
    const PeCounters& c = pe(r.pe.x, r.pe.y);
    const int64_t id = mesh_.id(r.pe.x, r.pe.y);
    if (c.route_entries + r.entries > limit && id < bad) {
      bad = id;
      bad_need = c.route_entries + r.entries;
    }
  }
  int64_t gbad = bad;
  MPI_Allreduce(&bad, &gbad, 1, mpi_type<int64_t>(), MPI_MIN, comm());
  if (gbad != kNoPe) {
    if (!p.relay_mode_ && params_.route_fallback == "relay") {
      build(p, true);  // same on every rank: all saw the same gbad
      activate_routes(p);
      return;
    }
    throw_limit_collective(gbad, gbad == bad ? bad_need : 0, "route entries for " + p.name_,
                           "noc.route_entries = " + std::to_string(limit) +
                               (params_.route_fallback == "relay" ? " even with software relays"
                                                                   : " (set noc.route_fallback = relay to relay in software)"));
  }
  for (const auto& r : p.routes_) {
    PeCounters& c = pe(r.pe.x, r.pe.y);
    c.route_entries += r.entries;
    c.route_peak_entries = std::max(c.route_peak_entries, c.route_entries);
  }
  p.routes_active_ = true;
  if (!p.route_key_.empty()) shared_routes_[p.route_key_] = SharedRoutes{1, p.routes_};
}

void Fabric::release_routes(TransferPlan& p) {
  if (!p.routes_active_) return;
  p.routes_active_ = false;
  if (!p.route_key_.empty()) {
    auto it = shared_routes_.find(p.route_key_);
    if (it != shared_routes_.end()) {
      if (--it->second.users > 0) return;
      for (const auto& r : it->second.routes) pe(r.pe.x, r.pe.y).route_entries -= r.entries;
      shared_routes_.erase(it);
      return;
    }
  }
  for (const auto& r : p.routes_) pe(r.pe.x, r.pe.y).route_entries -= r.entries;
}

std::vector<uint64_t> Fabric::departures(const TransferPlan& p) const {
  std::vector<uint64_t> d;
  for (const auto& it : p.local_) d.push_back(pe(it.src.x, it.src.y).clock_cycles);
  for (const auto& pr : p.peers_)
    for (const auto& it : pr.sends) d.push_back(pe(it.src.x, it.src.y).clock_cycles);
  return d;
}

void Fabric::execute(TransferPlan& p, const TileView& src, const TileView& dst, Sync sync,
                     const std::vector<uint64_t>* departs) {
  if (p.fabric_ != this) throw std::logic_error("plan " + p.name_ + " belongs to another fabric");
  if (src.tile_bytes != p.tile_bytes_ || dst.tile_bytes != p.tile_bytes_)
    throw std::logic_error("plan " + p.name_ + " was built for " + std::to_string(p.tile_bytes_) +
                           "-byte tiles, buffers hold " + std::to_string(src.tile_bytes) + "/" +
                           std::to_string(dst.tile_bytes));
  activate_routes(p);
  const size_t tb = p.tile_bytes_;
  const bool data = !timing_only_;  // execute_timing: clocks and counters only
  const size_t mb = data ? tb : 0;        // tile bytes carried by the messages
  const auto t0 = std::chrono::steady_clock::now();
  // Departure clock of the k-th local sender (local moves first, then each peer's sends).
  size_t next_depart = 0;
  auto depart = [&](PeCoord s) { return departs ? (*departs)[next_depart++] : pe(s.x, s.y).clock_cycles; };
  std::vector<uint64_t>& local_departs = local_departs_;  // reused: this runs every step
  local_departs.resize(p.local_.size());
  for (size_t k = 0; k < p.local_.size(); ++k) local_departs[k] = depart(p.local_[k].src);
  // 1. Receives: one message per peer: [departure clocks: n x uint64][tiles: n x tile_bytes].
  // Message buffers persist across steps: fresh multi-megabyte allocations every step cost page
  // faults and zeroing that dominated large shifts.
  if (rbuf_.size() < p.peers_.size()) {
    rbuf_.resize(p.peers_.size());
    sbuf_.resize(p.peers_.size());
  }
  auto& rbuf = rbuf_;
  auto& sbuf = sbuf_;
  std::vector<MPI_Request> reqs;
  reqs.reserve(p.peers_.size() * 2);
  for (size_t i = 0; i < p.peers_.size(); ++i) {
    const auto& pr = p.peers_[i];
    if (pr.recvs.empty()) continue;
    rbuf[i].resize(pr.recvs.size() * (sizeof(uint64_t) + mb));
    reqs.emplace_back();
    MPI_Irecv(rbuf[i].data(), int(rbuf[i].size()), MPI_BYTE, pr.rank, kTagStep, comm(), &reqs.back());
  }
  // 2. Sends, packed with the departure clocks read before this step charges anything.
  for (size_t i = 0; i < p.peers_.size(); ++i) {
    const auto& pr = p.peers_[i];
    if (pr.sends.empty()) continue;
    const size_t n = pr.sends.size();
    sbuf[i].resize(n * (sizeof(uint64_t) + mb));
    auto* dep = reinterpret_cast<uint64_t*>(sbuf[i].data());
    std::byte* payload = sbuf[i].data() + n * sizeof(uint64_t);
    for (size_t k = 0; k < n; ++k) {
      const auto& it = pr.sends[k];
      dep[k] = depart(it.src);
      if (data) std::memcpy(payload + k * tb, src.at(it.src.x, it.src.y), tb);
    }
    reqs.emplace_back();
    MPI_Isend(sbuf[i].data(), int(sbuf[i].size()), MPI_BYTE, pr.rank, kTagStep, comm(), &reqs.back());
    ++mpi_messages_sent_;
    mpi_bytes_sent_ += sbuf[i].size();
  }
  // 3. Local moves. An in-place permutation moves slot indices, not bytes; the slots of tiles
  // that left for other ranks take the tiles that arrive. Otherwise, if the buffers alias, every
  // source is read before any destination is written.
  const bool by_slot = data && src.base == dst.base && src.slot != nullptr && src.slot == dst.slot && p.permutes_;
  std::vector<uint32_t> freed_slots;
  if (!data) {
    // no bytes move
  } else if (by_slot) {
    std::vector<uint32_t> moved(p.local_.size());
    for (size_t k = 0; k < p.local_.size(); ++k) moved[k] = src.slot[src.index(p.local_[k].src.x, p.local_[k].src.y)];
    for (const auto& pr : p.peers_)
      for (const auto& it : pr.sends) freed_slots.push_back(src.slot[src.index(it.src.x, it.src.y)]);
    for (size_t k = 0; k < p.local_.size(); ++k) dst.slot[dst.index(p.local_[k].dst.x, p.local_[k].dst.y)] = moved[k];
  } else {
    const bool alias = src.base == dst.base && !p.local_.empty();
    if (alias) {
      staging_.resize(p.local_.size() * tb);
      for (size_t k = 0; k < p.local_.size(); ++k)
        std::memcpy(staging_.data() + k * tb, src.at(p.local_[k].src.x, p.local_[k].src.y), tb);
    }
    for (size_t k = 0; k < p.local_.size(); ++k) {
      const auto& it = p.local_[k];
      const std::byte* from = alias ? staging_.data() + k * tb : src.at(it.src.x, it.src.y);
      if (from != dst.at(it.dst.x, it.dst.y)) std::memcpy(dst.at(it.dst.x, it.dst.y), from, tb);
    }
  }
  for (size_t k = 0; k < p.local_.size(); ++k) {
    const auto& it = p.local_[k];
    if (it.latency == 0 && it.src == it.dst) continue;  // a PE keeping its own tile
    const size_t di = local_index(it.dst.x, it.dst.y);
    note_arrival(di, local_departs[k] + it.latency);
    pes_[di].bytes_received += tb;
  }
  // 4. Senders pay injection.
  for (const auto& in : p.injects_) {
    PeCounters& c = pe(in.pe.x, in.pe.y);
    c.clock_cycles += in.cycles;
    c.inject_cycles += in.cycles;
    c.bytes_sent += in.bytes;
    c.messages_sent += 1;
    c.max_hops = std::max(c.max_hops, in.hops);
  }
  // 5. Complete the exchange and unpack.
  MPI_Waitall(int(reqs.size()), reqs.data(), MPI_STATUSES_IGNORE);
  uint64_t hold_cycles = 0;  // for injected latency: the longest modelled latency received
  for (size_t i = 0; i < p.peers_.size(); ++i) {
    const auto& pr = p.peers_[i];
    if (pr.recvs.empty()) continue;
    const size_t n = pr.recvs.size();
    const auto* dep = reinterpret_cast<const uint64_t*>(rbuf[i].data());
    const std::byte* payload = rbuf[i].data() + n * sizeof(uint64_t);
    for (size_t k = 0; k < n; ++k) {
      const auto& it = pr.recvs[k];
      if (by_slot) {
        dst.slot[dst.index(it.dst.x, it.dst.y)] = freed_slots.back();
        freed_slots.pop_back();
      }
      if (data) std::memcpy(dst.at(it.dst.x, it.dst.y), payload + k * tb, tb);
      const size_t di = local_index(it.dst.x, it.dst.y);
      note_arrival(di, dep[k] + it.latency);
      pes_[di].bytes_received += tb;
      hold_cycles = std::max(hold_cycles, it.latency);
    }
  }
  // 6. Injected latency: hold the step in real time as the NoC would. Changes no virtual figure.
  if (params_.inject_ns_per_cycle > 0 && hold_cycles > 0) {
    const auto hold = std::chrono::nanoseconds(int64_t(double(hold_cycles) * params_.inject_ns_per_cycle));
    std::this_thread::sleep_until(t0 + hold);
  }
  if (sync == Sync::wait) wait_arrivals();
}

Fabric::~Fabric() {
  for (MPI_Comm& c : line_comm_)
    if (c != MPI_COMM_NULL) MPI_Comm_free(&c);
  if (summary_op_ != MPI_OP_NULL) MPI_Op_free(&summary_op_);
  if (summary_type_ != MPI_DATATYPE_NULL) MPI_Type_free(&summary_type_);
}

void Fabric::execute_timing(TransferPlan& p, Sync sync) {
  TileView none;
  none.tile_bytes = p.tile_bytes();
  timing_only_ = true;
  try {
    execute(p, none, none, sync, nullptr);
  } catch (...) {
    timing_only_ = false;
    throw;
  }
  timing_only_ = false;
}

MPI_Comm Fabric::line_comm(Axis axis) {
  MPI_Comm& c = line_comm_[axis == Axis::X ? 0 : 1];
  if (c == MPI_COMM_NULL) {
    const Decomposition& d = decomposition();
    const int cx = rank() % d.ranks_x(), cy = rank() / d.ranks_x();
    MPI_Comm_split(comm(), axis == Axis::X ? cy : cx, axis == Axis::X ? cx : cy, &c);
  }
  return c;
}

std::vector<PeCounters> Fabric::gather_counters(const Region& r) const {
  std::vector<std::byte> mine;
  const Region l = r.intersect(block_);
  mine.resize(size_t(l.size()) * sizeof(PeCounters));
  size_t k = 0;
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y)
    for (int32_t x = l.x0; x < l.x0 + l.w; ++x, ++k)
      std::memcpy(mine.data() + k * sizeof(PeCounters), &pe(x, y), sizeof(PeCounters));
  TileView v{mine.data(), l, sizeof(PeCounters)};
  const std::vector<std::byte> all = gather_tiles(v, r);
  std::vector<PeCounters> out(all.size() / sizeof(PeCounters));
  if (!out.empty()) std::memcpy(out.data(), all.data(), all.size());
  return out;
}

std::vector<std::byte> Fabric::gather_tiles(const TileView& v, const Region& r) const {
  // Each rank sends its part of r row by row; rank 0 places the rows using the decomposition.
  const Region l = r.intersect(block_);
  const size_t tb = v.tile_bytes;
  std::vector<std::byte> mine(size_t(l.size()) * tb);
  size_t k = 0;
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y)
    for (int32_t x = l.x0; x < l.x0 + l.w; ++x, ++k) std::memcpy(mine.data() + k * tb, v.at(x, y), tb);
  const int n = ranks();
  std::vector<int> counts(static_cast<size_t>(n)), displs(static_cast<size_t>(n));
  const Decomposition& d = decomposition();
  int64_t total = 0;
  for (int q = 0; q < n; ++q) {
    const Region lq = r.intersect(d.block(q));
    const int64_t bytes = lq.size() * int64_t(tb);
    if (bytes > std::numeric_limits<int>::max()) throw std::length_error("gather too large for one MPI call");
    counts[size_t(q)] = int(bytes);
    displs[size_t(q)] = int(total);
    total += bytes;
    if (total > std::numeric_limits<int>::max()) throw std::length_error("gather too large for one MPI call");
  }
  std::vector<std::byte> packed(rank() == 0 ? size_t(total) : 0);
  MPI_Gatherv(mine.data(), int(mine.size()), MPI_BYTE, packed.data(), counts.data(), displs.data(), MPI_BYTE, 0,
              comm());
  if (rank() != 0) return {};
  std::vector<std::byte> out(size_t(r.size()) * tb);
  for (int q = 0; q < n; ++q) {
    const Region lq = r.intersect(d.block(q));
    size_t kk = 0;
    for (int32_t y = lq.y0; y < lq.y0 + lq.h; ++y)
      for (int32_t x = lq.x0; x < lq.x0 + lq.w; ++x, ++kk) {
        const size_t at = size_t(y - r.y0) * size_t(r.w) + size_t(x - r.x0);
        std::memcpy(out.data() + at * tb, packed.data() + size_t(displs[size_t(q)]) + kk * tb, tb);
      }
  }
  return out;
}

Fabric::Summary Fabric::summarize(const Region& r) const {
  const Summary s = summarize_local(r);
  uint64_t all[8] = {s.max_clock_cycles,      s.max_compute_cycles,     s.max_stall_cycles, s.max_sram_peak_bytes,
                     s.max_route_peak_entries, s.max_hops,               s.total_bytes_sent, s.total_messages};
  MPI_Allreduce(MPI_IN_PLACE, all, 1, summary_type_, summary_op_, comm());
  return {all[0], all[1], all[2], all[3], all[4], all[5], all[6], all[7]};
}

Fabric::Summary Fabric::summarize_local(const Region& r) const {
  const Region l = r.intersect(block_);
  uint64_t mx[6] = {0, 0, 0, 0, 0, 0};
  uint64_t sum[2] = {0, 0};
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y)
    for (int32_t x = l.x0; x < l.x0 + l.w; ++x) {
      const PeCounters& c = pe(x, y);
      mx[0] = std::max(mx[0], c.clock_cycles);
      mx[1] = std::max(mx[1], c.compute_cycles);
      mx[2] = std::max(mx[2], c.stall_cycles);
      mx[3] = std::max(mx[3], c.sram_peak_bytes);
      mx[4] = std::max(mx[4], c.route_peak_entries);
      mx[5] = std::max(mx[5], c.max_hops);
      sum[0] += c.bytes_sent;
      sum[1] += c.messages_sent;
    }
  return {mx[0], mx[1], mx[2], mx[3], mx[4], mx[5], sum[0], sum[1]};
}

}  // namespace wm
