#pragma once
// `--trace FILE.json` and `--trace_pes x0,y0,w,h` of generate, demo and the benches: a timeline of
// the wafer's virtual time as trace-event JSON (io/trace_json.hpp; opens in the Perfetto UI and
// chrome://tracing), timestamps in virtual microseconds at pe.clock_ghz.
//
// Every figure in a trace is a settled one (the same on every rank: stamps reduced over the ranks,
// SRAM accounting every rank keeps, PE samples gathered from their owners), rank 0 writes the
// file, and events are sorted before writing, so the file is byte for byte the same at every rank
// count. It is written as `FILE.json.tmpPID` and renamed when complete, like the HDF5 results.
//
// Processes and tracks:
//   generate  "wafer": positions (one span per decoded token or prefill, its cycles those of the
//             per-token table) and the classifier; "layer regions": one track per region with
//             position -> layer -> phase spans (a MeshGEMV / MeshGEMM phase splits into its
//             multiply-accumulates and its reduction), whose cycles add up to the per-layer
//             table's, hand-offs into the region, and counters of SRAM in use and NoC bytes;
//   demo      one span per operation, NoC bytes per operation;
//   benches   one process per point, its span from the start of the algorithm to the last PE done;
//   --trace_pes  one track per PE of the window (at most kMaxTracedPes), its time between two
//             fabric operations split into transfer (injection), stall and compute, in that order,
//             and counters of its SRAM in use and bytes sent (noc/pe_trace.hpp).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "wafermesh/cli/commands.hpp"
#include "wafermesh/io/trace_json.hpp"
#include "wafermesh/mesh/geometry.hpp"
#include "wafermesh/noc/params.hpp"
#include "wafermesh/noc/pe_trace.hpp"
#include "wafermesh/util/param_spec.hpp"

namespace wm::model {
struct MeshPlacement;
struct TokenCycles;
}  // namespace wm::model

namespace wm::cli {

constexpr int64_t kMaxTracedPes = 64;

struct TraceOptions {
  std::string path;          // --trace ("" = no trace)
  std::vector<int64_t> pes;  // --trace_pes x0,y0,w,h (empty = no PE tracks)
  std::vector<ParamSpec> specs();
  // Before any work: the file's path (as results files), the window inside the mesh and at most
  // kMaxTracedPes PEs; no trace under `sweep`. UsageError on every rank. Collective.
  void check(const Context& ctx, const MachineParams& mp) const;
  bool on() const { return !path.empty(); }
  std::optional<Region> window() const;  // the PE window when tracing with one
};

class TraceFile {
 public:
  TraceFile(const TraceOptions& o, const MachineParams& mp);
  bool on() const { return o_.on(); }
  io::TraceJson& json() { return json_; }
  // A fresh process id for a group of tracks (pids are handed out in call order on every rank).
  int new_process(const std::string& name);
  // A PE recorder on `f` for the window, or nullptr without one (or without a trace).
  std::unique_ptr<PeWindowTrace> record_pes(Fabric& f) const;
  // The tracks of the window's PEs under process `pid`. Collective (gathers the samples).
  void add_pes(int pid, const PeWindowTrace& rec);
  // A bench point: a process `name` whose track `track` holds one span `what` of `cycles` ending
  // at `end` (the last PE of the region done), and the PE tracks of `pes` (if any). Collective.
  void add_point(const std::string& name, const std::string& track, const std::string& what, uint64_t end,
                 uint64_t cycles, io::TraceJson::Args args, const PeWindowTrace* pes);
  // Rank 0 writes the file (complete or not at all); an error there reaches every rank. Prints
  // "wrote PATH". Collective.
  void write(const Context& ctx);

 private:
  TraceOptions o_;
  MachineParams mp_;
  io::TraceJson json_;
  int next_pid_ = 1;
  int next_tid_ = 1;
};

// One position of `generate` as the trace shows it.
struct TracedPosition {
  std::string label;  // "prefill (12 tokens)", "decode 7"
  const model::TokenCycles* tc = nullptr;
};
// The tracks of a `generate` run (see above) into `trace`; with switch_cycles, the switch between
// the prefill and the decode placement as a span of the positions' track (the layer regions'
// tracks are the decode placement's, also for the prompt's spans).
void trace_generate(TraceFile& trace, const model::MeshPlacement& pl, const std::vector<TracedPosition>& positions,
                    uint64_t switch_start = 0, uint64_t switch_cycles = 0);

}  // namespace wm::cli
