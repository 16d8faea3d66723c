#pragma once
// The emulated network-on-chip: per-PE virtual clocks and counters for the PEs this rank owns,
// and the one engine that moves tiles between PEs (memory moves inside a rank, one aggregated
// MPI message per peer rank per step otherwise) while charging the PLMR costs of cost_model.hpp.
//
// Synchronisation rule (the only one): a step is executed collectively by every rank with the
// same TransferPlan. All departures read the senders' clocks as they were before the step;
// then senders pay injection; arrivals are computed from the departure clock carried with the
// tile; receivers take max(clock, arrival) at the end of the step (or later, at wait_arrivals(),
// when the caller overlaps compute with the transfer). Nothing depends on which rank owns which
// PE, so every clock and counter is identical for every rank count and layout.
#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "wafermesh/mesh/cart_comm.hpp"
#include "wafermesh/mesh/geometry.hpp"
#include "wafermesh/noc/cost_model.hpp"
#include "wafermesh/noc/params.hpp"
#include "wafermesh/util/huge_alloc.hpp"

namespace wm {

// Per-PE figures, all integers. Plain struct so it can be gathered with MPI as bytes.
struct PeCounters {
  uint64_t clock_cycles = 0;        // the PE's virtual time
  uint64_t compute_cycles = 0;      // time spent computing (including task overheads)
  uint64_t inject_cycles = 0;       // time spent pushing bytes into the NoC
  uint64_t stall_cycles = 0;        // time spent waiting for data to arrive
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t messages_sent = 0;       // one per stream sent (a multicast counts once)
  uint64_t max_hops = 0;            // longest single transfer this PE sent
  uint64_t sram_bytes = 0;          // SRAM in use now
  uint64_t sram_peak_bytes = 0;
  uint64_t route_entries = 0;       // route entries configured now
  uint64_t route_peak_entries = 0;
  friend bool operator==(const PeCounters&, const PeCounters&) = default;
};

// One tile moved from src to dst. Transfers that share a `stream` id form one multicast message
// (same source, listed contiguously): it loads each link once, is injected once, and needs one
// route entry per PE it touches. `relays` counts software relay / reduction stages (beta each).
struct Transfer {
  PeCoord src, dst;
  uint32_t stream = 0;
  uint32_t relays = 0;
};

class Fabric;

// A communication step prepared once and executed any number of times. Built by Fabric::plan
// from the step's transfers; keeps only what this rank needs. Holds its route entries while it
// is alive (configured at first execution) and releases them when destroyed.
class TransferPlan {
 public:
  TransferPlan() = default;
  TransferPlan(TransferPlan&& o) noexcept;
  TransferPlan& operator=(TransferPlan&& o) noexcept;
  TransferPlan(const TransferPlan&) = delete;
  TransferPlan& operator=(const TransferPlan&) = delete;
  ~TransferPlan();

  size_t tile_bytes() const { return tile_bytes_; }
  const std::string& name() const { return name_; }
  uint64_t max_hops() const { return max_hops_; }            // over every transfer of the step
  uint64_t max_latency_cycles() const { return max_latency_; }  // over every transfer of the step
  bool relay_mode() const { return relay_mode_; }
  // Every PE of this rank that the step touches sends exactly one tile and receives exactly one.
  bool permutes() const { return permutes_; }
  // Plans that carry the same key use the same routes (the same pattern with other payloads, e.g.
  // the allreduce of every projection of a layer on one region): while one of them holds its
  // routes, the others add no route entries. The caller guarantees that equal keys mean equal
  // routes. Set before the first execution.
  void share_routes(std::string key) { route_key_ = std::move(key); }
  // Gives back the route entries now, as destroying the plan would, but keeps it for another
  // execution, which configures them again exactly as a freshly built plan would (a plan that fell
  // back to relays is rebuilt as first planned). For steps that recur with the same transfers.
  void release_routes();

 private:
  friend class Fabric;
  struct Item {              // a transfer with a local end
    PeCoord src, dst;
    uint64_t latency = 0;    // alpha*h + beta*r + wire*load
  };
  struct Peer {
    int rank = -1;
    std::vector<Item> sends;  // local src, dst on `rank`, in plan order
    std::vector<Item> recvs;  // src on `rank`, local dst, in plan order
  };
  struct Inject {            // per (local source, stream)
    PeCoord pe;
    uint64_t cycles = 0, bytes = 0, hops = 0;
  };
  struct RouteNeed {
    PeCoord pe;
    uint32_t entries = 0;
  };
  Fabric* fabric_ = nullptr;
  std::string name_;
  size_t tile_bytes_ = 0;
  uint64_t max_hops_ = 0, max_latency_ = 0;
  bool relay_mode_ = false;
  bool routes_active_ = false;
  bool permutes_ = false;
  std::string route_key_;
  std::vector<Transfer> cover_;  // kept to rebuild in relay mode
  std::vector<Item> local_;
  std::vector<Peer> peers_;
  std::vector<Inject> injects_;
  std::vector<RouteNeed> routes_;
};

// A raw view of per-PE tiles. Local PE (x, y) has index i = (y - local.y0) * local.w + (x - local.x0)
// and its tile starts at base + slot[i] * tile_bytes (slot == nullptr: slot i). The slot table lets
// an in-place step that permutes tiles among this rank's PEs (a ring shift, a skew) move indices
// instead of bytes.
struct TileView {
  std::byte* base = nullptr;
  Region local;
  size_t tile_bytes = 0;
  uint32_t* slot = nullptr;
  size_t index(int32_t x, int32_t y) const { return size_t(y - local.y0) * size_t(local.w) + size_t(x - local.x0); }
  std::byte* at(int32_t x, int32_t y) const {
    const size_t i = index(x, y);
    return base + size_t(slot ? slot[i] : i) * tile_bytes;
  }
};

enum class Sync { wait, defer };  // defer: arrivals stay pending until wait_arrivals()

class Fabric {
 public:
  // Collective over `comm`. Throws UsageError on every rank if the ranks do not fit the mesh.
  Fabric(MPI_Comm comm, const MachineParams& params);
  ~Fabric();
  Fabric(const Fabric&) = delete;
  Fabric& operator=(const Fabric&) = delete;

  const MachineParams& params() const { return params_; }
  const CostModel& cost() const { return cost_; }
  const MeshShape& mesh() const { return mesh_; }
  const Decomposition& decomposition() const { return cart_.decomposition(); }
  const Region& block() const { return block_; }  // the PEs this rank owns
  // What the emulation itself sent over MPI from this rank since construction (one message per
  // peer rank per step; bytes include the departure clocks). Emulation costs, not the wafer's.
  uint64_t mpi_messages_sent() const { return mpi_messages_sent_; }
  uint64_t mpi_bytes_sent() const { return mpi_bytes_sent_; }
  MPI_Comm comm() const { return cart_.comm(); }
  int rank() const { return cart_.rank(); }
  int ranks() const { return cart_.size(); }
  bool is_local(int32_t x, int32_t y) const { return block_.contains(x, y); }

  // ---- clocks and counters of local PEs ----
  PeCounters& pe(int32_t x, int32_t y) { return pes_[local_index(x, y)]; }
  const PeCounters& pe(int32_t x, int32_t y) const { return pes_[local_index(x, y)]; }
  // Charges `macs` multiply-accumulates as one task on local PE (x, y).
  void charge_compute(int32_t x, int32_t y, uint64_t macs);
  // Charges every local PE of `r` one task of `macs_each`.
  void charge_compute(const Region& r, uint64_t macs_each);
  // Applies pending arrivals: clock = max(clock, latest arrival); the difference is stall time.
  void wait_arrivals();
  // Sets every PE of `r` to the latest clock among them (a barrier in virtual time). Collective.
  void barrier_clocks(const Region& r);
  // Starts a new measurement window for the peak counters: peak SRAM and routes become the
  // current use, longest hop becomes 0. Local, deterministic.
  void reset_peaks();
  // While held, reset_peaks() does nothing: a long job (a whole generation) keeps one window for
  // its per-PE peaks although the algorithms it runs open windows of their own.
  void hold_peaks(bool held) { peaks_held_ = held; }
  // Raises the clock of every local PE of `r` to at least t (the PEs wait for data from the host).
  void advance_clocks(const Region& r, uint64_t t);

  // ---- SRAM accounting (called by TileBuf) ----
  // Collective: every rank calls it with the same arguments (no communication: every rank keeps
  // the use of every PE). Throws LimitError on every rank when some PE of `r` would exceed
  // pe.sram_bytes, naming the first such PE (row-major), the need and the limit.
  void sram_acquire(const Region& r, uint64_t bytes_each, const std::string& what);
  void sram_release(const Region& r, uint64_t bytes_each);

  // ---- communication ----
  // Prepares a step. `transfers` must be identical on every rank, or at least contain every
  // transfer that shares a link with a transfer that has an end on this rank (line builders in
  // line_plans.hpp pass only the lines crossing the rank's block).
  TransferPlan plan(std::vector<Transfer> transfers, size_t tile_bytes, std::string name);
  // Executes a step collectively: tile of src PE in `src` -> tile of dst PE in `dst`.
  // `src` and `dst` may be the same buffer: every tile is read before any is written.
  // `departs` (from departures()) gives the senders' clocks taken earlier: a step posted before a
  // compute task and carried out after it, so its data can move in place once the compute has
  // read the old tiles, while the virtual clock still overlaps the two.
  void execute(TransferPlan& plan, const TileView& src, const TileView& dst, Sync sync = Sync::wait,
               const std::vector<uint64_t>* departs = nullptr);
  // Executes a step for its clocks and counters only: every figure exactly as execute() would set
  // it, but no tile bytes move (the caller produces the data the step would deliver by other
  // means, e.g. an exact integer reduction). Collective.
  void execute_timing(TransferPlan& plan, Sync sync = Sync::wait);
  // The ranks whose blocks share lines along `axis` (rows for X: the same Cartesian row), as a
  // communicator, created once. For exchanging per-rank partial results of whole lines.
  MPI_Comm line_comm(Axis axis);
  // The current clocks of the plan's local senders, in the order execute() uses them.
  std::vector<uint64_t> departures(const TransferPlan& plan) const;

  // ---- gathers (for tests, reports and small meshes) ----
  // Counters of every PE of `r`, row-major, on rank 0 (empty elsewhere). Collective.
  std::vector<PeCounters> gather_counters(const Region& r) const;
  // Tiles of every PE of `r` (row-major PE order, tile_bytes each) on rank 0. Collective.
  std::vector<std::byte> gather_tiles(const TileView& v, const Region& r) const;

  // Fabric-wide maxima over all PEs (collective): clock, peak SRAM, peak routes, longest hop.
  struct Summary {
    uint64_t max_clock_cycles = 0, max_compute_cycles = 0, max_stall_cycles = 0;
    uint64_t max_sram_peak_bytes = 0, max_route_peak_entries = 0, max_hops = 0;
    uint64_t total_bytes_sent = 0, total_messages = 0;
  };
  Summary summarize(const Region& r) const;
  // This rank's part of summarize(r): its figures over r ∩ its block (all 0 when that is empty).
  // Local: reducing it by max (the six maxima) and sum (the two totals) over the ranks gives
  // summarize(r) as it stood at this call.
  Summary summarize_local(const Region& r) const;

 private:
  friend class TransferPlan;
  size_t local_index(int32_t x, int32_t y) const {
    return size_t(y - block_.y0) * size_t(block_.w) + size_t(x - block_.x0);
  }
  void build(TransferPlan& p, bool relay_mode);
  // The PE a directed link enters.
  PeCoord link_head(uint64_t link) const {
    const PeCoord c = mesh_.coord(int64_t(link / 4));
    switch (int(link % 4)) {
      case kLinkEast: return {c.x + 1, c.y};
      case kLinkWest: return {c.x - 1, c.y};
      case kLinkSouth: return {c.x, c.y + 1};
      default: return {c.x, c.y - 1};
    }
  }
  void note_arrival(size_t local_pe, uint64_t arrival);
  void activate_routes(TransferPlan& p);
  void release_routes(TransferPlan& p);
  [[noreturn]] void throw_limit_collective(int64_t bad_pe, uint64_t need_local, const std::string& what,
                                           const std::string& limit_text);

  MachineParams params_;
  CostModel cost_;
  MeshShape mesh_;
  CartComm cart_;
  Region block_;
  // The per-PE arrays sit on huge pages: a step touches one row of a region every block_.w PEs, so
  // on 4 KiB pages nearly every row of PeCounters cost a TLB miss.
  template <class T>
  using PeArray = std::vector<T, HugePageAllocator<T>>;
  PeArray<PeCounters> pes_;              // local PEs, row-major over block_
  PeArray<uint64_t> pending_;            // latest pending arrival per local PE (0 = none)
  std::vector<size_t> pending_list_;     // local PEs with a pending arrival
  std::vector<uint32_t> link_load_;      // scratch: streams per directed link (4 per PE)
  std::vector<uint32_t> link_stream_;    // scratch: last stream seen per link (+1)
  std::vector<uint32_t> link_pmax_;      // scratch: busiest load from the stream's source to the link
  std::vector<uint32_t> link_pmax_tag_;  // scratch: the stream (+1) link_pmax_ belongs to
  PeArray<uint32_t> pe_stream_;          // scratch: last stream seen per PE (+1), for routes
  PeArray<uint32_t> pe_routes_;          // scratch: route entries per PE for the plan being built
  std::vector<std::byte> staging_;       // scratch for aliased local moves
  std::vector<std::vector<std::byte>> rbuf_, sbuf_;  // per-peer message buffers, reused
  uint64_t mpi_messages_sent_ = 0, mpi_bytes_sent_ = 0;
  std::vector<uint64_t> local_departs_;  // departure clocks of a step's local moves, reused
  PeArray<uint32_t> sram_all_;           // SRAM bytes in use on every PE of the mesh (replicated)
  struct SharedRoutes {                  // routes held for plans with one share_routes() key
    int users = 0;
    std::vector<TransferPlan::RouteNeed> routes;
  };
  std::map<std::string, SharedRoutes> shared_routes_;
  bool peaks_held_ = false;
  bool timing_only_ = false;  // set by execute_timing for the step it runs
  MPI_Comm line_comm_[2] = {MPI_COMM_NULL, MPI_COMM_NULL};
  // summarize(): its eight figures as one MPI element, reduced by max (six) and sum (two) in one
  // collective; the decode path asks for a summary after every phase of every layer.
  MPI_Datatype summary_type_ = MPI_DATATYPE_NULL;
  MPI_Op summary_op_ = MPI_OP_NULL;
};

}  // namespace wm
