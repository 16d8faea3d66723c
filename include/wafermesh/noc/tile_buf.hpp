#pragma once
// Per-PE tiles of one element type over a region: every PE of the region holds `elems` elements;
// this rank stores the tiles of the PEs it owns, row-major. Creating a TileBuf charges its bytes
// to the SRAM of every PE of the region (collective: every rank creates the same buffers in the
// same order); destroying it gives them back.
//
// Line-replicated tiles (for_each_line_head): when every PE of each line along an axis holds the
// same tile, only the first local PE of each line (its head) is written; the other PEs' storage is
// brought up to date when something could read or write it other than through a const tile():
// view() (every transfer, gather), for_each_local, a non-const tile() or local_tile(). Until then a
// const tile() of any PE reads its line's head. The host keeps one tile per line, in an array of
// its own, instead of copying it to every PE (a buffer made with NoInit and written only through
// line heads never touches its per-PE storage); what each PE holds is unchanged. The copying is
// not thread-safe: threads that share such a buffer read it through const tiles (or call view()
// before they start).
//
// The bytes charged, and moved over the wire by the plans built with bytes_per_pe(), are the
// tile's bytes on the wafer, fixed at construction: elems x wafer_elem_bytes<T> (wafer_data.hpp:
// floats at wafer.dtype), or a packed format's own count (WaferBytes). The host keeps its own
// elements (elems x sizeof(T), the view's tile_bytes); only they are copied.
//   Example: 48 floats with wafer.dtype fp16: 96 bytes of SRAM and on the wire, 192 on the host.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "wafermesh/kernels/aligned_buffer.hpp"
#include "wafermesh/noc/fabric.hpp"
#include "wafermesh/noc/wafer_data.hpp"

namespace wm {

template <class T>
class TileBuf {
  static_assert(std::is_trivially_copyable_v<T>, "tiles move as bytes");

 public:
  TileBuf(Fabric& f, Region region, size_t elems, std::string name)
      : TileBuf(f, region, elems, std::move(name), by_type(f, elems), true, true) {}
  // Tiles the caller overwrites completely before reading: charged as usual, not zeroed.
  struct NoInit {};
  TileBuf(Fabric& f, Region region, size_t elems, std::string name, NoInit)
      : TileBuf(f, region, elems, std::move(name), by_type(f, elems), true, false) {}
  // Host storage only: the caller charges the SRAM while the tiles are live (scratch that exists
  // on the PEs only during one collective, see LineAllreduce).
  struct Uncharged {};
  TileBuf(Fabric& f, Region region, size_t elems, std::string name, Uncharged)
      : TileBuf(f, region, elems, std::move(name), by_type(f, elems), false, true) {}
  // Data the host stores in another form than the wafer: a tile is `per_pe` bytes on the wafer
  // (ternary weights: the host's lookup-table packing, the wafer's wafer.ternary_format).
  struct WaferBytes {
    uint64_t per_pe;
  };
  TileBuf(Fabric& f, Region region, size_t elems, std::string name, WaferBytes w)
      : TileBuf(f, region, elems, std::move(name), w.per_pe, true, true) {}
  ~TileBuf() {
    if (fabric_ && charged_) fabric_->sram_release(region_, bytes_per_pe());
  }
  TileBuf(TileBuf&& o) noexcept
      : fabric_(o.fabric_), region_(o.region_), local_(o.local_), elems_(o.elems_), wafer_bytes_(o.wafer_bytes_),
        name_(std::move(o.name_)), data_(std::move(o.data_)), slot_(std::move(o.slot_)),
        permuted_(std::move(o.permuted_)), heads_(std::move(o.heads_)), charged_(o.charged_),
        unwritten_(o.unwritten_), heads_only_(o.heads_only_), heads_axis_(o.heads_axis_) {
    o.fabric_ = nullptr;
  }
  TileBuf& operator=(TileBuf&&) = delete;
  TileBuf(const TileBuf&) = delete;
  TileBuf& operator=(const TileBuf&) = delete;

  const Region& region() const { return region_; }
  const Region& local() const { return local_; }  // region ∩ this rank's block
  size_t elems() const { return elems_; }
  // A tile's bytes on the wafer: what its SRAM and wire bytes are charged for.
  uint64_t bytes_per_pe() const { return wafer_bytes_; }
  bool is_local(int32_t x, int32_t y) const { return local_.contains(x, y); }

  // The tile of local PE (x, y): `elems` elements.
  T* tile(int32_t x, int32_t y) { return local_tile(size_t(y - local_.y0) * size_t(local_.w) + size_t(x - local_.x0)); }
  const T* tile(int32_t x, int32_t y) const {
    return local_tile(size_t(y - local_.y0) * size_t(local_.w) + size_t(x - local_.x0));
  }
  // The tile of the i-th local PE (row-major over local()).
  T* local_tile(size_t i) {
    fill_lines();
    return stored(i);
  }
  const T* local_tile(size_t i) const {
    return heads_only_ ? heads_.data() + line_index(i) * elems_ : const_cast<TileBuf*>(this)->stored(i);
  }

  // fn(x, y, T* tile) on the head of every local line along `rep` (its first local PE), whose tile
  // then stands for every PE of the line: the caller has made every PE of a line hold the same
  // values. fn may read the buffer's own tiles (const): when the heads already stood for their
  // lines, any PE of a line reads the tile fn writes; else every PE reads its own stored tile (the
  // head's as it was before this pass).
  template <class F>
  void for_each_line_head(Axis rep, F&& fn) {
    if (local_.empty()) return;
    if (heads_only_ && heads_axis_ != rep) fill_lines();
    const Region& l = local_;
    const size_t lines = size_t(rep == Axis::X ? l.h : l.w);
    if (!heads_only_) {  // the heads start from their own tiles (unless nothing was ever written)
      heads_axis_ = rep;
      heads_.resize(lines * elems_);
      if (!unwritten_)
        for (size_t k = 0; k < lines; ++k)
          std::memcpy(heads_.data() + k * elems_, stored(head_index(k)), elems_ * sizeof(T));
    }
    // While the heads are first written, const tiles still read every PE's own storage.
    for (size_t k = 0; k < lines; ++k) {
      const int32_t x = rep == Axis::X ? l.x0 : l.x0 + int32_t(k), y = rep == Axis::X ? l.y0 + int32_t(k) : l.y0;
      fn(x, y, heads_.data() + k * elems_);
    }
    heads_only_ = true;
  }

  // f(x, y, T* tile) for every local PE, row-major.
  template <class F>
  void for_each_local(F&& f) {
    fill_lines();
    for (int32_t y = local_.y0; y < local_.y0 + local_.h; ++y)
      for (int32_t x = local_.x0; x < local_.x0 + local_.w; ++x) f(x, y, tile(x, y));
  }

  TileView view() const {
    fill_lines();
    if (slot_.size() != size_t(local_.size())) {  // the identity, made when first a transfer may permute it
      auto& slot = const_cast<TileBuf*>(this)->slot_;
      slot.resize(size_t(local_.size()));
      for (size_t i = 0; i < slot.size(); ++i) slot[i] = uint32_t(i);
    }
    return {reinterpret_cast<std::byte*>(const_cast<T*>(data_.data())), local_, elems_ * sizeof(T),
            const_cast<uint32_t*>(slot_.data()), permuted_.get(), wafer_bytes_};
  }
  // All tiles of the region on rank 0 (row-major PE order, `elems` each); empty elsewhere.
  std::vector<T> gather() const {
    const std::vector<std::byte> raw = fabric_->gather_tiles(view(), region_);
    std::vector<T> out(raw.size() / sizeof(T));
    if (!raw.empty()) std::memcpy(out.data(), raw.data(), raw.size());
    return out;
  }

 private:
  TileBuf(Fabric& f, Region region, size_t elems, std::string name, uint64_t wafer_bytes, bool charged, bool zero)
      : fabric_(&f), region_(region), local_(region.intersect(f.block())), elems_(elems), wafer_bytes_(wafer_bytes),
        name_(std::move(name)), charged_(charged) {
    if (charged_) f.sram_acquire(region_, wafer_bytes_, "tile buffer '" + name_ + "'");
    if (zero) data_.assign(size_t(local_.size()) * elems_, T{});
    else data_.resize(size_t(local_.size()) * elems_);  // default-initialised: not touched
    unwritten_ = !zero;
  }
  static uint64_t by_type(const Fabric& f, size_t elems) { return uint64_t(elems) * wafer_elem_bytes<T>(f.params()); }

  T* stored(size_t i) { return data_.data() + (*permuted_ ? size_t(slot_[i]) : i) * elems_; }
  // The line (along heads_axis_) of local PE i, and the local index of the head of line k.
  size_t line_index(size_t i) const {
    const size_t w = size_t(local_.w);
    return heads_axis_ == Axis::X ? i / w : i % w;
  }
  size_t head_index(size_t k) const { return heads_axis_ == Axis::X ? k * size_t(local_.w) : k; }
  // Every PE's storage brought up to date from its line's head (a no-op when it is); from here on
  // the storage counts as written (every caller may write it).
  void fill_lines() const {
    if (!heads_only_ && !unwritten_) return;  // (every per-PE accessor: the common case first)
    TileBuf& me = *const_cast<TileBuf*>(this);
    me.unwritten_ = false;
    if (!heads_only_) return;
    me.heads_only_ = false;
    const Region& l = local_;
    const size_t lines = size_t(heads_axis_ == Axis::X ? l.h : l.w);
    for (size_t k = 0; k < lines; ++k)
      std::memcpy(me.stored(head_index(k)), heads_.data() + k * elems_, elems_ * sizeof(T));
    if (heads_axis_ == Axis::X) {
      for (int32_t y = l.y0; y < l.y0 + l.h; ++y) me.copy_forward(l.x0, y, size_t(l.w));
    } else {
      me.copy_forward(l.x0, l.y0, size_t(l.h), size_t(l.w));
    }
  }
  // Copies the `unit` consecutive tiles (row-major over local()) that start at local PE (x, y) to
  // the (n - 1) x unit local PEs that follow them: n copies of the run in all (n >= 1). Bulk copies
  // of doubling length when the tiles sit in place (no moves have permuted them), else one copy
  // per tile.
  void copy_forward(int32_t x, int32_t y, size_t n, size_t unit = 1) {
    const size_t first = size_t(y - local_.y0) * size_t(local_.w) + size_t(x - local_.x0);
    if (!*permuted_) {
      T* base = data_.data() + first * elems_;
      const size_t run = unit * elems_;
      for (size_t have = 1; have < n;) {
        const size_t k = std::min(have, n - have);
        std::memcpy(base + have * run, base, k * run * sizeof(T));
        have += k;
      }
      return;
    }
    for (size_t i = unit; i < n * unit; ++i)
      std::memcpy(stored(first + i), stored(first + i % unit), elems_ * sizeof(T));
  }

  Fabric* fabric_;
  Region region_, local_;
  size_t elems_;
  uint64_t wafer_bytes_;  // a tile's bytes on the wafer
  std::string name_;
  // (local PEs, elems): storage slots; never in an arena (see kernels/aligned_buffer.hpp)
  std::vector<T, kernels::AlignedAllocator<T>> data_{kernels::AlignedAllocator<T>(kernels::no_arena)};
  // (local PEs): the slot holding each local PE's tile (made by view(), written once: resize leaves
  // the elements unwritten)
  std::vector<uint32_t, kernels::AlignedAllocator<uint32_t>> slot_{kernels::AlignedAllocator<uint32_t>(kernels::no_arena)};
  std::unique_ptr<bool> permuted_ = std::make_unique<bool>(false);  // slot_ differs from identity
  std::vector<T> heads_;       // (local lines along heads_axis_, elems): the heads' tiles while heads_only_
  bool charged_ = true;
  bool unwritten_ = false;     // made with NoInit, and the per-PE storage not handed out since
  bool heads_only_ = false;   // only the heads of the lines along heads_axis_ are up to date (in heads_)
  Axis heads_axis_ = Axis::X;
};

// SRAM held by data the caller stores in its own form (packed weights, caches): charged to every
// PE of a region on construction (collective, LimitError when over), released on destruction.
class SramCharge {
 public:
  SramCharge(Fabric& f, Region r, uint64_t bytes_each, const std::string& what)
      : fabric_(&f), region_(r), bytes_(bytes_each) {
    f.sram_acquire(r, bytes_each, what);
  }
  ~SramCharge() {
    if (fabric_) fabric_->sram_release(region_, bytes_);
  }
  SramCharge(SramCharge&& o) noexcept : fabric_(o.fabric_), region_(o.region_), bytes_(o.bytes_) { o.fabric_ = nullptr; }
  SramCharge(const SramCharge&) = delete;
  SramCharge& operator=(const SramCharge&) = delete;
  SramCharge& operator=(SramCharge&&) = delete;

 private:
  Fabric* fabric_;
  Region region_;
  uint64_t bytes_;
};

}  // namespace wm
