#pragma once
// The virtual-time figures of one position (a decoded token, or a whole prefill), settled once at
// its end (internal to src/model).
//
// A stamp is a region's latest clock at one point of the position: this rank's maximum over its
// PEs of the region when taken, the maximum over the ranks once the position settles. A decoded
// token takes some twenty stamps per layer; one collective for all of them (dist::max_over_ranks)
// replaces one each, which would cost a rendezvous of the ranks every phase. Laps (differences of
// stamps added to the figures) are recorded meanwhile and applied by settle(), so nothing may read
// them earlier. Peak SRAM and route entries of the stamped regions are gathered the same way.
//
// Every lap is also kept as a span (PhaseSpan: its name, what it counts as, its layer and region,
// its settled start and end), so a trace shows exactly the cycles the figures add up: a layer's
// laps chain from one stamp to the next, and their spans tile the layer. A stamp also notes this
// rank's work totals (Fabric::work_local, no pass over the PEs); summed over the ranks at settle(),
// they give each span the work of the whole mesh between its stamps (its energy).
#include <cstdint>
#include <utility>
#include <vector>

#include "wafermesh/model/mesh_transformer.hpp"
#include "wafermesh/noc/fabric.hpp"

namespace wm::model {

class PositionClock {
 public:
  using Stamp = int32_t;
  enum class LapKind : uint8_t {
    add,           // bucket += to - from
    add_positive,  // bucket += to - from if positive (a region that may have been ahead)
    gemv,          // the first `cap` cycles are compute, the rest goes to a second bucket
  };

  explicit PositionClock(Fabric& f) : f_(f) {}

  // The layer (and its layer region) the following laps belong to; -1, -1: none.
  void scope(int32_t layer, int32_t region) {
    layer_ = layer;
    region_ = region;
  }
  // With `regions` (the layer regions), every stamp of one of them also samples the SRAM its PEs
  // hold (for traces); empty: none.
  void trace_sram(std::vector<Region> regions) { sram_regions_ = std::move(regions); }

  // R's latest clock (this rank's PEs) now.
  Stamp stamp(const Region& R);
  // bucket += clock(to) - clock(from) (add_positive: 0 if negative), at settle(); from becomes to.
  // The lap's span is named `name` and counts as `span`.
  void lap(uint64_t& bucket, Stamp& from, Stamp to, const char* name, PhaseSpan::Kind span,
           LapKind kind = LapKind::add);
  // A projection's lap: its block's multiply-accumulates (`compute_cycles` at most) are compute,
  // the rest (its reduction, the adds included) is allreduce.
  void lap_gemv(LayerCycles& lc, Stamp& from, Stamp to, uint64_t compute_cycles, const char* name);
  // Reduces the stamps over the ranks, applies the laps and the peaks, returns the stamps' clocks
  // and starts afresh. Collective.
  std::vector<uint64_t> settle();
  // The spans of the laps applied by the last settle() (and the SRAM samples), handed over once.
  std::vector<PhaseSpan> take_spans() { return std::move(spans_); }
  std::vector<SramSample> take_sram() { return std::move(sram_); }
  // The mesh's work totals at a stamp of the last settle().
  const WorkCounts& settled_work(Stamp s) const { return settled_work_[size_t(s)]; }
  // Forgets the stamps and laps of a position that did not finish (an error thrown mid-way).
  void discard();
  // The latest clock of R over all ranks now, noting its peaks. Collective.
  uint64_t now(const Region& R);

  // Largest peak SRAM bytes / route entries of any PE seen by settle() and now() so far.
  uint64_t peak_sram_bytes() const { return peak_sram_; }
  uint64_t peak_route_entries() const { return peak_routes_; }

 private:
  struct Lap {
    LapKind kind;
    Stamp from, to;
    uint64_t* bucket;
    uint64_t* rest;  // gemv: the cycles beyond `cap` go here
    uint64_t cap = 0;
    const char* name;
    PhaseSpan::Kind span;
    int32_t layer, region;
  };
  // This rank's peak SRAM and routes over R, read again only when some peak has changed.
  struct PeakCache {
    Region R;
    uint64_t version = 0;
    std::pair<uint64_t, uint64_t> peaks;
  };
  std::pair<uint64_t, uint64_t> region_peaks(const Region& R);

  Fabric& f_;
  std::vector<uint64_t> stamps_;  // local maxima until settle()
  std::vector<WorkCounts> work_;  // this rank's work totals at each stamp until settle()
  std::vector<WorkCounts> settled_work_;
  std::vector<Lap> laps_;
  int32_t layer_ = -1, region_ = -1;
  std::vector<PhaseSpan> spans_;
  std::vector<Region> sram_regions_;
  std::vector<std::pair<SramSample, Stamp>> sram_pending_;  // until settle(): the stamp gives the time
  std::vector<SramSample> sram_;
  std::vector<PeakCache> peak_cache_;
  uint64_t local_sram_peak_ = 0, local_route_peak_ = 0;
  uint64_t peak_sram_ = 0, peak_routes_ = 0;
};

}  // namespace wm::model
