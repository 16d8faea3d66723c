#pragma once
// Mesh geometry and its decomposition over MPI ranks.
//
// The virtual mesh has W x H processing elements (PEs). PE (x, y) has id y*W + x; x grows to
// the east, y to the south. Ranks form a px x py grid; rank (cx, cy) owns the PE block
// [x0, x0+w) x [y0, y0+h). Blocks are as even as possible: with n PEs over p ranks along an
// axis, the first n % p ranks get ceil(n/p) PEs, the rest floor(n/p).
//   Example: 994 rows over 3 ranks -> 332, 331, 331 (rows 0-331, 332-662, 663-993).
// Every lookup (id <-> coords <-> owner) is O(1) arithmetic.
#include <cstdint>
#include <string>

namespace wm {

struct PeCoord {
  int32_t x = 0;
  int32_t y = 0;
  friend bool operator==(const PeCoord&, const PeCoord&) = default;
};

// A rectangle of PEs: [x0, x0+w) x [y0, y0+h). Algorithms run on regions.
struct Region {
  int32_t x0 = 0, y0 = 0, w = 0, h = 0;
  bool contains(int32_t x, int32_t y) const { return x >= x0 && x < x0 + w && y >= y0 && y < y0 + h; }
  int64_t size() const { return int64_t(w) * h; }
  bool empty() const { return w <= 0 || h <= 0; }
  // The PEs in both (empty, w = h = 0, when none). Inline: the engine intersects on every charge.
  Region intersect(const Region& o) const {
    const int32_t ax = x0 > o.x0 ? x0 : o.x0, ay = y0 > o.y0 ? y0 : o.y0;
    const int32_t ex = x0 + w, ox = o.x0 + o.w, ey = y0 + h, oy = o.y0 + o.h;
    const int32_t bx = ex < ox ? ex : ox, by = ey < oy ? ey : oy;
    if (bx <= ax || by <= ay) return {ax, ay, 0, 0};
    return {ax, ay, bx - ax, by - ay};
  }
  std::string str() const;  // "[x0..x1) x [y0..y1)"
  friend bool operator==(const Region&, const Region&) = default;
};

// n items split over p parts, as evenly as possible (first n % p parts one larger).
class Block1D {
 public:
  Block1D() = default;
  Block1D(int64_t n, int64_t p);
  int64_t n() const { return n_; }
  int64_t parts() const { return p_; }
  int64_t start(int64_t part) const { return part * q_ + (part < r_ ? part : r_); }
  int64_t size(int64_t part) const { return q_ + (part < r_ ? 1 : 0); }
  int64_t owner(int64_t i) const {
    const int64_t big = r_ * (q_ + 1);
    return i < big ? i / (q_ + 1) : r_ + (i - big) / q_;
  }

 private:
  int64_t n_ = 0, p_ = 1, q_ = 0, r_ = 0;
};

struct MeshShape {
  int32_t width = 0;   // W, PEs along X
  int32_t height = 0;  // H, PEs along Y
  int64_t pe_count() const { return int64_t(width) * height; }
  int64_t id(int32_t x, int32_t y) const { return int64_t(y) * width + x; }
  PeCoord coord(int64_t id) const { return {int32_t(id % width), int32_t(id / width)}; }
  bool contains(int32_t x, int32_t y) const { return x >= 0 && x < width && y >= 0 && y < height; }
  Region full() const { return {0, 0, width, height}; }
};

// Which rank owns which PEs. Ranks are numbered row-major over the rank grid:
// rank = cy * px + cx (the order MPI_Cart_create uses for dims {py, px}).
class Decomposition {
 public:
  Decomposition() = default;
  Decomposition(MeshShape mesh, int ranks_x, int ranks_y);

  const MeshShape& mesh() const { return mesh_; }
  int ranks_x() const { return px_; }
  int ranks_y() const { return py_; }
  int rank_count() const { return px_ * py_; }
  int rank_of(int cx, int cy) const { return cy * px_ + cx; }
  int owner(int32_t x, int32_t y) const { return rank_of(int(bx_.owner(x)), int(by_.owner(y))); }
  Region block(int rank) const;  // the PEs rank owns
  const Block1D& blocks_x() const { return bx_; }
  const Block1D& blocks_y() const { return by_; }

 private:
  MeshShape mesh_{};
  int px_ = 1, py_ = 1;
  Block1D bx_, by_;
};

// Picks the rank grid px x py == ranks. A forced extent (> 0) is honoured; otherwise the
// factorisation with px <= W and py <= H that minimises the block half-perimeter
// ceil(W/px) + ceil(H/py) (the halo a neighbour shift moves) wins, ties to larger px.
// Throws UsageError naming the rank count and the mesh when no factorisation fits.
struct RankGrid {
  int px = 1, py = 1;
};
RankGrid choose_rank_grid(MeshShape mesh, int ranks, int forced_px = 0, int forced_py = 0);

}  // namespace wm
