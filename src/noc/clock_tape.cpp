// Recording a sequence of fabric operations on a region and applying it again (Fabric::replay).
#include <algorithm>
#include <exception>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "compiled_plan.hpp"
#include "wafermesh/mesh/mpi_traits.hpp"
#include "wafermesh/noc/fabric.hpp"

namespace wm {

ClockTapes::~ClockTapes() {
  for (const ClockTape& t : slot_) {
    owner_->tape_bytes_ -= t.held();
    if (owner_->known_clocks_.tape == &t) owner_->known_clocks_.tape = nullptr;  // (it would dangle)
  }
}

std::shared_ptr<ClockTapes> Fabric::shared_tapes(const std::string& key) {
  if (shared_tapes_.size() >= 4096)  // forget the keys nobody holds any more
    std::erase_if(shared_tapes_, [](const auto& e) { return e.second.expired(); });
  std::weak_ptr<ClockTapes>& w = shared_tapes_[key];
  std::shared_ptr<ClockTapes> t = w.lock();
  if (!t) {
    t = std::shared_ptr<ClockTapes>(new ClockTapes(this));
    w = t;
  }
  return t;
}

Fabric::Recording::Recording(Fabric& f, ClockTapes& tapes, const Region& r, const std::vector<TransferPlan*>& plans)
    : f_(f), plans_(plans), exceptions_(std::uncaught_exceptions()) {
  if (f.tape_) throw std::logic_error("Fabric::Recording: a recording is already in progress");
  // Every slot filled and none replayed since: a recording now and then only. (The same decision
  // on every rank: every rank runs the same sequence of collectives.)
  const uint64_t miss = tapes.misses_++;
  if (miss >= ClockTapes::kSlots && miss % 32 != 0) return;
  ClockTape& t = tapes.slot_[tapes.next_];
  tapes.next_ = (tapes.next_ + 1) % ClockTapes::kSlots;
  t_ = &t;
  f.tape_bytes_ -= t.held();
  t.valid_ = false;
  t.serial_ = 0;
  t.broken_ = !f.deferred_plans_.empty() || !f.pending_list_.empty();  // arrivals wait: steps would keep theirs
  t.region_ = r;
  t.local_ = r.intersect(f.block_);
  t.shape_ = ClockTape::Shape::full;
  t.plans_.clear();
  t.relayed_.clear();
  t.log_.clear();
  t.ops_.clear();
  // The start: clocks and compute cycles of this rank's PEs of r (compute_ holds the compute
  // cycles so far until the end turns it into those added).
  f.settle_compute();
  const Region& l = t.local_;
  const size_t n = size_t(l.size());
  t.start_.resize(n);
  t.compute_.resize(n);
  for (int32_t y = 0; y < l.h; ++y) {
    const size_t i0 = f.local_index(l.x0, l.y0 + y), k0 = size_t(y) * size_t(l.w);
    std::copy_n(f.clock_.data() + i0, l.w, t.start_.data() + k0);
    std::copy_n(f.compute_.data() + i0, l.w, t.compute_.data() + k0);
  }
  f.tape_ = &t;
}

Fabric::Recording::~Recording() {
  if (!t_) return;
  f_.tape_ = nullptr;
  ClockTape& t = *t_;
  auto drop = [&t] {  // an incomplete recording keeps no memory
    for (auto* v : {&t.start_, &t.end_, &t.compute_}) std::vector<uint64_t>().swap(*v);
  };
  if (t.broken_ || std::uncaught_exceptions() > exceptions_) {
    drop();
    return;
  }
  // The steps, by their index in the sequence's plans (a step not among them: incomplete).
  for (const TransferPlan::Compiled* c : t.log_) {
    size_t i = 0;
    while (i < plans_.size() && plans_[i]->c_.get() != c) ++i;
    if (i == plans_.size()) {
      drop();
      return;
    }
    t.plans_.push_back(uint32_t(i));
    t.relayed_.push_back(c->relay_mode);
  }
  t.log_.clear();
  f_.settle_compute();
  const Region& l = t.local_;
  const size_t n = size_t(l.size()), w = size_t(l.w);
  t.end_.resize(n);
  for (int32_t y = 0; y < l.h; ++y) {
    const size_t i0 = f_.local_index(l.x0, l.y0 + y), k0 = size_t(y) * w;
    for (size_t x = 0; x < w; ++x) {
      t.end_[k0 + x] = f_.clock_[i0 + x];
      t.compute_[k0 + x] = f_.compute_[i0 + x] - t.compute_[k0 + x];
    }
  }
  // Keep one row, or one column, when every row (column) recorded the same: the sequences replayed
  // are collectives along lines, the same on every line.
  auto same = [&](size_t a, size_t b) {
    return t.start_[a] == t.start_[b] && t.end_[a] == t.end_[b] && t.compute_[a] == t.compute_[b];
  };
  bool rows = n > 0, cols = n > 0;
  for (size_t k = w; k < n && rows; ++k) rows = same(k, k % w);
  for (size_t k = 0; k < n && cols; ++k) cols = same(k, k - k % w);
  auto keep = [&](auto index, size_t count, ClockTape::Shape shape) {
    for (auto* v : {&t.start_, &t.end_, &t.compute_}) {
      for (size_t i = 0; i < count; ++i) (*v)[i] = (*v)[index(i)];
      v->resize(count);
      v->shrink_to_fit();
    }
    t.shape_ = shape;
  };
  if (rows) keep([](size_t i) { return i; }, w, ClockTape::Shape::rows);
  else if (cols) keep([w](size_t i) { return i * w; }, size_t(l.h), ClockTape::Shape::cols);
  t.uniform_start_ = t.uniform_end_ = true;
  t.max_end_ = 0;
  for (uint64_t c : t.start_) t.uniform_start_ = t.uniform_start_ && c == t.start_[0];
  for (uint64_t c : t.end_) {
    t.uniform_end_ = t.uniform_end_ && c == t.end_[0];
    t.max_end_ = std::max(t.max_end_, c);
  }
  t.valid_ = true;
  if (f_.tape_bytes_ + t.held() > kTapeBudget) {
    t.valid_ = false;
    drop();
    return;
  }
  f_.tape_bytes_ += t.held();
  t.serial_ = ++f_.tape_serial_;
}

std::pair<bool, uint64_t> Fabric::tape_relation(const ClockTape& from, const ClockTape& to) const {
  TapeRelation& e = tape_relations_[size_t((from.serial_ * 0x9E3779B97F4A7C15ull) ^ to.serial_) % kTapeRelations];
  if (e.from != from.serial_ || e.to != to.serial_) {
    const size_t n = to.start_.size();
    const uint64_t d = n > 0 ? from.end_[0] - to.start_[0] : 0;
    uint64_t differ = 0;
    for (size_t i = 0; i < n; ++i) differ |= (from.end_[i] - to.start_[i]) ^ d;
    e = {from.serial_, to.serial_, differ == 0, d};
  }
  return {e.same, e.d};
}

bool Fabric::tape_matches(const ClockTape& t, const Region& r, const std::vector<TransferPlan*>& plans,
                          int64_t* shift) const {
  if (!t.valid_ || !(t.region_ == r)) return false;
  // The plans hold their routes (a replay configures none), and went to software relays where the
  // recorded ones did (objects sharing routes may differ there).
  for (size_t k = 0; k < t.plans_.size(); ++k) {
    const TransferPlan* p = t.plans_[k] < plans.size() ? plans[t.plans_[k]] : nullptr;
    if (!p || p->fabric_ != this || !p->c_ || !p->c_->routes_active || p->c_->relay_mode != t.relayed_[k]) return false;
  }
  const Region& l = t.local_;
  if (l.empty()) return true;
  // A uniform start against clocks known to be uniform: nothing to compare PE by PE.
  if (t.uniform_start_ && known_clocks_.valid && known_clocks_.uniform && known_clocks_.local.intersect(l) == l) {
    *shift = int64_t(known_clocks_.clock - t.start_[0]);
    return true;
  }
  // Clocks known as a full recording's end plus an offset (a replay's, see KnownClocks) against a
  // full start over the same PEs: clock - start == (end - start) + offset, one constant or not.
  const KnownClocks& k = known_clocks_;
  if (t.shape_ == ClockTape::Shape::full && k.valid && k.tape && k.tape->valid_ && k.tape->serial_ == k.serial &&
      k.local == l) {  // (k.local is the replayed recording's local_)
    ++recording_comparisons_;
    const auto [same, d] = tape_relation(*k.tape, t);
    if (!same) return false;
    *shift = int64_t(d + k.offset);
    return true;
  }
  // Row by row, branch-free over the row (the sweeps vectorise): clock - start == s everywhere.
  const uint64_t s = clock_[local_index(l.x0, l.y0)] - t.start_[0];
  for (int32_t y = 0; y < l.h; ++y) {
    const uint64_t* ck = clock_.data() + local_index(l.x0, l.y0 + y);
    uint64_t differ = 0;
    if (t.shape_ == ClockTape::Shape::cols) {
      const uint64_t want = t.start_[size_t(y)] + s;
      for (int32_t x = 0; x < l.w; ++x) differ |= ck[x] ^ want;
    } else {
      const uint64_t* st = t.start_.data() + t.row_start(y);
      for (int32_t x = 0; x < l.w; ++x) differ |= (ck[x] - st[x]) ^ s;
    }
    if (differ != 0) return false;
  }
  *shift = int64_t(s);
  return true;
}

void Fabric::add_compute(const ClockTape& t) {
  const Region& l = t.local_;
  if (l.empty()) return;
  if (t.shape_ == ClockTape::Shape::full) {
    for (int32_t y = 0; y < l.h; ++y) {
      uint64_t* const cp = compute_.data() + local_index(l.x0, l.y0 + y);
      const uint64_t* const c = t.compute_.data() + t.row_start(y);
      for (int32_t x = 0; x < l.w; ++x) cp[x] += c[x];
    }
    return;
  }
  // One row or one column: pending, added to the pattern already pending on the same PEs if any.
  const bool rows = t.shape_ == ClockTape::Shape::rows;
  for (PendingCompute& p : pending_compute_)
    if (p.local == l && p.rows == rows) {
      for (size_t i = 0; i < p.add.size(); ++i) p.add[i] += t.compute_[i];
      return;
    }
  if (pending_compute_.size() >= kPendingCompute) settle_compute_now();
  pending_compute_.push_back({l, rows, t.compute_});
}

void Fabric::settle_compute_now() const {
  for (const PendingCompute& p : pending_compute_) {
    const Region& l = p.local;
    for (int32_t y = 0; y < l.h; ++y) {
      uint64_t* const cp = compute_.data() + local_index(l.x0, l.y0 + y);
      if (p.rows) {
        for (int32_t x = 0; x < l.w; ++x) cp[x] += p.add[size_t(x)];
      } else {
        const uint64_t c = p.add[size_t(y)];
        for (int32_t x = 0; x < l.w; ++x) cp[x] += c;
      }
    }
  }
  pending_compute_.clear();
}

bool Fabric::replay(ClockTapes& tapes, const Region& r, const std::vector<TransferPlan*>& plans) {
  if (tape_) throw std::logic_error("Fabric::replay inside a recording");
  // Per slot, this rank's verdict and the shift of its PEs' clocks from the recorded start; every
  // rank must agree on a slot, with one shift: the max of the shifts equals their min.
  constexpr size_t K = ClockTapes::kSlots;
  constexpr int64_t kNone = std::numeric_limits<int64_t>::min();
  if (!params_.replay_timing) return false;  // the same on every rank: no collective needed
  // The sequence's plans configure their routes first, as their first executions would (a fresh
  // object of a recorded structure; collective, and the same on every rank).
  for (TransferPlan* p : plans) activate_routes(*p);
  const bool off = params_.inject_ns_per_cycle > 0 || observer_ || !deferred_plans_.empty() || !pending_list_.empty();
  int64_t v[3 * K];
  for (size_t k = 0; k < K; ++k) {
    int64_t shift = kNone;
    v[3 * k] = off || !tape_matches(tapes.slot_[k], r, plans, &shift);
    v[3 * k + 1] = shift;
    v[3 * k + 2] = shift == kNone ? kNone : -shift;
  }
  MPI_Allreduce(MPI_IN_PLACE, v, int(3 * K), mpi_type<int64_t>(), MPI_MAX, comm());
  size_t k = 0;
  while (k < K && (v[3 * k] != 0 || v[3 * k + 1] == kNone || v[3 * k + 1] != -v[3 * k + 2])) ++k;
  if (k == K) return false;
  const ClockTape& t = tapes.slot_[k];
  const int64_t shift = v[3 * k + 1];
  const Region& l = t.local_;
  known_clocks_.valid = false;
  for (int32_t y = 0; y < l.h; ++y) {
    const size_t i0 = local_index(l.x0, l.y0 + y);
    uint64_t* const ck = clock_.data() + i0;
    if (t.shape_ == ClockTape::Shape::cols) {
      const uint64_t e = t.end_[size_t(y)] + uint64_t(shift);
      for (int32_t x = 0; x < l.w; ++x) ck[x] = e;
    } else {
      const uint64_t* const e = t.end_.data() + t.row_start(y);
      for (int32_t x = 0; x < l.w; ++x) ck[x] = e[x] + uint64_t(shift);
    }
  }
  if (!l.empty()) {
    known_clocks_ = {l, t.max_end_ + uint64_t(shift), t.uniform_end_, true};
    if (t.shape_ == ClockTape::Shape::full) {
      known_clocks_.tape = &t;
      known_clocks_.serial = t.serial_;
      known_clocks_.offset = uint64_t(shift);
    }
  }
  add_compute(t);
  for (uint32_t i : t.plans_) count_execution(*plans[i]->c_);
  for (const ClockTape::Ops& o : t.ops_) add_region_ops(o.r, o.each, o.w);
  tapes.misses_ = 0;
  ++replays_;
  return true;
}

}  // namespace wm
