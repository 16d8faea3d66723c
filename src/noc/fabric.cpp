// The fabric's state: per-PE clocks and counters, SRAM accounting, gathers and summaries. Plans
// are built in plan_build.cpp and executed in plan_run.cpp.
#include "wafermesh/noc/fabric.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "compiled_plan.hpp"

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


}  // namespace

// ---------------------------------------------------------------- TransferPlan
TransferPlan::TransferPlan() = default;
TransferPlan::TransferPlan(TransferPlan&& o) noexcept : fabric_(o.fabric_), c_(std::move(o.c_)) { o.fabric_ = nullptr; }

TransferPlan& TransferPlan::operator=(TransferPlan&& o) noexcept {
  if (this == &o) return *this;
  if (fabric_ && c_) fabric_->forget_plan(*c_);
  fabric_ = o.fabric_;
  c_ = std::move(o.c_);
  o.fabric_ = nullptr;
  return *this;
}

TransferPlan::~TransferPlan() {
  if (fabric_ && c_) fabric_->forget_plan(*c_);
}

namespace {
const std::string kNoName;
}  // namespace
size_t TransferPlan::tile_bytes() const { return c_ ? c_->tile_bytes : 0; }
const std::string& TransferPlan::name() const { return c_ ? c_->name : kNoName; }
uint64_t TransferPlan::max_hops() const { return c_ ? c_->max_hops : 0; }
uint64_t TransferPlan::max_latency_cycles() const { return c_ ? c_->max_latency : 0; }
bool TransferPlan::relay_mode() const { return c_ && c_->relay_mode; }
bool TransferPlan::permutes() const { return c_ && c_->permutes; }
void TransferPlan::share_routes(std::string key) {
  if (c_) c_->route_key = std::move(key);
}

void TransferPlan::release_routes() {
  if (!fabric_ || !c_) return;
  if (c_->routes_active) fabric_->release_routes(*c_);
  if (c_->relay_mode) fabric_->rebuild(*c_, false);
}

// ---------------------------------------------------------------- Fabric
Fabric::Fabric(MPI_Comm comm, const MachineParams& params)
    : params_(params),
      cost_(CostModel::from(params)),
      mesh_{int32_t(params.width_pes), int32_t(params.height_pes)},
      cart_(comm, mesh_, int(params.ranks_x), int(params.ranks_y)) {
  block_ = cart_.decomposition().block(cart_.rank());
  const size_t n = size_t(block_.size());
  if (n > std::numeric_limits<uint32_t>::max())
    throw UsageError("a rank's block of " + std::to_string(n) + " PEs exceeds the 2^32 PEs one rank can emulate: use more ranks");
  clock_.assign(n, 0);
  compute_.assign(n, 0);
  traffic_.assign(n, Traffic{});
  max_hops_.assign(n, 0);
  ops_.assign(n, OpCounts{});
  sram_peak_.assign(n, 0);
  routes_.assign(n, Routes{});
  pending_.assign(n, 0);
  pending_msgs_.assign(n, 0);
  pe_stream_.assign(n, 0);
  pe_routes_.assign(n, 0);
  pe_mark_.assign(n, 0);
  peer_slot_.assign(size_t(cart_.size()), -1);
  sram_all_.assign(size_t(mesh_.pe_count()), 0);
  summary_type_ = contiguous_type(8, mpi_type<uint64_t>());
  summary_op_ = make_op(&reduce_summary, true);
}

Fabric::~Fabric() { kept_plans_.clear(); }  // the plans give their routes and counts back first

std::shared_ptr<TransferPlan> Fabric::kept_plan(const std::string& key, const std::function<TransferPlan()>& make) {
  auto it = kept_plans_.find(key);
  if (it != kept_plans_.end()) return it->second;
  if (kept_plans_.size() >= kKeptPlans) kept_plans_.clear();
  return kept_plans_[key] = std::make_shared<TransferPlan>(make());
}

void Fabric::fail_unowned(int32_t x, int32_t y) const {
  throw std::logic_error("PE (" + std::to_string(x) + ", " + std::to_string(y) + ") is not owned by rank " +
                         std::to_string(rank()) + " (its block is " + block_.str() +
                         "): per-PE accessors take only the rank's own PEs");
}

PeCounters Fabric::pe(int32_t x, int32_t y) const {
  const size_t i = owned_index(x, y);
  flush_counters();
  sram_settle_all();
  settle_region_ops();
  settle_compute();
  PeCounters c;
  c.clock_cycles = clock_[i];
  c.compute_cycles = compute_[i];
  const Traffic& t = traffic_[i];
  c.inject_cycles = t.inject_cycles;
  c.stall_cycles = clock_[i] - compute_[i] - t.inject_cycles;
  c.bytes_sent = t.bytes_sent;
  c.bytes_received = t.bytes_received;
  c.messages_sent = t.messages_sent;
  c.max_hops = max_hops_[i];
  c.sram_bytes = sram_all_[size_t(mesh_.id(x, y))];
  c.sram_peak_bytes = sram_peak_[i];
  c.route_entries = routes_[i].now;
  c.route_peak_entries = routes_[i].peak;
  c.ops = ops_[i];
  c.byte_hops = t.byte_hops;
  return c;
}

WorkCounts Fabric::work_local() const { return work_; }

WorkCounts Fabric::work() const {
  uint64_t v[WorkCounts::kWords];
  work_local().to_words(v);
  MPI_Allreduce(MPI_IN_PLACE, v, int(WorkCounts::kWords), mpi_type<uint64_t>(), MPI_SUM, comm());
  return WorkCounts::from_words(v);
}

void Fabric::add_region_ops(const Region& r, uint64_t ops_each, Work w) {
  if (tape_) {
    if (tape_covers(r)) tape_->ops_.push_back({r, ops_each, w});
    else tape_break();
  }
  const Region l = r.intersect(block_);
  if (l.empty() || ops_each == 0) return;
  work_.ops.of(w) += ops_each * uint64_t(l.size());
  // Regions recur: a model's layer regions, and the strips of PEs at one position of every line that
  // the allreduces' adders are (nearly every position of the line, per axis and region, under
  // ktree). They stay pending, found through an open-addressing table, until the per-PE counts are
  // read or the list is full.
  const uint64_t h = (uint64_t(uint32_t(l.x0)) * 0x9E3779B97F4A7C15ull) ^ (uint64_t(uint32_t(l.y0)) * 0xC2B2AE3D27D4EB4Full) ^
                     (uint64_t(uint32_t(l.w)) * 0x165667B19E3779F9ull) ^ (uint64_t(uint32_t(l.h)) * 0x27D4EB2F165667C5ull);
  if (ops_slot_.empty()) ops_slot_.assign(kOpsSlots, -1);
  if (ops_regions_.size() >= kOpsSlots / 2) settle_region_ops();  // full: settle all, start a new list
  for (size_t k = size_t(h >> 40) & (kOpsSlots - 1);; k = (k + 1) & (kOpsSlots - 1)) {
    const int32_t at = ops_slot_[k];
    if (at < 0) {
      OpCounts each;
      each.of(w) = ops_each;
      ops_slot_[k] = int32_t(ops_regions_.size());
      ops_regions_.push_back({l, each});
      return;
    }
    OpsRegion& m = ops_regions_[size_t(at)];
    if (m.local == l) {
      m.each.of(w) += ops_each;
      return;
    }
  }
}

void Fabric::settle_region_ops() const {
  for (const OpsRegion& m : ops_regions_)
    for (int32_t y = m.local.y0; y < m.local.y0 + m.local.h; ++y) {
      OpCounts* row = ops_.data() + local_index(m.local.x0, y);
      for (int32_t x = 0; x < m.local.w; ++x) row[x] += m.each;
    }
  ops_regions_.clear();
  if (!ops_slot_.empty()) std::fill(ops_slot_.begin(), ops_slot_.end(), -1);
}

Fabric::PeTimes Fabric::pe_times(int32_t x, int32_t y) const {
  const size_t i = owned_index(x, y);
  flush_counters();
  settle_compute();
  PeTimes t;
  t.clock_cycles = clock_[i];
  t.compute_cycles = compute_[i];
  t.inject_cycles = traffic_[i].inject_cycles;
  t.bytes_sent = traffic_[i].bytes_sent;
  uint64_t use = sram_all_[size_t(mesh_.id(x, y))];
  for (const SramRegion& r : sram_regions_)  // charges still pending on a taken-up region
    if (r.r.contains(x, y)) use = uint64_t(int64_t(use) + r.pending);
  t.sram_bytes = use;
  return t;
}

uint64_t Fabric::max_clock_local(const Region& r) const {
  const Region l = r.intersect(block_);
  if (known_clocks_.valid && !l.empty() && known_clocks_.local == l) return known_clocks_.clock;
  return max_local(clock_.data(), l);
}

uint64_t Fabric::max_clock(const Region& r) const {
  uint64_t mx = max_clock_local(r);
  MPI_Allreduce(MPI_IN_PLACE, &mx, 1, mpi_type<uint64_t>(), MPI_MAX, comm());
  return mx;
}

std::pair<uint64_t, uint64_t> Fabric::peaks_local(const Region& r) const {
  const Region l = r.intersect(block_);
  uint32_t routes = 0;
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y) {
    const size_t i0 = local_index(l.x0, y);
    for (size_t i = i0; i < i0 + size_t(l.w); ++i) routes = std::max(routes, routes_[i].peak);
  }
  return {sram_peak_local(r), routes};
}

void Fabric::charge_compute(int32_t x, int32_t y, uint64_t ops, Work w) {
  charge_index(owned_index(x, y), ops, w);
  observe();
}

void Fabric::charge_compute(const Region& r, uint64_t ops_each, Work w) {
  const Region l = r.intersect(block_);
  const uint64_t cyc = cost_.compute_cycles(ops_each, w);
  if (cyc == 0) return;
  add_region_ops(r, ops_each, w);
  clocks_added(l, cyc);
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y) {
    uint64_t* ck = clock_.data() + local_index(l.x0, y);
    uint64_t* cp = compute_.data() + local_index(l.x0, y);
    for (int32_t x = 0; x < l.w; ++x) {
      ck[x] += cyc;
      cp[x] += cyc;
    }
  }
  observe();
}

void Fabric::charge_stream_add(const Region& r, uint64_t elems, Work w) {
  const Region l = r.intersect(block_);
  const uint64_t cycles = cost_.stream_add_cycles(elems, w);
  if (cycles == 0) return;
  add_region_ops(r, elems, w);  // one operation per element added, whatever the rate
  clocks_added(l, cycles);
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y) {
    uint64_t* ck = clock_.data() + local_index(l.x0, y);
    uint64_t* cp = compute_.data() + local_index(l.x0, y);
    for (int32_t x = 0; x < l.w; ++x) {
      ck[x] += cycles;
      cp[x] += cycles;
    }
  }
  observe();
}

void Fabric::wait_cycles(const Region& r, uint64_t cycles) {
  const Region l = r.intersect(block_);
  if (cycles == 0) return;
  if (tape_ && !tape_covers(r)) tape_break();
  clocks_added(l, cycles);
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y) {
    uint64_t* ck = clock_.data() + local_index(l.x0, y);
    for (int32_t x = 0; x < l.w; ++x) ck[x] += cycles;
  }
  observe();
}

void Fabric::barrier_clocks(const Region& r) {
  uint64_t mx = max_clock_local(r);
  // A region inside one rank's block needs nobody else: every rank sees the same decomposition, so
  // all agree on skipping the collective, and the others stay free to work on their own regions.
  // (Blocks form a grid, so two opposite corners with one owner put the whole region in its block.)
  if (r.w <= 0 || r.h <= 0) return;
  const Decomposition& dec = decomposition();
  if (dec.owner(r.x0, r.y0) != dec.owner(r.x0 + r.w - 1, r.y0 + r.h - 1))
    MPI_Allreduce(MPI_IN_PLACE, &mx, 1, mpi_type<uint64_t>(), MPI_MAX, comm());
  const Region l = r.intersect(block_);
  if (known_clocks_.valid && known_clocks_.uniform && known_clocks_.local == l && known_clocks_.clock == mx) {
    tape_break();  // (as advance_clocks: an absolute time) every PE of r is at mx already
    observe();
    return;
  }
  advance_clocks(r, mx);
  if (!l.empty()) known_clocks_ = {l, mx, true, true};  // mx is the latest clock of r: every PE of r is at it
}

void Fabric::advance_clocks(const Region& r, uint64_t t) {
  tape_break();  // an absolute time: not the same after a shift
  known_clocks_.valid = false;
  const Region l = r.intersect(block_);
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y) {
    uint64_t* row = clock_.data() + local_index(l.x0, y);
    for (int32_t x = 0; x < l.w; ++x) row[x] = std::max(row[x], t);
  }
  observe();
}

void Fabric::reset_peaks() {
  if (peaks_held_) return;
  tape_break();
  flush_counters();
  sram_settle_all();
  // The regions taken up stay so: this rank's highest peak of each is its highest use from now on.
  for (SramRegion& t : sram_regions_) t.peak_local = t.base_local;
  for (int32_t y = block_.y0; y < block_.y0 + block_.h; ++y) {
    const uint32_t* use = sram_all_.data() + size_t(mesh_.id(block_.x0, y));
    const size_t i0 = local_index(block_.x0, y);
    for (int32_t x = 0; x < block_.w; ++x) sram_peak_[i0 + size_t(x)] = use[x];
  }
  for (Routes& r : routes_) r.peak = r.now;
  std::fill(max_hops_.begin(), max_hops_.end(), 0u);
  ++peaks_version_;
}

void Fabric::throw_limit_collective(int64_t bad_pe, uint64_t need_local, const std::string& what,
                                    const std::string& limit_text) {
  // The owner of the offending PE knows its exact need; everyone learns it, then all throw.
  const PeCoord c = mesh_.coord(bad_pe);
  const int owner = decomposition().owner(c.x, c.y);
  uint64_t need = need_local;
  MPI_Bcast(&need, 1, mpi_type<uint64_t>(), owner, comm());
  std::ostringstream s;
  s << "PE (" << c.x << ", " << c.y << ") needs " << need << " " << what << "; the limit is " << limit_text;
  throw LimitError(s.str());
}

MPI_Comm Fabric::line_comm(Axis axis) {
  MpiComm& c = line_comm_[axis == Axis::X ? 0 : 1];
  if (!c) {
    const Decomposition& d = decomposition();
    const int cx = rank() % d.ranks_x(), cy = rank() / d.ranks_x();
    c = split_comm(comm(), axis == Axis::X ? cy : cx, line_rank(rank(), axis));
  }
  return c.get();
}

int Fabric::line_rank(int r, Axis axis) const {
  const int rx = decomposition().ranks_x();
  return axis == Axis::X ? r % rx : r / rx;
}

// ---------------------------------------------------------------- gathers and summaries
std::vector<PeCounters> Fabric::gather_counters(const Region& r) const {
  std::vector<std::byte> mine;
  const Region l = r.intersect(block_);
  mine.resize(size_t(l.size()) * sizeof(PeCounters));
  size_t k = 0;
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y)
    for (int32_t x = l.x0; x < l.x0 + l.w; ++x, ++k) {
      const PeCounters c = pe(x, y);
      std::memcpy(mine.data() + k * sizeof(PeCounters), &c, sizeof(PeCounters));
    }
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
  MPI_Gatherv(mine.data(), int(mine.size()), mpi_type<std::byte>(), packed.data(), counts.data(), displs.data(),
              mpi_type<std::byte>(), 0, comm());
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
  MPI_Allreduce(MPI_IN_PLACE, all, 1, summary_type_.get(), summary_op_.get(), comm());
  return {all[0], all[1], all[2], all[3], all[4], all[5], all[6], all[7]};
}

Fabric::ClockPeaks Fabric::clock_and_peaks(const Region& r) const {
  sram_settle_all();
  const Region l = r.intersect(block_);
  uint64_t mx[3] = {0, 0, 0};
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y) {
    const size_t i0 = local_index(l.x0, y);
    for (size_t i = i0; i < i0 + size_t(l.w); ++i) {
      mx[0] = std::max(mx[0], clock_[i]);
      mx[1] = std::max<uint64_t>(mx[1], sram_peak_[i]);
      mx[2] = std::max<uint64_t>(mx[2], routes_[i].peak);
    }
  }
  MPI_Allreduce(MPI_IN_PLACE, mx, 3, mpi_type<uint64_t>(), MPI_MAX, comm());
  return {mx[0], mx[1], mx[2]};
}

Fabric::Summary Fabric::summarize_local(const Region& r) const {
  flush_counters();
  sram_settle_all();
  settle_compute();
  const Region l = r.intersect(block_);
  uint64_t mx[6] = {0, 0, 0, 0, 0, 0};
  uint64_t sum[2] = {0, 0};
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y) {
    const size_t i0 = local_index(l.x0, y);
    for (size_t i = i0; i < i0 + size_t(l.w); ++i) {
      mx[0] = std::max(mx[0], clock_[i]);
      mx[1] = std::max(mx[1], compute_[i]);
      const Traffic& t = traffic_[i];
      mx[2] = std::max(mx[2], clock_[i] - compute_[i] - t.inject_cycles);
      mx[3] = std::max<uint64_t>(mx[3], sram_peak_[i]);
      mx[4] = std::max<uint64_t>(mx[4], routes_[i].peak);
      mx[5] = std::max<uint64_t>(mx[5], max_hops_[i]);
      sum[0] += t.bytes_sent;
      sum[1] += t.messages_sent;
    }
  }
  return {mx[0], mx[1], mx[2], mx[3], mx[4], mx[5], sum[0], sum[1]};
}

}  // namespace wm
