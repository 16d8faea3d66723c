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

  // R's latest clock (this rank's PEs) now.
  Stamp stamp(const Region& R);
  // bucket += clock(to) - clock(from) (add_positive: 0 if negative), at settle(); from becomes to.
  void lap(uint64_t& bucket, Stamp& from, Stamp to, LapKind kind = LapKind::add);
  // A projection's lap: its block's multiply-accumulates (`compute_cycles` at most) are compute,
  // the rest (its reduction, the adds included) is allreduce.
  void lap_gemv(LayerCycles& lc, Stamp& from, Stamp to, uint64_t compute_cycles);
  // Reduces the stamps over the ranks, applies the laps and the peaks, returns the stamps' clocks
  // and starts afresh. Collective.
  std::vector<uint64_t> settle();
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
  std::vector<Lap> laps_;
  std::vector<PeakCache> peak_cache_;
  uint64_t local_sram_peak_ = 0, local_route_peak_ = 0;
  uint64_t peak_sram_ = 0, peak_routes_ = 0;
};

}  // namespace wm::model
