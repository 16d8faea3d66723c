// SRAM accounting of the fabric. Every rank keeps the use of every PE of the mesh (all charges are
// collective and region-uniform), so every rank finds the same offending PE without communicating.
//
// A region that is charged again and again (a layer's tiles come and go every step) is "taken up":
// its charges add to one pending number instead of to every PE, with its highest use and this
// rank's highest peak kept exactly beside it (a uniform charge raises every PE of the region by
// the same amount). Charging a region that overlaps a taken-up one settles its pending charges into
// the per-PE arrays and lets it go; every reader of per-PE figures settles them and keeps the
// regions taken up (with nothing pending). Example: a layer region R
// takes 40 tile buffers a token: R is taken up once (one pass over R), and until its KV cache row
// is charged (a region inside R: R is settled, one more pass) every charge costs a few additions.
#include <algorithm>
#include <sstream>

#include "wafermesh/noc/fabric.hpp"
#include "wafermesh/util/error.hpp"

namespace wm {

namespace {
constexpr size_t kTakenUp = 16;  // regions kept pending at once (the oldest is settled first)
bool overlap(const Region& a, const Region& b) { return !a.intersect(b).empty(); }
}  // namespace

void Fabric::sram_settle(const SramRegion& t) const {
  const Region& r = t.r;
  if (t.pending != 0)
    for (int32_t y = r.y0; y < r.y0 + r.h; ++y) {
      uint32_t* row = sram_all_.data() + size_t(mesh_.id(r.x0, y));
      for (int32_t x = 0; x < r.w; ++x) row[x] = uint32_t(int64_t(row[x]) + t.pending);
    }
  if (t.max_pending == 0) return;
  // This rank's peaks: the highest use each PE reached, its use when r was taken up + max_pending.
  const Region l = r.intersect(block_);
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y) {
    const uint32_t* use = sram_all_.data() + size_t(mesh_.id(l.x0, y));
    uint32_t* peak = sram_peak_.data() + local_index(l.x0, y);
    for (int32_t x = 0; x < l.w; ++x)
      peak[x] = std::max<uint32_t>(peak[x], uint32_t(int64_t(use[x]) - t.pending + t.max_pending));
  }
}

void Fabric::sram_settle_all() const {
  // The regions stay taken up with nothing pending (taking one up again is a pass over all of its
  // PEs, and reports settle after every run): this rank's highest use of each is the use when it
  // was taken up plus the uniform charges since.
  for (SramRegion& t : sram_regions_) {
    sram_settle(t);
    if (!t.r.intersect(block_).empty()) t.base_local = uint64_t(int64_t(t.base_local) + t.pending);
    t.pending = t.max_pending = 0;
  }
}

Fabric::SramRegion& Fabric::sram_region(const Region& r) {
  auto same = std::find_if(sram_regions_.begin(), sram_regions_.end(), [&](const SramRegion& t) { return t.r == r; });
  if (same != sram_regions_.end()) return *same;
  // Settle the regions that overlap r (and the oldest when too many are pending), then take r up.
  for (size_t i = 0; i < sram_regions_.size();) {
    if (overlap(sram_regions_[i].r, r) || (i == 0 && sram_regions_.size() >= kTakenUp)) {
      sram_settle(sram_regions_[i]);
      sram_regions_.erase(sram_regions_.begin() + std::ptrdiff_t(i));
    } else {
      ++i;
    }
  }
  SramRegion t;
  t.r = r;
  uint32_t mx = 0;
  for (int32_t y = r.y0; y < r.y0 + r.h; ++y) {
    const uint32_t* row = sram_all_.data() + size_t(mesh_.id(r.x0, y));
    for (int32_t x = 0; x < r.w; ++x) mx = std::max(mx, row[x]);
  }
  t.max_use = mx;
  const Region l = r.intersect(block_);
  uint32_t base = 0, peak = 0;
  for (int32_t y = l.y0; y < l.y0 + l.h; ++y) {
    const uint32_t* use = sram_all_.data() + size_t(mesh_.id(l.x0, y));
    const uint32_t* pk = sram_peak_.data() + local_index(l.x0, y);
    for (int32_t x = 0; x < l.w; ++x) {
      base = std::max(base, use[x]);
      peak = std::max(peak, pk[x]);
    }
  }
  t.base_local = base;
  t.peak_local = peak;
  sram_regions_.push_back(t);
  return sram_regions_.back();
}

bool Fabric::sram_try_acquire(const Region& r, uint64_t bytes_each) {
  if (r.empty()) return true;
  tape_break();
  SramRegion& t = sram_region(r);
  if (t.max_use + bytes_each > uint64_t(params_.sram_bytes)) return false;
  t.max_use += bytes_each;
  t.pending += int64_t(bytes_each);
  if (t.pending > t.max_pending) {
    t.max_pending = t.pending;
    const uint64_t reach = t.base_local + uint64_t(t.max_pending);
    if (!r.intersect(block_).empty() && reach > t.peak_local) {
      t.peak_local = reach;
      ++peaks_version_;
    }
  }
  return true;
}

void Fabric::sram_release(const Region& r, uint64_t bytes_each) {
  if (r.empty() || bytes_each == 0) return;
  tape_break();
  SramRegion& t = sram_region(r);
  t.max_use -= bytes_each;
  t.pending -= int64_t(bytes_each);
  observe();
}

uint64_t Fabric::sram_in_use_max(const Region& r) const {
  for (const SramRegion& t : sram_regions_)
    if (t.r == r) return t.max_use;
  for (const SramRegion& t : sram_regions_)
    if (overlap(t.r, r)) {
      sram_settle_all();
      break;
    }
  uint32_t mx = 0;
  const Region c = r.intersect(mesh_.full());
  for (int32_t y = c.y0; y < c.y0 + c.h; ++y) {
    const uint32_t* row = sram_all_.data() + size_t(mesh_.id(c.x0, y));
    for (int32_t x = 0; x < c.w; ++x) mx = std::max(mx, row[x]);
  }
  return mx;
}

uint64_t Fabric::sram_peak_local(const Region& r) const {
  for (const SramRegion& t : sram_regions_)
    if (t.r == r) return t.peak_local;
  sram_settle_all();
  return max_local(sram_peak_.data(), r.intersect(block_));
}

void Fabric::throw_sram(const Region& r, uint64_t bytes_each, const std::string& what) const {
  sram_settle_all();
  const uint64_t limit = uint64_t(params_.sram_bytes);
  for (int32_t y = r.y0; y < r.y0 + r.h; ++y) {
    const uint32_t* row = sram_all_.data() + size_t(mesh_.id(r.x0, y));
    for (int32_t x = 0; x < r.w; ++x)
      if (uint64_t(row[x]) + bytes_each > limit) {
        std::ostringstream msg;
        msg << "PE (" << r.x0 + x << ", " << y << ") needs " << uint64_t(row[x]) + bytes_each << " bytes of SRAM for "
            << what << "; the limit is pe.sram_bytes = " << limit
            << " (shrink the tiles: a larger region or a smaller problem)";
        throw LimitError(msg.str());
      }
  }
  throw std::logic_error("SRAM overflow of " + what + " without an offending PE");
}

}  // namespace wm
