#include "position_clock.hpp"

#include <algorithm>

#include "wafermesh/dist/rank_reduce.hpp"

namespace wm::model {

PositionClock::Stamp PositionClock::stamp(const Region& R) {
  const auto [sram, routes] = region_peaks(R);
  local_sram_peak_ = std::max(local_sram_peak_, sram);
  local_route_peak_ = std::max(local_route_peak_, routes);
  stamps_.push_back(f_.max_clock_local(R));
  work_.push_back(f_.work_local());
  const Stamp st = Stamp(stamps_.size() - 1);
  for (size_t i = 0; i < sram_regions_.size(); ++i)
    if (sram_regions_[i] == R) sram_pending_.push_back({{int32_t(i), 0, f_.sram_in_use_max(R)}, st});
  return st;
}

std::pair<uint64_t, uint64_t> PositionClock::region_peaks(const Region& R) {
  for (PeakCache& c : peak_cache_)
    if (c.R == R) {
      if (c.version != f_.peaks_version()) c = {R, f_.peaks_version(), f_.peaks_local(R)};
      return c.peaks;
    }
  peak_cache_.push_back({R, f_.peaks_version(), f_.peaks_local(R)});
  return peak_cache_.back().peaks;
}

void PositionClock::lap(uint64_t& bucket, Stamp& from, Stamp to, const char* name, PhaseSpan::Kind span,
                        LapKind kind) {
  laps_.push_back({kind, from, to, &bucket, nullptr, 0, name, span, layer_, region_});
  from = to;
}

void PositionClock::lap_gemv(LayerCycles& lc, Stamp& from, Stamp to, uint64_t compute_cycles, const char* name) {
  laps_.push_back(
      {LapKind::gemv, from, to, &lc.compute, &lc.allreduce, compute_cycles, name, PhaseSpan::Kind::gemv, layer_, region_});
  from = to;
}

std::vector<uint64_t> PositionClock::settle() {
  const size_t n = stamps_.size();
  stamps_.push_back(local_sram_peak_);
  stamps_.push_back(local_route_peak_);
  dist::max_over_ranks(f_, stamps_);
  peak_sram_ = std::max(peak_sram_, stamps_[n]);
  peak_routes_ = std::max(peak_routes_, stamps_[n + 1]);
  stamps_.resize(n);
  std::vector<uint64_t> w;
  constexpr size_t kw = WorkCounts::kWords;
  w.resize(kw * n);
  for (size_t i = 0; i < n; ++i) work_[i].to_words(w.data() + kw * i);
  dist::sum_over_ranks(f_, w);
  settled_work_.resize(n);
  for (size_t i = 0; i < n; ++i) settled_work_[i] = WorkCounts::from_words(w.data() + kw * i);
  spans_.clear();
  spans_.reserve(laps_.size());
  for (const Lap& l : laps_) {
    const uint64_t a = stamps_[size_t(l.from)], b = stamps_[size_t(l.to)];
    PhaseSpan sp{l.name, l.span, l.layer, l.region, a, b, 0,
                 settled_work_[size_t(l.to)] - settled_work_[size_t(l.from)]};
    switch (l.kind) {
      case LapKind::add: *l.bucket += b - a; break;
      case LapKind::add_positive:  // a region that was ahead: no cycles, a span ending where it stands
        *l.bucket += b > a ? b - a : 0;
        sp.start = std::min(a, b);
        break;
      case LapKind::gemv: {
        const uint64_t dt = b - a, comp = std::min(dt, l.cap);
        *l.bucket += comp;
        *l.rest += dt - comp;
        sp.compute = comp;
        break;
      }
    }
    spans_.push_back(sp);
  }
  sram_.clear();
  for (auto& [sample, st] : sram_pending_) {
    sample.at = stamps_[size_t(st)];
    sram_.push_back(sample);
  }
  std::vector<uint64_t> clocks = std::move(stamps_);
  discard();
  return clocks;
}

void PositionClock::discard() {
  stamps_.clear();
  work_.clear();
  laps_.clear();
  sram_pending_.clear();
  local_sram_peak_ = local_route_peak_ = 0;
}

uint64_t PositionClock::now(const Region& R) {
  const Fabric::ClockPeaks s = f_.clock_and_peaks(R);
  peak_sram_ = std::max(peak_sram_, s.max_sram_peak_bytes);
  peak_routes_ = std::max(peak_routes_, s.max_route_peak_entries);
  return s.max_clock_cycles;
}

}  // namespace wm::model
