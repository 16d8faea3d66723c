#include "wafermesh/mesh/geometry.hpp"

#include <algorithm>
#include <limits>
#include <sstream>

#include "wafermesh/util/error.hpp"

namespace wm {

std::string Region::str() const {
  std::ostringstream s;
  s << "x " << x0 << ".." << (x0 + w - 1) << ", y " << y0 << ".." << (y0 + h - 1) << " (" << w
    << " x " << h << ")";
  return s.str();
}

Block1D::Block1D(int64_t n, int64_t p) : n_(n), p_(p), q_(p > 0 ? n / p : 0), r_(p > 0 ? n % p : 0) {}

Decomposition::Decomposition(MeshShape mesh, int ranks_x, int ranks_y)
    : mesh_(mesh), px_(ranks_x), py_(ranks_y), bx_(mesh.width, ranks_x), by_(mesh.height, ranks_y) {}

Region Decomposition::block(int rank) const {
  const int cx = rank % px_, cy = rank / px_;
  return {int32_t(bx_.start(cx)), int32_t(by_.start(cy)), int32_t(bx_.size(cx)), int32_t(by_.size(cy))};
}

RankGrid choose_rank_grid(MeshShape mesh, int ranks, int forced_px, int forced_py) {
  auto fail = [&](const std::string& why) {
    std::ostringstream s;
    s << ranks << " MPI ranks do not fit a " << mesh.width << " x " << mesh.height << " mesh: " << why;
    throw UsageError(s.str());
  };
  if (forced_px > 0 && forced_py > 0 && forced_px * forced_py != ranks) {
    fail("emu.ranks_x * emu.ranks_y = " + std::to_string(forced_px) + " * " + std::to_string(forced_py) +
         " = " + std::to_string(forced_px * forced_py) + " differs from the rank count");
  }
  if (forced_px > 0 && ranks % forced_px != 0)
    fail("emu.ranks_x = " + std::to_string(forced_px) + " does not divide the rank count");
  if (forced_py > 0 && ranks % forced_py != 0)
    fail("emu.ranks_y = " + std::to_string(forced_py) + " does not divide the rank count");
  if (forced_px > mesh.width)
    fail("emu.ranks_x = " + std::to_string(forced_px) + " exceeds the mesh width " + std::to_string(mesh.width) +
         " (each rank needs at least one PE column)");
  if (forced_py > mesh.height)
    fail("emu.ranks_y = " + std::to_string(forced_py) + " exceeds the mesh height " +
         std::to_string(mesh.height) + " (each rank needs at least one PE row)");
  RankGrid best{0, 0};
  int64_t best_cost = std::numeric_limits<int64_t>::max();
  for (int px = 1; px <= ranks; ++px) {
    if (ranks % px) continue;
    const int py = ranks / px;
    if (forced_px > 0 && px != forced_px) continue;
    if (forced_py > 0 && py != forced_py) continue;
    if (px > mesh.width || py > mesh.height) continue;
    const int64_t cost = (mesh.width + px - 1) / px + (mesh.height + py - 1) / py;
    if (cost < best_cost || (cost == best_cost && px > best.px)) {
      best = {px, py};
      best_cost = cost;
    }
  }
  if (best.px == 0) {
    fail("every rank needs at least one PE along each axis, so ranks_x <= " + std::to_string(mesh.width) +
         " and ranks_y <= " + std::to_string(mesh.height) + " with ranks_x * ranks_y = " + std::to_string(ranks) +
         "; use fewer ranks or a larger mesh");
  }
  return best;
}

}  // namespace wm
