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
//
// How the engine spends its time. The state of the local PEs is kept as structure-of-arrays
// (clock, compute, injection, ... one array each, row-major over the rank's block). A plan is
// compiled once into flat arrays of block indices and latencies: executing a step is a few linear
// sweeps (departure clocks + latencies -> arrivals, injections, max into the receivers' clocks)
// plus the tile moves, with no maps, strings or heap work. Steps along the lines of a region
// (shifts, multicasts, chain and tree reductions) are planned from one template per line pattern:
// lines share no links, so loads, latencies and routes are computed once per template and the
// plan is emitted line by line, never by walking mesh links. Counters that only reports read
// (bytes, messages, longest hop, injection cycles) are accumulated per plan as an execution count
// and added to the PEs when something reads them; stall cycles are derived
// (clock = compute + injection + stall holds for every PE at all times). Steps that recur with the
// same transfers (the skews and shifts of every MeshGEMM on a region) are planned once and kept
// (kept_plan). Sequences that recur from the same clock pattern (the allreduces of every decoded
// token) are recorded once and applied again in one sweep over the clocks (replay, ClockTape),
// checked in another unless the clocks are known to be uniform (after a barrier); their compute
// cycles wait as row or column patterns until something reads them.
#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "wafermesh/kernels/aligned_buffer.hpp"
#include "wafermesh/mesh/cart_comm.hpp"
#include "wafermesh/mesh/geometry.hpp"
#include "wafermesh/mesh/mpi_handles.hpp"
#include "wafermesh/noc/cost_model.hpp"
#include "wafermesh/noc/params.hpp"

// Checks that a PE coordinate handed to a per-PE accessor belongs to this rank: on in debug builds
// and under AddressSanitizer, where an unowned PE would otherwise read or write another PE's state.
#if !defined(NDEBUG) || defined(__SANITIZE_ADDRESS__)
#define WM_CHECK_OWNERSHIP 1
#else
#define WM_CHECK_OWNERSHIP 0
#endif

namespace wm {

// Operations of compute tasks by kind of work (cost_model.hpp, Work): what the energy model charges
// per operation (noc/energy.hpp), each kind at its own energy.
struct OpCounts {
  uint64_t fp_macs = 0;      // fp multiply-accumulates at the wafer's dtype
  uint64_t elem_ops = 0;     // fp element operations at the wafer's dtype
  uint64_t ternary_ops = 0;  // ternary weights applied (an int8 add or subtract each)
  uint64_t int_ops = 0;      // integer element operations
  static constexpr size_t kWords = 4;
  uint64_t& of(Work w) {
    switch (w) {
      case Work::fp: return fp_macs;
      case Work::elem: return elem_ops;
      case Work::ternary: return ternary_ops;
      default: return int_ops;
    }
  }
  uint64_t total() const { return fp_macs + elem_ops + ternary_ops + int_ops; }
  OpCounts& operator+=(const OpCounts& o) {
    fp_macs += o.fp_macs, elem_ops += o.elem_ops, ternary_ops += o.ternary_ops, int_ops += o.int_ops;
    return *this;
  }
  friend OpCounts operator-(OpCounts a, const OpCounts& b) {
    a.fp_macs -= b.fp_macs, a.elem_ops -= b.elem_ops, a.ternary_ops -= b.ternary_ops, a.int_ops -= b.int_ops;
    return a;
  }
  friend bool operator==(const OpCounts&, const OpCounts&) = default;
  void to_words(uint64_t* w) const { w[0] = fp_macs, w[1] = elem_ops, w[2] = ternary_ops, w[3] = int_ops; }
  static OpCounts from_words(const uint64_t* w) { return {w[0], w[1], w[2], w[3]}; }
};

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
  // What the energy model charges (noc/energy.hpp), besides the bytes above:
  OpCounts ops;                     // operations of its compute tasks by kind of work (task overheads
                                    // and receive tasks excluded; a streamed add: its elements)
  uint64_t byte_hops = 0;           // bytes it sent x links they crossed (a multicast: each link of its tree once)
  friend bool operator==(const PeCounters&, const PeCounters&) = default;
};

// The same work summed over PEs: what the wafer's energy is charged for (noc/energy.hpp).
struct WorkCounts {
  OpCounts ops;
  uint64_t bytes_sent = 0, bytes_received = 0, byte_hops = 0;
  static constexpr size_t kWords = OpCounts::kWords + 3;
  WorkCounts& operator+=(const WorkCounts& o) {
    ops += o.ops, bytes_sent += o.bytes_sent, bytes_received += o.bytes_received, byte_hops += o.byte_hops;
    return *this;
  }
  friend WorkCounts operator-(WorkCounts a, const WorkCounts& b) {
    a.ops = a.ops - b.ops, a.bytes_sent -= b.bytes_sent, a.bytes_received -= b.bytes_received, a.byte_hops -= b.byte_hops;
    return a;
  }
  friend bool operator==(const WorkCounts&, const WorkCounts&) = default;
  // As kWords integers (for sums over ranks), and back.
  void to_words(uint64_t* w) const {
    ops.to_words(w);
    w[OpCounts::kWords] = bytes_sent, w[OpCounts::kWords + 1] = bytes_received, w[OpCounts::kWords + 2] = byte_hops;
  }
  static WorkCounts from_words(const uint64_t* w) {
    WorkCounts c;
    c.ops = OpCounts::from_words(w);
    c.bytes_sent = w[OpCounts::kWords], c.bytes_received = w[OpCounts::kWords + 1], c.byte_hops = w[OpCounts::kWords + 2];
    return c;
  }
};

// One tile moved from src to dst. Transfers that share a `stream` id form one multicast message
// (same source, listed contiguously): it loads each link once, is injected once, and needs one
// route entry per PE it touches. `relays` counts software relay / reduction stages (beta each).
struct Transfer {
  PeCoord src, dst;
  uint32_t stream = 0;
  uint32_t relays = 0;
};

// A transfer between two positions of one line (see LinePattern); streams are numbered per line.
struct LineTransfer {
  int32_t from = 0, to = 0;
  uint32_t stream = 0;
  uint32_t relays = 0;
};

// A step whose transfers all run along the lines of one region: rows for Axis::X (position i of
// row y is PE (x0 + i, y)), columns for Axis::Y. Line l carries templates[template_of_line[l]]
// (-1: the line is idle). Routes are X-first and a line's transfers stay on the line, so lines
// share no link and the step's loads are those of each line alone.
//   Example: a shift by one on the interleaved ring of P = 4 (physical 0 2 3 1) is one template
//   {0->2, 2->3, 3->1, 1->0} used by every line; a skew step that moves only some rows uses it
//   for those rows and -1 for the others.
struct LinePattern {
  Region region;
  Axis axis = Axis::X;
  std::vector<std::vector<LineTransfer>> templates;
  std::vector<int32_t> template_of_line;  // one entry per line of the region
};

class Fabric;

// A communication step prepared once and executed any number of times. Built by Fabric::plan
// from the step's transfers; keeps only what this rank needs, compiled to block indices. Holds its
// route entries while it is alive (configured at first execution) and releases them when
// destroyed.
class TransferPlan {
 public:
  TransferPlan();
  TransferPlan(TransferPlan&& o) noexcept;
  TransferPlan& operator=(TransferPlan&& o) noexcept;
  TransferPlan(const TransferPlan&) = delete;
  TransferPlan& operator=(const TransferPlan&) = delete;
  ~TransferPlan();

  size_t tile_bytes() const;
  const std::string& name() const;
  uint64_t max_hops() const;            // over every transfer of the step
  uint64_t max_latency_cycles() const;  // over every transfer of the step
  bool relay_mode() const;
  // Every PE of this rank that the step touches sends exactly one tile and receives exactly one.
  bool permutes() const;
  // Plans that carry the same key use the same routes (the same pattern with other payloads, e.g.
  // the allreduce of every projection of a layer on one region), or a subset of the first one's
  // (the later steps of a skew): while one of them holds its routes, the others add no route
  // entries. The caller guarantees that. Set before the first execution.
  void share_routes(std::string key);
  // Gives back the route entries now, as destroying the plan would, but keeps it for another
  // execution, which configures them again exactly as a freshly built plan would (a plan that fell
  // back to relays is rebuilt as first planned). For steps that recur with the same transfers.
  void release_routes();

  struct Compiled;  // defined in fabric.cpp

 private:
  friend class Fabric;
  Fabric* fabric_ = nullptr;
  std::unique_ptr<Compiled> c_;  // on the heap: its address stays put when the plan moves
};

// A raw view of per-PE tiles. Local PE (x, y) has index i = (y - local.y0) * local.w + (x - local.x0)
// and its tile starts at base + slot[i] * tile_bytes, or base + i * tile_bytes while the slot table
// is not in use (slot == nullptr, or *permuted false). The slot table lets an in-place step that
// permutes tiles among this rank's PEs (a ring shift, a skew) move indices instead of bytes; the
// fabric sets *permuted when it first does. tile_bytes is the host's; wafer_bytes what the tile is
// on the wafer, the bytes its plan charges (0: tile_bytes).
struct TileView {
  std::byte* base = nullptr;
  Region local;
  size_t tile_bytes = 0;
  uint32_t* slot = nullptr;
  bool* permuted = nullptr;
  size_t wafer_bytes = 0;
  size_t charged_bytes() const { return wafer_bytes ? wafer_bytes : tile_bytes; }
  size_t index(int32_t x, int32_t y) const { return size_t(y - local.y0) * size_t(local.w) + size_t(x - local.x0); }
  bool slotted() const { return slot && (!permuted || *permuted); }
  std::byte* at(int32_t x, int32_t y) const {
    const size_t i = index(x, y);
    return base + size_t(slotted() ? slot[i] : i) * tile_bytes;
  }
};

enum class Sync { wait, defer };  // defer: arrivals stay pending until wait_arrivals()
// Departure clocks of a step: the senders' clocks now, or as they were `cycles` earlier: a step
// posted before a compute task of that many cycles on every sender and carried out after it (its
// data moves in place once the compute has read the old tiles, while the virtual clock overlaps
// the two). The caller guarantees that every sender advanced by exactly `cycles` since.
struct Depart {
  uint64_t earlier_cycles = 0;
  static Depart now() { return {}; }
  static Depart before(uint64_t cycles) { return {cycles}; }
};

// A recorded run of a sequence of fabric operations confined to one region, which Fabric::replay
// applies again (collectives that recur every decoded token).
class ClockTape {
 private:
  friend class Fabric;
  friend class ClockTapes;
  Region region_, local_;  // the sequence's region; this rank's PEs of it
  // What is stored per local PE: every one (full), one row standing for all rows of the local part
  // (rows: every row recorded the same; lines along X), or one column (cols; lines along Y).
  enum class Shape { full, rows, cols } shape_ = Shape::full;
  std::vector<uint64_t> start_, end_, compute_;  // per stored PE: clock at the start, at the end; compute added
  std::vector<uint32_t> plans_;                  // every step executed, in order: its index in the sequence's plans
  std::vector<bool> relayed_;                    // and whether it went by software relays
  std::vector<TransferPlan::Compiled*> log_;     // while recording: the steps executed
  struct Ops {
    Region r;
    uint64_t each;
    Work w;
  };
  std::vector<Ops> ops_;  // every region-uniform operation count charged, in order
  bool valid_ = false;    // a complete recording
  bool uniform_start_ = false;  // every PE started at one clock
  bool uniform_end_ = false;    // every PE ended at one clock
  uint64_t max_end_ = 0;        // the latest clock at the end
  uint64_t serial_ = 0;         // this complete recording's number (unique in its fabric; 0 while none)
  bool broken_ = false;   // while recording: an operation a replay could not reproduce happened
  // Bytes of its per-PE records counted in the fabric's budget (an incomplete recording holds none).
  uint64_t held() const { return valid_ ? 3 * sizeof(uint64_t) * start_.size() : 0; }
  // Where local row `row` starts among the stored PEs (shapes full and rows; cols keeps one value per row).
  size_t row_start(int64_t row) const { return shape_ == Shape::rows ? 0 : size_t(row * local_.w); }
};

// The recordings of one sequence from up to kSlots start patterns, replaced in turn. Collective
// objects of one structure (the same plans on the same region, the same charges) share them
// (Fabric::shared_tapes): one object serves several call sites (the norms of every layer of a
// region), and the objects of every layer of a region start from the same patterns. A recording
// names the steps it ran by their index in the sequence's plans, so any object of the structure
// applies it to its own plans.
class ClockTapes {
 public:
  static constexpr size_t kSlots = 8;
  ~ClockTapes();
  ClockTapes(const ClockTapes&) = delete;
  ClockTapes& operator=(const ClockTapes&) = delete;

 private:
  friend class Fabric;
  explicit ClockTapes(Fabric* owner) : owner_(owner) {}
  Fabric* owner_;  // whose budget of recorded bytes the slots' records count in (it outlives them)
  ClockTape slot_[kSlots];
  size_t next_ = 0;       // the slot the next recording takes
  uint64_t misses_ = 0;   // runs since the last replay
};

class Fabric {
  friend class ClockTapes;

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

  // ---- clocks and counters of local PEs (x, y must be owned by this rank) ----
  // All counters of one PE, as of now.
  PeCounters pe(int32_t x, int32_t y) const;
  uint64_t clock_cycles(int32_t x, int32_t y) const { return clock_[owned_index(x, y)]; }
  uint64_t compute_cycles(int32_t x, int32_t y) const {
    const size_t i = owned_index(x, y);
    settle_compute();
    return compute_[i];
  }
  // The work of every PE this rank owns since construction, summed (energy). Local: a sum over the
  // ranks gives the mesh's. Running totals (a step adds its plan's per-execution figures), so this
  // costs no pass over the PEs.
  WorkCounts work_local() const;
  // The same over every rank: the whole mesh's work since construction. Collective.
  WorkCounts work() const;
  // Latest clock among this rank's PEs of `r` (0 when it owns none). Local.
  uint64_t max_clock_local(const Region& r) const;
  // Latest clock among the PEs of `r`, on every rank. Collective.
  uint64_t max_clock(const Region& r) const;
  // Highest peak SRAM bytes and peak route entries among this rank's PEs of `r`. Local.
  std::pair<uint64_t, uint64_t> peaks_local(const Region& r) const;
  // Changes whenever the peak SRAM or route entries of some local PE change (rise or reset), so a
  // caller may keep peaks_local(r) until it changes.
  uint64_t peaks_version() const { return peaks_version_; }
  // Charges `ops` operations of kind `w` (fp multiply-accumulates by default; cost_model.hpp) as
  // one task on local PE (x, y), at the kind's rate.
  void charge_compute(int32_t x, int32_t y, uint64_t ops, Work w = Work::fp);
  // Charges every PE of `r` one task of `ops_each`: each rank charges the PEs it owns, so every
  // rank calls it with the same arguments.
  void charge_compute(const Region& r, uint64_t ops_each, Work w = Work::fp);
  // Every PE of `r` adds `elems` elements folded into a stream (the adds of a streaming reduction):
  // CostModel::stream_add_cycles of compute with no task overhead, `elems` operations of kind `w`
  // (each rank its own PEs).
  void charge_stream_add(const Region& r, uint64_t elems, Work w);
  // Every PE of `r` waits `cycles` (stall), e.g. for the tail of a stream to arrive.
  void wait_cycles(const Region& r, uint64_t cycles);
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

  // ---- observing the PEs (traces) ----
  // f() runs on this rank after every operation that may change a local PE's clock, counters or
  // SRAM use (compute charges, steps, arrivals, clock changes, SRAM charges); empty: none. For
  // traces of a few PEs (noc/pe_trace.hpp); the engine's own work is unchanged.
  void set_observer(std::function<void()> f) { observer_ = std::move(f); }
  bool observed() const { return bool(observer_); }
  // What a trace of local PE (x, y) shows, as of now (counters of executed steps brought up to date).
  struct PeTimes {
    uint64_t clock_cycles = 0, compute_cycles = 0, inject_cycles = 0, sram_bytes = 0, bytes_sent = 0;
    friend bool operator==(const PeTimes&, const PeTimes&) = default;
  };
  PeTimes pe_times(int32_t x, int32_t y) const;
  // The highest SRAM use of any PE of `r` now. Every rank keeps every PE's use, so this is local
  // and the same on every rank.
  uint64_t sram_in_use_max(const Region& r) const;

  // ---- SRAM accounting (called by TileBuf) ----
  // Collective: every rank calls it with the same arguments (no communication: every rank keeps
  // the use of every PE). Throws LimitError on every rank when some PE of `r` would exceed
  // pe.sram_bytes, naming the first such PE (row-major), the need and the limit.
  void sram_acquire(const Region& r, uint64_t bytes_each, const std::string& what) {
    sram_acquire(r, bytes_each, [&what] { return what; });
  }
  // The same, with the need described by what() only when it does not fit (for frequent charges).
  template <class What>
    requires std::is_invocable_v<What>
  void sram_acquire(const Region& r, uint64_t bytes_each, What&& what) {
    if (!sram_try_acquire(r, bytes_each)) throw_sram(r, bytes_each, std::string(what()));
    observe();
  }
  void sram_release(const Region& r, uint64_t bytes_each);

  // ---- communication ----
  // Prepares a step of tiles that are `tile_bytes` on the wafer (TileBuf::bytes_per_pe; the host
  // may store them in more or fewer). `transfers` must be identical on every rank, or at least
  // contain every transfer that shares a link with a transfer that has an end on this rank (line
  // builders in line_plans.hpp pass only the lines crossing the rank's block).
  TransferPlan plan(std::vector<Transfer> transfers, size_t tile_bytes, std::string name);
  // Prepares a step along the lines of a region (the same on every rank). The plan equals the one
  // the transfer list of every line would give, built in time proportional to this rank's share.
  TransferPlan plan(LinePattern lines, size_t tile_bytes, std::string name);
  // Executes a step collectively: tile of src PE in `src` -> tile of dst PE in `dst`.
  // `src` and `dst` may be the same buffer: every tile is read before any is written.
  // `depart` says when the tiles left (see Depart).
  void execute(TransferPlan& plan, const TileView& src, const TileView& dst, Sync sync = Sync::wait,
               Depart depart = Depart::now());
  // Configures the plan's routes now (as its first execution would), checking them against the
  // route tables. Collective.
  void configure_routes(TransferPlan& plan);
  // Executes a step for its clocks and counters only: every figure exactly as execute() would set
  // it, but no tile bytes move (the caller produces the data the step would deliver by other
  // means, e.g. an exact integer reduction). Collective.
  void execute_timing(TransferPlan& plan, Sync sync = Sync::wait, Depart depart = Depart::now());
  // Executes a step with every figure exactly as execute() sets it, but moves only the tiles that
  // cross ranks (into their receivers' tiles of `dst`); a tile moving inside the rank stays where it
  // is, for a caller that reads it at its sender (a reduction adding each incoming tile where it
  // lies). Collective.
  void execute_remote(TransferPlan& plan, const TileView& src, const TileView& dst, Sync sync = Sync::wait,
                      Depart depart = Depart::now());
  // Moves the tiles crossing ranks as execute_remote() does, and changes nothing else: no clock,
  // counter or route entry. For a step whose figures a replay has applied (Fabric::replay); the
  // plan has run before and holds its routes (else std::logic_error). Collective.
  void execute_data(TransferPlan& plan, const TileView& src, const TileView& dst);
  // A plan kept under `key`, built by make() at the first request: for steps that recur with the
  // same transfers and tile size (the skew and shift steps of every MeshGEMM on one region).
  // Executing a kept plan is executing any plan; between uses it should hold no route entries, so
  // the caller gives them back (TransferPlan::release_routes) when its step is done, as destroying
  // a plan of its own would. The fabric keeps up to kKeptPlans plans (then forgets them all and
  // starts again); a plan lives on while a caller holds it.
  static constexpr size_t kKeptPlans = 4096;
  std::shared_ptr<TransferPlan> kept_plan(const std::string& key, const std::function<TransferPlan()>& make);
  // The ranks whose blocks share lines along `axis` (rows for X: the same Cartesian row), as a
  // communicator, created once. For exchanging per-rank partial results of whole lines.
  MPI_Comm line_comm(Axis axis);
  // The rank in line_comm(axis) of rank r of comm() (ranked by their blocks' position along axis).
  int line_rank(int r, Axis axis) const;

  // ---- replaying recorded sequences (collectives that recur) ----
  // Clock arithmetic is max-plus (a step's arrival is a sender's clock plus a latency, a receiver
  // takes the max, a charge adds): a sequence of steps and charges confined to a region, started
  // from clocks s_i + c for any constant c, ends at e_i + c, and adds compute cycles, route use and
  // counters that do not depend on c. So a sequence that starts again from a recorded start pattern
  // (shifted by any constant) is applied from its recording: every clock, compute cycle, counter
  // and operation count exactly as running it again would set them.
  // Collective. Applies a recording of `tapes` and returns true when emu.replay_timing is on, a
  // tape holds a complete recording over r, every PE of r has its recorded start clock plus one
  // constant (the same on every rank), no arrivals wait (Sync::defer), nothing observes the
  // fabric, no latency is injected in real time, and every plan went to software relays where the
  // recorded ones did (the plans configure their routes first, as their first executions would).
  // Returns false otherwise: the caller then runs the sequence inside a Recording of the tapes.
  // `plans`: every plan the sequence may execute, in an order fixed by the sequence's structure.
  bool replay(ClockTapes& tapes, const Region& r, const std::vector<TransferPlan*>& plans);
  // The tapes of the sequences of one structure, named by `key` (everything that determines the
  // sequence's operations: algorithm, region, axis, tile size, element type). Kept while some
  // caller holds them.
  std::shared_ptr<ClockTapes> shared_tapes(const std::string& key);
  // Sequences applied by replay() since construction (an emulation figure, for tests and benches).
  uint64_t replays() const { return replays_; }
  // Replay checks answered by comparing two recordings (the clocks known as one's end plus an
  // offset; KnownClocks) instead of the clocks PE by PE (for tests).
  uint64_t recording_comparisons() const { return recording_comparisons_; }
  // Records the operations of its lifetime into a slot of `tapes` (replacing what it held). A
  // recording is complete unless an operation happened that a replay could not reproduce: a step
  // that defers its arrivals or touches PEs outside r, a charge outside r, a per-PE charge, a clock
  // raised to an absolute time, an SRAM charge or a new peak window, or an exception. Recording
  // costs a few passes over the region's PEs: after every slot has been filled without a replay
  // since, only every 32nd run is recorded (a sequence whose start differs every time, such as
  // attention's over a growing cache). Not nested.
  class Recording {
   public:
    Recording(Fabric& f, ClockTapes& tapes, const Region& r, const std::vector<TransferPlan*>& plans);
    ~Recording();
    Recording(const Recording&) = delete;
    Recording& operator=(const Recording&) = delete;

   private:
    Fabric& f_;
    ClockTape* t_ = nullptr;  // nullptr: not recording this time
    const std::vector<TransferPlan*>& plans_;
    int exceptions_;
  };

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
  // summarize(r)'s latest clock, peak SRAM and peak route entries only, without bringing the
  // counters that only reports read up to date (once per decoded token, that costs a pass over
  // every plan the token ran). Collective.
  struct ClockPeaks {
    uint64_t max_clock_cycles = 0, max_sram_peak_bytes = 0, max_route_peak_entries = 0;
  };
  ClockPeaks clock_and_peaks(const Region& r) const;
  // This rank's part of summarize(r): its figures over r ∩ its block (all 0 when that is empty).
  // Local: reducing it by max (the six maxima) and sum (the two totals) over the ranks gives
  // summarize(r) as it stood at this call.
  Summary summarize_local(const Region& r) const;

 private:
  friend class TransferPlan;
  using Compiled = TransferPlan::Compiled;
  size_t local_index(int32_t x, int32_t y) const {
    return size_t(y - block_.y0) * size_t(block_.w) + size_t(x - block_.x0);
  }
  // The largest value of a per-PE array (`base`: its first local PE) over l, a part of block_.
  template <class T>
  T max_local(const T* base, const Region& l) const {
    T mx = 0;
    for (int32_t y = l.y0; y < l.y0 + l.h; ++y) {
      const T* row = base + local_index(l.x0, y);
      for (int32_t x = 0; x < l.w; ++x) mx = row[x] > mx ? row[x] : mx;
    }
    return mx;
  }
  size_t owned_index(int32_t x, int32_t y) const {
#if WM_CHECK_OWNERSHIP
    check_owned(x, y);
#endif
    return local_index(x, y);
  }
  [[noreturn]] void fail_unowned(int32_t x, int32_t y) const;
  void check_owned(int32_t x, int32_t y) const {
    if (!block_.contains(x, y)) fail_unowned(x, y);
  }
  void charge_index(size_t i, uint64_t ops, Work w) {
    tape_break();
    known_clocks_.valid = false;
    const uint64_t cyc = cost_.compute_cycles(ops, w);
    clock_[i] += cyc;
    compute_[i] += cyc;
    ops_[i].of(w) += ops;
    work_.ops.of(w) += ops;
  }
  // Region-uniform work (charge_compute(r, ...), charge_stream_add): kept per region as one set of
  // counts until a reader needs the per-PE figures (as SRAM charges are).
  void add_region_ops(const Region& r, uint64_t ops_each, Work w);
  void settle_region_ops() const;
  void clear_items(Compiled& c, bool relay_mode);
  void build_generic(Compiled& c, bool relay_mode);
  void build_lines(Compiled& c, bool relay_mode);
  void finish_build(Compiled& c);
  // The PE a directed link enters.
  PeCoord link_head(uint64_t link) const {
    const PeCoord co = mesh_.coord(int64_t(link / 4));
    switch (int(link % 4)) {
      case kLinkEast: return {co.x + 1, co.y};
      case kLinkWest: return {co.x - 1, co.y};
      case kLinkSouth: return {co.x, co.y + 1};
      default: return {co.x, co.y - 1};
    }
  }
  // Throws when the plan is another fabric's or was built for another tile size than the views'.
  void check_views(const TransferPlan& p, const TileView& src, const TileView& dst) const;
  // local_moves: copy the tiles moving inside the rank (else only those crossing ranks move).
  // clocks false: the data only (execute_data).
  void run(TransferPlan& p, const TileView* src, const TileView* dst, Sync sync, Depart depart,
           bool local_moves = true, bool clocks = true);
  void activate_routes(TransferPlan& p);
  void release_routes(Compiled& c);
  void rebuild(Compiled& c, bool relay_mode);
  // Adds the pending execution counts of plans to the per-PE counters read by reports.
  void flush_counters() const;
  void flush_plan(Compiled& c) const;
  void forget_plan(Compiled& c);
  void spill_deferred(Compiled& c);
  // Every message of `execs` executions of c is taken in: noc.receive_cycles each on its receiver
  // (of the moves inside the rank only when `moves`: Fabric::run may have taken those in already).
  void take_in(const Compiled& c, uint64_t execs, bool moves = true);
  // noc.receive_cycles, or 0 for a streamed stage (its beta covers the core's work).
  uint64_t receive_task_cycles(const Compiled& c) const;
  // SRAM accounting (fabric_sram.cpp). Charges are region-uniform, so a region charged again and
  // again keeps its charges pending, as one number, until a charge of another region overlapping
  // it or a reader of per-PE figures needs them in the per-PE arrays.
  struct SramRegion {
    Region r;
    int64_t pending = 0, max_pending = 0;  // bytes charged to every PE of r since it was taken up; their maximum
    uint64_t max_use = 0;                  // the highest use of a PE of r, pending included (every PE of r)
    uint64_t base_local = 0;               // this rank's PEs of r: the highest use when r was taken up
    uint64_t peak_local = 0;               // this rank's PEs of r: the highest peak, pending included
  };
  mutable std::vector<SramRegion> sram_regions_;
  bool sram_try_acquire(const Region& r, uint64_t bytes_each);  // false (nothing charged) if a PE would overflow
  [[noreturn]] void throw_sram(const Region& r, uint64_t bytes_each, const std::string& what) const;
  SramRegion& sram_region(const Region& r);  // r taken up (others overlapping it settled first)
  void sram_settle(const SramRegion& t) const;
  void sram_settle_all() const;
  uint64_t sram_peak_local(const Region& r) const;
  [[noreturn]] void throw_limit_collective(int64_t bad_pe, uint64_t need_local, const std::string& what,
                                           const std::string& limit_text);

  MachineParams params_;
  CostModel cost_;
  MeshShape mesh_;
  CartComm cart_;
  Region block_;
  // The per-PE arrays sit on huge pages once they reach 2 MiB: a step touches one row of a region
  // every block_.w PEs, so on 4 KiB pages nearly every row costs a TLB miss. They live as long as
  // the fabric, so never in an arena.
  template <class T>
  struct PeArray : std::vector<T, kernels::AlignedAllocator<T>> {
    PeArray() : std::vector<T, kernels::AlignedAllocator<T>>(kernels::AlignedAllocator<T>(kernels::no_arena)) {}
  };
  // Local PEs, row-major over block_. Stall cycles are clock - compute - injection.
  PeArray<uint64_t> clock_;
  mutable PeArray<uint64_t> compute_;  // (mutable: readers add the pending compute first)
  // Compute cycles that replays added and compute_ does not hold yet: one row that every row of
  // `local` adds (rows), or one value per row (cols). Compute cycles only ever add up, so they wait
  // until something reads compute_ (settle_compute()); a replay then writes only the clocks.
  struct PendingCompute {
    Region local;
    bool rows = true;
    std::vector<uint64_t> add;
  };
  mutable std::vector<PendingCompute> pending_compute_;
  // Local PEs whose latest clock is known, and whether all of them are at it (barrier_clocks sets
  // it, uniform; a replay sets it from its recording's end; every other write of clocks keeps it
  // only when it adds one amount to exactly these PEs), so that a replay from a uniform start needs
  // no pass over them to check it, and the latest clock of these PEs none to find it.
  // A replay of a recording stored PE by PE (shape full) also leaves which recording: the clocks of
  // `local` are then its end plus `offset` (every amount added to exactly these PEs since adds to
  // the offset), so that the next replay's check compares two recordings, once per pair
  // (tape_relation), instead of the clocks PE by PE.
  struct KnownClocks {
    Region local;
    uint64_t clock = 0;    // the latest clock of `local`
    bool uniform = false;  // every PE of `local` is at it
    bool valid = false;
    const ClockTape* tape = nullptr;  // the clocks are tape->end_ + offset while tape->serial_ == serial
    uint64_t serial = 0, offset = 0;
  } known_clocks_;
  // The clocks of the local PEs l all advanced by c.
  void clocks_added(const Region& l, uint64_t c) {
    if (!known_clocks_.valid || l.intersect(known_clocks_.local).empty()) return;
    if (l == known_clocks_.local) {
      known_clocks_.clock += c;
      known_clocks_.offset += c;
    } else {
      known_clocks_.valid = false;
    }
  }
  // Whether one constant d has end_[i] - start_[i] == d (mod 2^64) for every stored PE of `from`'s
  // end and `to`'s start (both full, over the same local PEs), and d: computed at the first call for
  // a pair of recordings, then remembered by their serial numbers (recordings never change once
  // complete; a re-recorded slot gets a new number).
  std::pair<bool, uint64_t> tape_relation(const ClockTape& from, const ClockTape& to) const;
  struct TapeRelation {
    uint64_t from = 0, to = 0;  // serial numbers (0: an empty entry)
    bool same = false;
    uint64_t d = 0;
  };
  static constexpr size_t kTapeRelations = 1024;  // remembered pairs (direct-mapped)
  mutable std::vector<TapeRelation> tape_relations_ = std::vector<TapeRelation>(kTapeRelations);
  uint64_t tape_serial_ = 0;  // the last serial number given to a recording
  void settle_compute() const {
    if (!pending_compute_.empty()) settle_compute_now();
  }
  void settle_compute_now() const;
  static constexpr size_t kPendingCompute = 16;  // patterns pending at once (then all are added)
  // What a replay of t adds to compute_ (pending when t keeps one row or column).
  void add_compute(const ClockTape& t);
  // What only reports read, brought up to date by flush_counters(); one record per PE, so adding a
  // step's counts touches one place per PE.
  struct Traffic {
    uint64_t inject_cycles = 0, bytes_sent = 0, bytes_received = 0, messages_sent = 0, byte_hops = 0;
  };
  mutable PeArray<Traffic> traffic_;
  // The longest hop count each PE sent in the current peak window: an array of its own, so that a
  // new window (reset_peaks) clears 4 bytes per PE rather than a line of traffic counters.
  mutable PeArray<uint32_t> max_hops_;
  mutable PeArray<OpCounts> ops_;  // per-PE work of the energy model (PeCounters::ops)
  struct OpsRegion {
    Region local;  // r ∩ block
    OpCounts each;
  };
  mutable std::vector<OpsRegion> ops_regions_;
  static constexpr size_t kOpsSlots = 8192;  // a power of two; at most half of them used
  mutable std::vector<int32_t> ops_slot_;    // (kOpsSlots): index into ops_regions_, or -1
  mutable WorkCounts work_;  // running totals of this rank's PEs
  struct Routes {
    uint32_t now = 0, peak = 0;  // route entries configured, and their peak
  };
  PeArray<Routes> routes_;
  mutable PeArray<uint32_t> sram_peak_;
  std::vector<Compiled*> deferred_plans_;  // plans whose arrivals wait for wait_arrivals()
  // Arrivals of deferred plans that changed or vanished before wait_arrivals(), per local PE.
  PeArray<uint64_t> pending_;
  PeArray<uint32_t> pending_msgs_;       // and the messages they bring (for noc.receive_cycles)
  std::vector<uint32_t> pending_list_;   // local PEs that may have such an arrival
  mutable std::vector<Compiled*> dirty_;  // plans executed since their counts were last added
  // Scratch for the transfer-list plan builder (per directed link of the mesh, allocated at the
  // first such plan; per local PE).
  std::vector<uint32_t> link_load_, link_stream_, link_pmax_, link_pmax_tag_;
  PeArray<uint32_t> pe_stream_, pe_routes_, pe_mark_;
  std::vector<int> peer_slot_;           // rank -> index into a plan's peers while building (-1 none)
  // Scratch for execution, reused every step.
  std::vector<uint64_t> arrivals_;
  std::vector<std::byte> staging_;
  std::vector<uint32_t> moved_slots_, freed_slots_;
  std::vector<std::vector<std::byte>> rbuf_, sbuf_;  // per-peer message buffers
  std::vector<MPI_Request> reqs_;
  uint64_t mpi_messages_sent_ = 0, mpi_bytes_sent_ = 0;
  mutable PeArray<uint32_t> sram_all_;   // SRAM bytes in use on every PE of the mesh (replicated; see sram_regions_)
  struct SharedRoutes {                  // routes held for plans with one share_routes() key
    int users = 0;
    std::vector<std::pair<uint32_t, uint32_t>> routes;  // (local PE, entries)
  };
  std::map<std::string, SharedRoutes> shared_routes_;
  std::function<void()> observer_;
  std::map<std::string, std::shared_ptr<TransferPlan>> kept_plans_;  // released first (~Fabric)
  // The recording in progress (Recording), or nullptr.
  ClockTape* tape_ = nullptr;
  // Whether the PEs of t's region on this rank are at t's start clocks plus one constant, and which.
  bool tape_matches(const ClockTape& t, const Region& r, const std::vector<TransferPlan*>& plans,
                    int64_t* shift) const;
  std::map<std::string, std::weak_ptr<ClockTapes>> shared_tapes_;
  // Bytes of per-PE records all recordings hold, and the most they may (a recording that would
  // exceed it is dropped: its sequence then runs every step, with the same figures).
  uint64_t tape_bytes_ = 0;
  static constexpr uint64_t kTapeBudget = uint64_t(256) << 20;
  uint64_t replays_ = 0;
  mutable uint64_t recording_comparisons_ = 0;
  void tape_break() {
    if (tape_) tape_->broken_ = true;
  }
  // A step or charge on region r during a recording: kept if r lies inside the tape's region.
  bool tape_covers(const Region& r) const { return r.intersect(tape_->region_) == r; }
  // What an execution of c adds to the counters that only reports read (Fabric::run, replay).
  void count_execution(Compiled& c);
  void observe() const {
    if (observer_) observer_();
  }
  bool peaks_held_ = false;
  uint64_t peaks_version_ = 0;
  MpiComm line_comm_[2];  // along X, along Y; made at first use
  // summarize(): its eight figures as one MPI element, reduced by max (six) and sum (two) in one
  // collective; the decode path asks for a summary after every phase of every layer.
  MpiDatatype summary_type_;
  MpiOp summary_op_;
};

}  // namespace wm
