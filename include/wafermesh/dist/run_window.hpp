#pragma once
// The measurement of one distributed run on a region: every PE of the region starts at the same
// virtual time (a barrier in virtual time), peak counters start afresh, and at the end the figures
// every algorithm reports are read off the clocks. Collective at construction and at finish().
#include <cstdint>
#include <vector>

#include "wafermesh/noc/fabric.hpp"

namespace wm::dist {

struct RunFigures {
  uint64_t total_cycles = 0;    // last PE done minus the common start
  uint64_t compute_cycles = 0;  // most compute cycles any PE spent in the run
  uint64_t comm_cycles = 0;     // on the critical PE (the latest clock): total minus its compute
  uint64_t noc_bytes = 0;       // bytes injected into the NoC during the run, all PEs
  Fabric::Summary summary;      // maxima over the region at the end (peaks, hops, ...)
  double wall_s = 0;            // emulation wall time, slowest rank
};

class RunWindow {
 public:
  RunWindow(Fabric& f, const Region& r);
  RunFigures finish();

 private:
  Fabric& f_;
  Region r_;
  uint64_t t0_ = 0, bytes0_ = 0;
  std::vector<uint64_t> compute0_;  // local PEs of the region, row-major
  double w0_ = 0;
};

}  // namespace wm::dist
