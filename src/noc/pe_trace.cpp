#include "wafermesh/noc/pe_trace.hpp"

#include <mpi.h>

#include <limits>
#include <stdexcept>

#include "wafermesh/mesh/mpi_traits.hpp"
#include "wafermesh/util/error.hpp"

namespace wm {

PeWindowTrace::PeWindowTrace(Fabric& f, const Region& window) : f_(f), window_(window) {
  if (window.empty() || window.intersect(f.mesh().full()).size() != window.size())
    throw UsageError("PE window " + window.str() + " is empty or leaves the " + std::to_string(f.mesh().width) + " x " +
                     std::to_string(f.mesh().height) + " mesh");
  local_ = window.intersect(f.block());
  samples_.resize(size_t(local_.empty() ? 0 : local_.size()));
  record();
  f_.set_observer([this] { record(); });
}

PeWindowTrace::~PeWindowTrace() { f_.set_observer({}); }

void PeWindowTrace::record() {
  if (local_.empty()) return;
  size_t k = 0;
  for (int32_t y = local_.y0; y < local_.y0 + local_.h; ++y)
    for (int32_t x = local_.x0; x < local_.x0 + local_.w; ++x, ++k) {
      const Sample s = f_.pe_times(x, y);
      std::vector<Sample>& v = samples_[k];
      if (v.empty() || !(v.back() == s)) v.push_back(s);
    }
}

std::vector<std::vector<PeWindowTrace::Sample>> PeWindowTrace::gather() const {
  // Each rank sends [count of each local PE][its samples], rank 0 places them by the decomposition.
  constexpr size_t kWords = sizeof(Sample) / sizeof(uint64_t);
  static_assert(sizeof(Sample) == kWords * sizeof(uint64_t));
  std::vector<uint64_t> mine;
  for (const auto& v : samples_) mine.push_back(v.size());
  for (const auto& v : samples_)
    for (const Sample& s : v) {
      const auto* w = reinterpret_cast<const uint64_t*>(&s);
      mine.insert(mine.end(), w, w + kWords);
    }
  const int n = f_.ranks();
  if (mine.size() > size_t(std::numeric_limits<int>::max())) throw std::length_error("PE trace too large to gather");
  int count = int(mine.size());
  std::vector<int> counts(static_cast<size_t>(n)), displs(static_cast<size_t>(n));
  MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, f_.comm());
  int64_t total = 0;
  for (int q = 0; q < n; ++q) {
    displs[size_t(q)] = int(total);
    total += counts[size_t(q)];
    if (total > std::numeric_limits<int>::max()) throw std::length_error("PE trace too large to gather");
  }
  std::vector<uint64_t> all(f_.rank() == 0 ? size_t(total) : 0);
  MPI_Gatherv(mine.data(), count, mpi_type<uint64_t>(), all.data(), counts.data(), displs.data(),
              mpi_type<uint64_t>(), 0, f_.comm());
  if (f_.rank() != 0) return {};
  std::vector<std::vector<Sample>> out(size_t(window_.size()));
  const Decomposition& d = f_.decomposition();
  for (int q = 0; q < n; ++q) {
    const Region lq = window_.intersect(d.block(q));
    if (lq.empty()) continue;
    const uint64_t* p = all.data() + displs[size_t(q)];
    const uint64_t* data = p + lq.size();
    size_t k = 0;
    for (int32_t y = lq.y0; y < lq.y0 + lq.h; ++y)
      for (int32_t x = lq.x0; x < lq.x0 + lq.w; ++x, ++k) {
        std::vector<Sample>& v = out[size_t(y - window_.y0) * size_t(window_.w) + size_t(x - window_.x0)];
        v.resize(size_t(p[k]));
        for (Sample& s : v) {
          auto* w = reinterpret_cast<uint64_t*>(&s);
          std::copy(data, data + kWords, w);
          data += kWords;
        }
      }
  }
  return out;
}

}  // namespace wm
