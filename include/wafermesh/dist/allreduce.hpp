#pragma once
// Allreduce along the lines of a region (rows for Axis::X, columns for Axis::Y), as a reusable
// collective with three algorithms (DESIGN.md §4):
//
//   pipeline  a chain from the far end into position 0 (one reduction stage per hop), then a
//             multicast back along the line: ~2P hops, P-1 relay stages.
//   ring      reduce-scatter then allgather around the interleaved ring (two-hop steps): chunk c
//             starts at logical PE c and is added PE by PE around the ring; 2(P-1) steps, each a
//             relay stage.
//   ktree     K levels. Level 1 cuts the line into groups of consecutive PEs; each group reduces into
//             its middle PE by two chains from its ends. Each further level does the same with the
//             previous level's roots as members, over pass-through routes (hops only between them,
//             one stage at each receiving root). The top level has one group; its root multicasts
//             the result back along the line. K = 2 with about sqrt(P) groups by default: about P
//             hops and K * P^(1/K) / 2 relay stages, O(K) route entries per PE.
//             Example, P = 9, K = 2, 3 groups: level 1 groups {0,1,2} {3,4,5} {6,7,8} reduce into
//             1, 4, 7 (chains 0->1<-2 ...); level 2 reduces 1 -> 4 <- 7 (3 hops each); 4 multicasts.
//
// Summation order is fixed by positions on the line (receiver adds incoming + own, chains as in
// reduce() of primitives.hpp), never by ranks: fp32 results are bit-identical for every rank count.
// Every pattern an algorithm uses stays configured while the object lives, so route entries per PE
// are what the algorithm needs at once, checked against noc.route_entries. Allreduces of the same
// algorithm on the same lines use the same routes whatever their tile size, so they share them
// (TransferPlan::share_routes): the ten allreduces of a transformer layer configure one set. The
// scratch tiles (incoming partials) take SRAM only while run() executes.
#include <mpi.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <vector>

#include "wafermesh/noc/primitives.hpp"
#include "wafermesh/noc/wafer_data.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::dist {

enum class AllreduceAlgo { pipeline, ring, ktree };

// An element whose "sum" is the maximum: LineAllreduce<MaxFloat> is a max-allreduce (softmax
// maxima, absmax scales). max is exact, so its order does not matter.
struct MaxFloat {
  float v;
  friend MaxFloat operator+(MaxFloat a, MaxFloat b) { return {a.v < b.v ? b.v : a.v}; }
};
}  // namespace wm::dist
namespace wm {
template <>
struct WaferFp<dist::MaxFloat> : std::true_type {};  // a float on the wafer, at wafer.dtype
}  // namespace wm
namespace wm::dist {
AllreduceAlgo allreduce_algo_from_name(const std::string& name);  // UsageError listing the names
const char* allreduce_algo_name(AllreduceAlgo a);

struct AllreduceSpec {
  AllreduceAlgo algo = AllreduceAlgo::ktree;
  int levels = 2;         // ktree: K
  int groups = 0;         // ktree, K = 2: groups of level 1 (0 = round(sqrt(P)))
  bool broadcast = true;  // leave the sum on every PE of the line (else only on the root)
};

// Structural figures of one allreduce: the steps run one after another, so the critical path
// crosses the longest transfer of every step.
struct AllreduceStats {
  uint64_t steps = 0;
  uint64_t critical_hops = 0;    // sum over steps of the longest hop count in the step
  uint64_t critical_stages = 0;  // sum over steps of relay stages (1 for a reducing step)
  int32_t root = 0;              // line position holding the result when !broadcast
};

// Member groups of one ktree level: members (line positions, ascending) cut into `groups`
// consecutive groups as even as possible (first ones one larger); root = middle member.
struct TreeGroup {
  std::vector<int32_t> members;
  size_t root = 0;  // index into members
};
std::vector<std::vector<TreeGroup>> ktree_levels(int32_t P, int levels, int groups);

// An allreduce prepared once for a region, an axis and a tile size, run any number of times (a
// decode step runs the same reductions for every token). Construction builds every plan and the
// scratch tiles; their SRAM and route entries stay held while the object lives. Collective.
template <class T>
class LineAllreduce {
 public:
  LineAllreduce(Fabric& f, const Region& r, Axis axis, size_t elems, const AllreduceSpec& spec)
      : f_(f), r_(r), axis_(axis), elems_(elems), spec_(spec), P_(line_length(r, axis)) {
    if (P_ <= 1) return;
    if (spec.algo == AllreduceAlgo::ring) {
      build_ring();
      plans_.push_back(&ring_);
    } else {
      build_tree();
      for (Level& lv : levels_)
        for (Step& st : lv.steps)
          for (Side& sd : st.sides) plans_.push_back(&sd.plan);
      if (has_bcast_) {
        plans_.push_back(&bcast_);
        f.line_comm(axis_);  // for replayed broadcasts (bcast_heads), made now: collective
      }
    }
    // Every allreduce of this structure runs the same operations: they share their recordings.
    tapes_ = f.shared_tapes(tape_key());
  }

  // Sums the tiles of every line of buf (whose region and tile size must match). A tree or chain
  // that starts from the clocks an earlier run started from (shifted by a constant) takes its
  // figures from that run's recording (Fabric::replay) and moves and adds the data step by step as
  // always. Collective.
  AllreduceStats run(TileBuf<T>& buf) {
    if (!(buf.region() == r_) || buf.elems() != elems_) throw std::logic_error("allreduce: buffer does not match");
    if (P_ <= 1) return stats_;
    // The scratch tiles exist on the PEs while the reduction runs.
    SramCharge scratch(f_, r_, scratch_bytes_, "allreduce scratch");
    if (spec_.algo == AllreduceAlgo::ring) {
      run_ring<true>(&buf);  // (charged PE by PE: not replayed)
    } else if (f_.replay(*tapes_, r_, plans_)) {
      run_tree<true, false>(&buf);
    } else {
      Fabric::Recording rec(f_, *tapes_, r_, plans_);
      run_tree<true, true>(&buf);
    }
    return stats_;
  }
  // The same steps for their clocks, counters, SRAM and routes only: every figure exactly as run()
  // sets it, no data moved or added. For callers that produce the result exactly by other means
  // (an integer sum of per-rank partials: any order gives the same integers). A run that starts
  // from the clocks an earlier one started from (shifted by a constant: a GEMV's allreduce starts
  // after a barrier and a uniform compute task) applies that run's recording (Fabric::replay).
  // With lead_ops > 0, every PE of the region first runs one compute task of lead_ops operations
  // of kind lead_work (Fabric::charge_compute; the GEMV's block products), inside the recording:
  // a replay then applies the task and the reduction in one pass. Collective.
  AllreduceStats run_timing(uint64_t lead_ops = 0, Work lead_work = Work::fp) {
    if (P_ <= 1) {
      if (lead_ops > 0) f_.charge_compute(r_, lead_ops, lead_work);
      return stats_;
    }
    auto steps = [&] {
      if (spec_.algo == AllreduceAlgo::ring) run_ring<false>(nullptr);
      else run_tree<false, true>(nullptr);
    };
    if (lead_ops > 0 && f_.observed()) {  // a trace sees the task before the scratch: no recording
      f_.charge_compute(r_, lead_ops, lead_work);
      SramCharge scratch(f_, r_, scratch_bytes_, "allreduce scratch");
      steps();
      return stats_;
    }
    SramCharge scratch(f_, r_, scratch_bytes_, "allreduce scratch");
    ClockTapes& tapes = lead_ops > 0 ? lead_tapes(lead_ops, lead_work) : *tapes_;
    if (f_.replay(tapes, r_, plans_)) return stats_;
    Fabric::Recording rec(f_, tapes, r_, plans_);
    if (lead_ops > 0) f_.charge_compute(r_, lead_ops, lead_work);
    steps();
    return stats_;
  }

 private:
  struct Add {  // the PEs at line position `to` add the tile of those at `from`
    int32_t from, to;
  };
  struct Side {         // one chain step on one side of every group
    TransferPlan plan;
    std::vector<Add> adders;  // receivers that add at once (roots add at the end)
  };
  struct Step {
    std::vector<Side> sides;  // left and/or right
  };
  struct Level {
    std::vector<Step> steps;
    std::vector<Add> roots_left, roots_right;  // roots that received from that side, and from whom
    std::vector<int32_t> roots;                // roots that received at all
  };

  // What determines the routes: algorithm, shape of the tree, region, axis.
  std::string route_key() const {
    return std::string("allreduce ") + allreduce_algo_name(spec_.algo) + " K" + std::to_string(spec_.levels) + " g" +
           std::to_string(spec_.groups) + (axis_ == Axis::X ? " X " : " Y ") + r_.str();
  }
  // What determines a run's operations: the routes, the tile, the element type, the broadcast.
  std::string tape_key() const {
    return route_key() + " E" + std::to_string(elems_) + " " + typeid(T).name() + (spec_.broadcast ? " broadcast" : "");
  }
  // The recordings of run_timing(ops, w): another sequence, shared by the allreduces of this
  // structure that lead with the same task.
  ClockTapes& lead_tapes(uint64_t ops, Work w) {
    if (!lead_tapes_ || lead_ops_ != ops || lead_work_ != w) {
      lead_tapes_ = f_.shared_tapes(tape_key() + " after " + std::to_string(ops) + " ops of kind " +
                                    std::to_string(int(w)));
      lead_ops_ = ops;
      lead_work_ = w;
    }
    return *lead_tapes_;
  }

  void build_tree() {
    std::vector<std::vector<TreeGroup>> levels;
    if (spec_.algo == AllreduceAlgo::pipeline) {
      TreeGroup g;
      for (int32_t i = 0; i < P_; ++i) g.members.push_back(i);
      g.root = 0;
      levels.push_back({g});
    } else {
      levels = ktree_levels(P_, spec_.levels, spec_.groups);
    }
    in_left_ = std::make_unique<TileBuf<T>>(f_, r_, elems_, "allreduce: from the left", typename TileBuf<T>::Uncharged{});
    in_right_ = std::make_unique<TileBuf<T>>(f_, r_, elems_, "allreduce: from the right", typename TileBuf<T>::Uncharged{});
    scratch_bytes_ = 2 * in_left_->bytes_per_pe();
    const size_t tb = in_left_->bytes_per_pe();
    for (const auto& groups : levels) {
      Level lv;
      size_t steps = 0;
      for (const TreeGroup& g : groups) steps = std::max({steps, g.root, g.members.size() - 1 - g.root});
      for (size_t s = 0; s < steps; ++s) {
        Step st;
        uint64_t step_hops = 0;
        for (int side = 0; side < 2; ++side) {
          std::vector<LineTransfer> t;  // the same on every line
          Side sd;
          uint64_t hops = 0;
          for (const TreeGroup& g : groups) {
            const size_t n = g.members.size();
            if (side == 0 ? s >= g.root : s >= n - 1 - g.root) continue;
            const int32_t from = side == 0 ? g.members[s] : g.members[n - 1 - s];
            const int32_t to = side == 0 ? g.members[s + 1] : g.members[n - 2 - s];
            hops = std::max<uint64_t>(hops, uint64_t(std::abs(to - from)));
            if (to != g.members[g.root]) sd.adders.push_back({from, to});
            t.push_back({from, to, uint32_t(t.size()), 1});
          }
          if (hops == 0) continue;
          LinePattern lp{r_, axis_, {std::move(t)}, std::vector<int32_t>(size_t(line_count(r_, axis_)), 0)};
          sd.plan = f_.plan(std::move(lp), tb,
                            "allreduce chain step " + std::to_string(s) + (side ? " (right)" : " (left)") + " on " +
                                r_.str());
          sd.plan.share_routes(route_key() + " level " + std::to_string(levels_.size()) + " step " +
                               std::to_string(s) + " side " + std::to_string(side));
          step_hops = std::max(step_hops, hops);
          st.sides.push_back(std::move(sd));
          side_of_.push_back(side);
        }
        stats_.steps += 1;
        stats_.critical_hops += step_hops;
        stats_.critical_stages += 1;
        lv.steps.push_back(std::move(st));
      }
      for (const TreeGroup& g : groups) {
        if (g.root > 0) lv.roots_left.push_back({g.members[g.root - 1], g.members[g.root]});
        if (g.root + 1 < g.members.size()) lv.roots_right.push_back({g.members[g.root + 1], g.members[g.root]});
        if (g.members.size() > 1) lv.roots.push_back(g.members[g.root]);
      }
      levels_.push_back(std::move(lv));
    }
    const TreeGroup& top = levels.back().front();
    stats_.root = top.members[top.root];
    if (spec_.broadcast) {
      bcast_ = plan_broadcast(f_, r_, axis_, stats_.root, tb);
      bcast_.share_routes(route_key() + " broadcast");
      has_bcast_ = true;
      stats_.steps += 1;
      stats_.critical_hops += uint64_t(std::max(stats_.root, P_ - 1 - stats_.root));
    }
  }

  // Every PE at line position a.to adds the tile its line's PE at a.from sent it: read where it
  // lies when the sender is on this rank (the step moved only the tiles crossing ranks, into `in`),
  // else from `in`. buf == nullptr: charge only (run_timing); charge false: add only (replayed).
  void add_into(TileBuf<T>* buf, const TileBuf<T>& in, Add a, bool charge) {
    const Region strip = line_strip(a.to);
    const Region mine = strip.intersect(f_.block());
    if (buf && !mine.empty()) {
      const Region from = line_strip(a.from).intersect(f_.block());
      const bool here = !from.empty();  // the sender's strip is on this rank (blocks are rectangles)
      const int32_t dx = axis_ == Axis::X ? a.from - a.to : 0, dy = axis_ == Axis::Y ? a.from - a.to : 0;
      const TileView bv = buf->view(), iv = in.view();
      const TileView& sv = here ? bv : iv;
      const size_t E = elems_;
      // The strip's tiles, one line after another: PEs (x0, y0 + i) or (x0 + i, y0).
      const int64_t n = int64_t(axis_ == Axis::X ? mine.h : mine.w);
      if (!bv.slotted() && !sv.slotted()) {  // tiles in PE order: a fixed step from PE to PE
        const int64_t step = axis_ == Axis::X ? int64_t(bv.local.w) * int64_t(E) : int64_t(E);
        const int64_t sstep = axis_ == Axis::X ? int64_t(sv.local.w) * int64_t(E) : int64_t(E);
        T* b = reinterpret_cast<T*>(bv.at(mine.x0, mine.y0));
        const T* s = reinterpret_cast<const T*>(here ? sv.at(mine.x0 + dx, mine.y0 + dy) : sv.at(mine.x0, mine.y0));
        for (int64_t i = 0; i < n; ++i, b += step, s += sstep)
          for (size_t k = 0; k < E; ++k) b[k] = s[k] + b[k];
      } else {
        for (int32_t y = mine.y0; y < mine.y0 + mine.h; ++y)
          for (int32_t x = mine.x0; x < mine.x0 + mine.w; ++x) {
            const T* s = reinterpret_cast<const T*>(here ? sv.at(x + dx, y + dy) : sv.at(x, y));
            T* b = reinterpret_cast<T*>(bv.at(x, y));
            for (size_t k = 0; k < E; ++k) b[k] = s[k] + b[k];
          }
      }
    }
    if (!charge) return;
    if (f_.cost().stream_reductions) f_.charge_stream_add(strip, elems_, work_of<T>());
    else f_.charge_compute(strip, elems_, work_of<T>());
  }
  // The PEs at position `pos` of every line.
  Region line_strip(int32_t pos) const {
    return axis_ == Axis::X ? Region{r_.x0 + pos, r_.y0, 1, r_.h} : Region{r_.x0, r_.y0 + pos, r_.w, 1};
  }

  // Data: move and add the tiles; Clocks: charge the figures (else a replay has applied them).
  template <bool Data, bool Clocks>
  void run_tree(TileBuf<T>* buf) {
    size_t si = 0;
    for (Level& lv : levels_) {
      for (Step& st : lv.steps)
        for (Side& sd : st.sides) {
          TileBuf<T>& in = side_of_[si++] == 0 ? *in_left_ : *in_right_;
          if constexpr (Data && Clocks) f_.execute_remote(sd.plan, buf->view(), in.view());
          else if constexpr (Data) f_.execute_data(sd.plan, buf->view(), in.view());
          else f_.execute_timing(sd.plan);
          for (const Add& a : sd.adders) add_into(buf, in, a, Clocks);
        }
      // Roots: (left + own), then right + that. A sender keeps its tile unchanged for the rest of
      // the level once it has sent, so the root reads the same tile the chain step delivered.
      for (const Add& a : lv.roots_left) add_into(buf, *in_left_, a, Clocks);
      for (const Add& a : lv.roots_right) add_into(buf, *in_right_, a, Clocks);
      // Streaming chains: each root waits for its streams' tail once, after the level.
      if (Clocks && f_.cost().stream_reductions) {
        const uint64_t tail = f_.cost().wire_cycles(in_left_->bytes_per_pe());
        for (int32_t pos : lv.roots) f_.wait_cycles(line_strip(pos), tail);
      }
    }
    if (has_bcast_) {
      if constexpr (Data) broadcast(*buf, Clocks);
      else f_.execute_timing(bcast_);
    }
  }
  // The root's tile to every PE of its line. On the root's rank the line's head takes a copy and
  // stands for the line's PEs (TileBuf::for_each_line_head); the other ranks receive theirs (the
  // step moves the tiles crossing ranks, or, when a replay has applied the step's figures, the
  // root's rank sends each line's tile once to the ranks sharing the line, where it too goes to
  // the line's head: bcast_heads).
  void broadcast(TileBuf<T>& buf, bool clocks) {
    if (!clocks) {
      bcast_heads(buf);
      return;
    }
    f_.execute_remote(bcast_, buf.view(), buf.view());
    const Region root = line_strip(stats_.root).intersect(f_.block());
    if (root.empty()) return;  // (the root's strip lies in the buffer's local part)
    const TileBuf<T>& cb = buf;
    buf.for_each_line_head(axis_, [&](int32_t x, int32_t y, T* head) {
      const T* s = axis_ == Axis::X ? cb.tile(root.x0, y) : cb.tile(x, root.y0);
      if (s != head) std::copy(s, s + elems_, head);
    });
  }
  // The broadcast's data alone: the ranks whose blocks share lines (Fabric::line_comm: the same
  // lines of r_ on each) receive the root's tile of each of those lines in one MPI_Bcast from the
  // rank holding the root's strip, and every rank puts it at its lines' heads.
  void bcast_heads(TileBuf<T>& buf) {
    MPI_Comm lc = f_.line_comm(axis_);  // (made at the first call: collective, so before any return)
    const Region& b = f_.block();
    const bool ax = axis_ == Axis::X;
    // The lines of r_ crossing this rank's row (X) or column (Y) of blocks.
    const int32_t lo = ax ? std::max(b.y0, r_.y0) : std::max(b.x0, r_.x0);
    const int32_t hi = ax ? std::min(b.y0 + b.h, r_.y0 + r_.h) : std::min(b.x0 + b.w, r_.x0 + r_.w);
    if (hi <= lo) return;  // (the same for every rank sharing these lines)
    const size_t lines = size_t(hi - lo);
    const PeCoord rp = line_pe(r_, axis_, ax ? lo - r_.y0 : lo - r_.x0, stats_.root);
    const int owner = f_.decomposition().owner(rp.x, rp.y);
    std::vector<T>& vals = bcast_vals_;  // (kept from call to call: no page faults on the decode path)
    vals.resize(lines * elems_);
    const TileBuf<T>& cb = buf;
    if (owner == f_.rank())
      for (size_t k = 0; k < lines; ++k) {
        const PeCoord c = line_pe(r_, axis_, (ax ? lo - r_.y0 : lo - r_.x0) + int32_t(k), stats_.root);
        std::copy(cb.tile(c.x, c.y), cb.tile(c.x, c.y) + elems_, vals.begin() + int64_t(k * elems_));
      }
    int n = 1;
    MPI_Comm_size(lc, &n);
    if (n > 1) MPI_Bcast(vals.data(), int(vals.size() * sizeof(T)), MPI_BYTE, f_.line_rank(owner, axis_), lc);
    buf.for_each_line_head(axis_, [&](int32_t x, int32_t y, T* head) {
      const size_t k = size_t(ax ? y - lo : x - lo);
      std::copy(vals.begin() + int64_t(k * elems_), vals.begin() + int64_t((k + 1) * elems_), head);
    });
  }

  void build_ring() {
    cs_ = (elems_ + size_t(P_) - 1) / size_t(P_);
    perm_ = LinePerm::interleaved(P_);
    out_ = std::make_unique<TileBuf<T>>(f_, r_, cs_, "allreduce ring: chunk out", typename TileBuf<T>::Uncharged{});
    in_ = std::make_unique<TileBuf<T>>(f_, r_, cs_, "allreduce ring: chunk in", typename TileBuf<T>::Uncharged{});
    scratch_bytes_ = 2 * out_->bytes_per_pe();
    ring_ = plan_shift(f_, r_, axis_, +1, true, perm_, out_->bytes_per_pe());
    ring_.share_routes(route_key() + " ring");
    for (int phase = 0; phase < 2; ++phase)
      for (int32_t s = 0; s + 1 < P_; ++s) {
        stats_.steps += 1;
        stats_.critical_hops += ring_.max_hops();
        stats_.critical_stages += 1;  // the core takes each chunk in and sends it on
      }
    stats_.root = 0;
  }

  template <bool Data>
  void run_ring(TileBuf<T>* bufp) {
    if constexpr (!Data) {  // the same steps and charges, no data
      for (int phase = 0; phase < 2; ++phase)
        for (int32_t s = 0; s + 1 < P_; ++s) {
          f_.execute_timing(ring_);
          if (phase == 0) f_.charge_compute(r_, cs_, work_of<T>());
        }
      return;
    }
    TileBuf<T>& buf = *bufp;
    const size_t E = elems_, cs = cs_;
    auto chunk_range = [&](int64_t c) {
      const size_t b = std::min(E, size_t(c) * cs), e = std::min(E, b + cs);
      return std::pair{b, e};
    };
    auto logical = [&](int32_t x, int32_t y) { return perm_.logical(axis_ == Axis::X ? x - r_.x0 : y - r_.y0); };
    for (int phase = 0; phase < 2; ++phase)
      for (int32_t s = 0; s + 1 < P_; ++s) {
        // Logical PE l sends chunk (l - s) mod P (reduce-scatter) or (l + 1 - s) mod P (allgather).
        buf.for_each_local([&](int32_t x, int32_t y, T* tile) {
          const int64_t c = ((logical(x, y) - s + phase) % P_ + P_) % P_;
          const auto [b, e] = chunk_range(c);
          T* o = out_->tile(x, y);
          std::fill(o, o + cs, T{});
          std::copy(tile + b, tile + e, o);
        });
        f_.execute(ring_, out_->view(), in_->view());
        buf.for_each_local([&](int32_t x, int32_t y, T* tile) {
          const int64_t c = ((logical(x, y) - 1 - s + phase) % P_ + P_) % P_;  // what the predecessor sent
          const auto [b, e] = chunk_range(c);
          const T* i = in_->tile(x, y);
          if (phase == 0) {
            for (size_t k = b; k < e; ++k) tile[k] = i[k - b] + tile[k];
            f_.charge_compute(x, y, cs, work_of<T>());
          } else {
            std::copy(i, i + (e - b), tile + b);
          }
        });
      }
  }

  Fabric& f_;
  Region r_;
  Axis axis_;
  size_t elems_;
  AllreduceSpec spec_;
  int32_t P_;
  uint64_t scratch_bytes_ = 0;
  AllreduceStats stats_;
  // tree / pipeline
  std::vector<Level> levels_;
  std::vector<int> side_of_;  // per Side, in execution order: 0 left, 1 right
  std::unique_ptr<TileBuf<T>> in_left_, in_right_;
  TransferPlan bcast_;
  bool has_bcast_ = false;
  std::vector<T> bcast_vals_;  // bcast_heads: the lines' tiles this rank sends or receives
  // ring
  size_t cs_ = 0;
  LinePerm perm_;
  std::unique_ptr<TileBuf<T>> out_, in_;
  TransferPlan ring_;
  std::vector<TransferPlan*> plans_;    // every plan, in the order of the structure (for recordings)
  std::shared_ptr<ClockTapes> tapes_;  // recorded runs, shared by the allreduces of this structure
  std::shared_ptr<ClockTapes> lead_tapes_;  // those of run_timing(lead_ops_, lead_work_)
  uint64_t lead_ops_ = 0;
  Work lead_work_ = Work::fp;
};

// One-off allreduce: prepares, runs and releases. Collective.
template <class T>
AllreduceStats allreduce_lines(Fabric& f, TileBuf<T>& buf, Axis axis, const AllreduceSpec& spec) {
  LineAllreduce<T> ar(f, buf.region(), axis, buf.elems(), spec);
  return ar.run(buf);
}

// Serial reference: the sum every algorithm must produce for one line, in its own order.
// tiles: (P, E) in line order. Result: (E).
template <class T>
std::vector<T> allreduce_line_reference(const AllreduceSpec& spec, const std::vector<std::vector<T>>& tiles) {
  const int32_t P = int32_t(tiles.size());
  const size_t E = tiles.empty() ? 0 : tiles[0].size();
  if (P == 1) return tiles[0];
  if (spec.algo == AllreduceAlgo::ring) {
    const LinePerm perm = LinePerm::interleaved(P);
    const size_t cs = (E + size_t(P) - 1) / size_t(P);
    std::vector<T> out(E);
    for (int32_t c = 0; c < P; ++c) {
      // Chunk c starts at logical PE c and is added by c+1, c+2, ... (incoming + own).
      const size_t b = std::min(E, size_t(c) * cs), e = std::min(E, b + cs);
      for (size_t k = b; k < e; ++k) {
        T acc = tiles[size_t(perm.phys(c))][k];
        for (int32_t j = 1; j < P; ++j) acc = acc + tiles[size_t(perm.phys((c + j) % P))][k];
        out[k] = acc;
      }
    }
    return out;
  }
  std::vector<std::vector<TreeGroup>> levels;
  if (spec.algo == AllreduceAlgo::pipeline) {
    TreeGroup g;
    for (int32_t i = 0; i < P; ++i) g.members.push_back(i);
    levels.push_back({g});
  } else {
    levels = ktree_levels(P, spec.levels, spec.groups);
  }
  std::vector<std::vector<T>> v = tiles;  // value held at each position
  for (const auto& level : levels)
    for (const TreeGroup& g : level) {
      const size_t n = g.members.size();
      std::vector<T> left, right;
      for (size_t i = 0; i < g.root; ++i) {
        if (i == 0) left = v[size_t(g.members[0])];
        else for (size_t k = 0; k < E; ++k) left[k] = left[k] + v[size_t(g.members[i])][k];
      }
      for (size_t i = n - 1; i > g.root; --i) {
        if (i == n - 1) right = v[size_t(g.members[n - 1])];
        else for (size_t k = 0; k < E; ++k) right[k] = right[k] + v[size_t(g.members[i])][k];
      }
      std::vector<T>& root = v[size_t(g.members[g.root])];
      if (!left.empty()) for (size_t k = 0; k < E; ++k) root[k] = left[k] + root[k];
      if (!right.empty()) for (size_t k = 0; k < E; ++k) root[k] = right[k] + root[k];
    }
  const TreeGroup& top = levels.back().front();
  return v[size_t(top.members[top.root])];
}

}  // namespace wm::dist
