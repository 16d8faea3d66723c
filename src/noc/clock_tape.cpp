// Recording a sequence of fabric operations on a region and applying it again (Fabric::replay).
#include <exception>
#include <limits>
#include <stdexcept>

#include "compiled_plan.hpp"
#include "wafermesh/mesh/mpi_traits.hpp"
#include "wafermesh/noc/fabric.hpp"

namespace wm {

Fabric::Recording::Recording(Fabric& f, ClockTape& t, const Region& r)
    : f_(f), t_(t), exceptions_(std::uncaught_exceptions()) {
  if (f.tape_) throw std::logic_error("Fabric::Recording: a recording is already in progress");
  t.valid_ = false;
  t.broken_ = !f.deferred_plans_.empty() || !f.pending_list_.empty();  // arrivals wait: steps would keep theirs
  t.region_ = r;
  t.local_ = r.intersect(f.block_);
  t.shape_ = ClockTape::Shape::full;
  t.plans_.clear();
  t.ops_.clear();
  // The start: clocks and compute cycles of this rank's PEs of r (compute_ holds the compute
  // cycles so far until the end turns it into those added).
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
  f_.tape_ = nullptr;
  if (t_.broken_ || std::uncaught_exceptions() > exceptions_) return;
  const Region& l = t_.local_;
  const size_t n = size_t(l.size()), w = size_t(l.w);
  t_.end_.resize(n);
  for (int32_t y = 0; y < l.h; ++y) {
    const size_t i0 = f_.local_index(l.x0, l.y0 + y), k0 = size_t(y) * w;
    for (size_t x = 0; x < w; ++x) {
      t_.end_[k0 + x] = f_.clock_[i0 + x];
      t_.compute_[k0 + x] = f_.compute_[i0 + x] - t_.compute_[k0 + x];
    }
  }
  // Keep one row, or one column, when every row (column) recorded the same: the sequences replayed
  // are collectives along lines, the same on every line.
  auto same = [&](size_t a, size_t b) {
    return t_.start_[a] == t_.start_[b] && t_.end_[a] == t_.end_[b] && t_.compute_[a] == t_.compute_[b];
  };
  bool rows = n > 0, cols = n > 0;
  for (size_t k = w; k < n && rows; ++k) rows = same(k, k % w);
  for (size_t k = 0; k < n && cols; ++k) cols = same(k, k - k % w);
  auto keep = [&](auto index, size_t count, ClockTape::Shape shape) {
    for (auto* v : {&t_.start_, &t_.end_, &t_.compute_}) {
      for (size_t i = 0; i < count; ++i) (*v)[i] = (*v)[index(i)];
      v->resize(count);
      v->shrink_to_fit();
    }
    t_.shape_ = shape;
  };
  if (rows) keep([](size_t i) { return i; }, w, ClockTape::Shape::rows);
  else if (cols) keep([w](size_t i) { return i * w; }, size_t(l.h), ClockTape::Shape::cols);
  t_.valid_ = true;
}

bool Fabric::replay(ClockTape& t, const Region& r) {
  if (tape_) throw std::logic_error("Fabric::replay inside a recording");
  // This rank's verdict, and the shift of its PEs' clocks from the recorded start.
  int64_t bad = !params_.replay_timing || !t.valid_ || !(t.region_ == r) || params_.inject_ns_per_cycle > 0 ||
                observer_ || !deferred_plans_.empty() || !pending_list_.empty();
  for (size_t i = 0; i < t.plans_.size() && !bad; ++i) bad = !t.plans_[i]->routes_active;
  const Region& l = t.local_;
  constexpr int64_t kNone = std::numeric_limits<int64_t>::min();
  int64_t shift = kNone;
  if (!bad && !l.empty()) {
    shift = int64_t(clock_[local_index(l.x0, l.y0)] - t.start_[0]);
    for (int32_t y = 0; y < l.h && !bad; ++y) {
      const uint64_t* ck = clock_.data() + local_index(l.x0, l.y0 + y);
      for (int32_t x = 0; x < l.w; ++x)
        if (int64_t(ck[x] - t.start_[t.stored(y, x)]) != shift) {
          bad = 1;
          break;
        }
    }
  }
  // Every rank agrees, and the shift is one constant: the max of the shifts equals their min.
  int64_t v[3] = {bad, shift, shift == kNone ? kNone : -shift};
  MPI_Allreduce(MPI_IN_PLACE, v, 3, mpi_type<int64_t>(), MPI_MAX, comm());
  if (v[0] != 0 || v[1] == kNone || v[1] != -v[2]) return false;
  shift = v[1];
  for (int32_t y = 0; y < l.h; ++y) {
    const size_t i0 = local_index(l.x0, l.y0 + y);
    uint64_t* const ck = clock_.data() + i0;
    uint64_t* const cp = compute_.data() + i0;
    for (int32_t x = 0; x < l.w; ++x) {
      const size_t k = t.stored(y, x);
      ck[x] = t.end_[k] + uint64_t(shift);
      cp[x] += t.compute_[k];
    }
  }
  for (Compiled* c : t.plans_) count_execution(*c);
  for (const ClockTape::Ops& o : t.ops_) add_region_ops(o.r, o.each, o.w);
  ++replays_;
  return true;
}

}  // namespace wm
