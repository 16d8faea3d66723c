#pragma once
// A record of what a few PEs did over virtual time, for traces (`--trace_pes`): after every
// operation of the fabric (Fabric::set_observer), each local PE of the window whose figures
// changed gets a sample of its clock, compute and injection cycles, SRAM in use and bytes sent.
// Between two samples the PE's clock advanced by its compute, injection and stall cycles (the
// clock is always their sum), so the samples split the PE's time into those three without
// guessing. A PE's samples depend only on the operations that touch it, so they are the same for
// every rank count; gather() brings them to rank 0.
//
// Cost: every operation of the fabric reads the window's PEs and brings the counters of executed
// steps up to date; meant for windows of a few dozen PEs.
#include <cstdint>
#include <vector>

#include "wafermesh/noc/fabric.hpp"

namespace wm {

class PeWindowTrace {
 public:
  using Sample = Fabric::PeTimes;
  // Starts recording (the first sample of each PE is its state now). Throws UsageError when the
  // window is empty or leaves the mesh. The fabric must outlive the recorder.
  PeWindowTrace(Fabric& f, const Region& window);
  ~PeWindowTrace();  // stops recording
  PeWindowTrace(const PeWindowTrace&) = delete;
  PeWindowTrace& operator=(const PeWindowTrace&) = delete;

  const Region& window() const { return window_; }
  // The samples of every PE of the window, row-major over the window: on rank 0 (empty vectors
  // elsewhere). Collective.
  std::vector<std::vector<Sample>> gather() const;

 private:
  void record();

  Fabric& f_;
  Region window_, local_;
  std::vector<std::vector<Sample>> samples_;  // (local_ PEs row-major)
};

}  // namespace wm
