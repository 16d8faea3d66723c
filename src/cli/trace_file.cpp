#include "wafermesh/cli/trace_file.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <ostream>

#include "wafermesh/cli/machine_options.hpp"
#include "wafermesh/cli/rank0.hpp"
#include "wafermesh/io/results_file.hpp"
#include "wafermesh/model/mesh_transformer.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::cli {

std::vector<ParamSpec> TraceOptions::specs() {
  return {
      param_text("trace", &path,
                 "write a timeline of the wafer's virtual time to this file (trace-event JSON for the Perfetto UI or "
                 "chrome://tracing; timestamps in virtual microseconds; empty = none)"),
      param_int_list("trace_pes", &pes, "PEs",
                     "with --trace: also one track per PE of the window x0,y0,w,h (at most 64 PEs), its time split "
                     "into transfer, stall and compute",
                     0, 1 << 20),
  };
}

std::optional<Region> TraceOptions::window() const {
  if (!on() || pes.empty()) return std::nullopt;
  return Region{int32_t(pes[0]), int32_t(pes[1]), int32_t(pes[2]), int32_t(pes[3])};
}

void TraceOptions::check(const Context& ctx, const MachineParams& mp) const {
  if (!pes.empty()) {
    if (!on()) throw UsageError("option --trace_pes needs --trace FILE.json");
    if (pes.size() != 4)
      throw UsageError("option --trace_pes: " + std::to_string(pes.size()) + " values, expected x0,y0,w,h");
    const int64_t x0 = pes[0], y0 = pes[1], w = pes[2], h = pes[3];
    if (w < 1 || h < 1 || x0 + w > mp.width_pes || y0 + h > mp.height_pes)
      throw UsageError("option --trace_pes = " + std::to_string(x0) + "," + std::to_string(y0) + "," +
                       std::to_string(w) + "," + std::to_string(h) + ": the window must be non-empty and inside the " +
                       std::to_string(mp.width_pes) + " x " + std::to_string(mp.height_pes) + " mesh");
    if (w * h > kMaxTracedPes)
      throw UsageError("option --trace_pes: a window of " + std::to_string(w * h) + " PEs, more than the " +
                       std::to_string(kMaxTracedPes) + " a trace takes (every fabric operation samples each one)");
  }
  if (!on()) return;
  if (ctx.sink) throw UsageError("option --trace: not under sweep (every point would write the same file)");
  check_output_file(ctx, path, "--trace");
}

TraceFile::TraceFile(const TraceOptions& o, const MachineParams& mp) : o_(o), mp_(mp), json_(mp.clock_ghz * 1e3) {
  json_.note("time", "virtual microseconds of the emulated wafer at pe.clock_ghz = " + std::to_string(mp.clock_ghz) +
                         " (span args: start_cycle and cycles, exact)");
  json_.note("mesh", std::to_string(mp.width_pes) + " x " + std::to_string(mp.height_pes) + " PEs");
}

int TraceFile::new_process(const std::string& name) {
  const int pid = next_pid_++;
  json_.process(pid, name, pid);
  return pid;
}

std::unique_ptr<PeWindowTrace> TraceFile::record_pes(Fabric& f) const {
  const std::optional<Region> w = o_.window();
  return w ? std::make_unique<PeWindowTrace>(f, *w) : nullptr;
}

void TraceFile::add_pes(int pid, const PeWindowTrace& rec) {
  const std::vector<std::vector<PeWindowTrace::Sample>> all = rec.gather();  // rank 0 only
  const Region& w = rec.window();
  for (int64_t k = 0; k < w.size(); ++k) {
    const int tid = next_tid_++;
    if (all.empty()) continue;
    const int32_t x = w.x0 + int32_t(k % w.w), y = w.y0 + int32_t(k / w.w);
    const std::string pe = "PE (" + std::to_string(x) + ", " + std::to_string(y) + ")";
    json_.thread(pid, tid, pe, tid);
    const std::vector<PeWindowTrace::Sample>& s = all[size_t(k)];
    for (size_t i = 0; i < s.size(); ++i) {
      if (i == 0 || s[i].sram_bytes != s[i - 1].sram_bytes)
        json_.counter(pid, "SRAM in use, " + pe, s[i].clock_cycles, {{"bytes", double(s[i].sram_bytes)}});
      if (i > 0 && s[i].bytes_sent != s[i - 1].bytes_sent)
        json_.counter(pid, "bytes sent, " + pe, s[i].clock_cycles, {{"bytes", double(s[i].bytes_sent)}});
      if (i == 0) continue;
      // clock = compute + injection + stall at every sample, so the three differences tile the step.
      const uint64_t dt = s[i].clock_cycles - s[i - 1].clock_cycles;
      const uint64_t inj = s[i].inject_cycles - s[i - 1].inject_cycles;
      const uint64_t comp = s[i].compute_cycles - s[i - 1].compute_cycles;
      const uint64_t stall = dt - inj - comp;
      uint64_t t = s[i - 1].clock_cycles;
      for (const auto& [name, cycles] : {std::pair<const char*, uint64_t>{"transfer", inj}, {"stall", stall},
                                         {"compute", comp}}) {
        if (cycles) json_.span(pid, tid, name, name, t, cycles);
        t += cycles;
      }
    }
  }
}

void TraceFile::add_point(const std::string& name, const std::string& track, const std::string& what, uint64_t end,
                          uint64_t cycles, io::TraceJson::Args args, const PeWindowTrace* pes) {
  const int pid = new_process(name);
  const int tid = next_tid_++;
  json_.thread(pid, tid, track, 0);
  json_.span(pid, tid, what, "point", end - std::min(end, cycles), cycles, std::move(args));
  if (pes) add_pes(pid, *pes);
}

void TraceFile::write(const Context& ctx) {
  if (!on()) return;
  on_rank0(ctx, [&] { io::write_text_file(o_.path, json_.text()); });
  *ctx.out << "wrote " << o_.path << " (trace: " << json_.spans() << " spans)\n";
}

namespace {

using model::PhaseSpan;

const char* kind_name(PhaseSpan::Kind k) {
  switch (k) {
    case PhaseSpan::Kind::compute: return "compute";
    case PhaseSpan::Kind::allreduce: return "allreduce";
    case PhaseSpan::Kind::kv: return "kv";
    case PhaseSpan::Kind::gemv: return "gemv";
    case PhaseSpan::Kind::handoff: return "handoff";
    case PhaseSpan::Kind::classifier: return "classifier";
  }
  return "?";
}

}  // namespace

void trace_generate(TraceFile& trace, const model::MeshPlacement& pl, const std::vector<TracedPosition>& positions,
                    uint64_t switch_start, uint64_t switch_cycles) {
  io::TraceJson& j = trace.json();
  const int wafer = trace.new_process("wafer (virtual time)");
  constexpr int kPositions = 1, kClassifier = 2;
  j.thread(wafer, kPositions, "positions (tokens table)", 0);
  if (switch_cycles)
    j.span(wafer, kPositions, "prefill -> decode switch (re-placement)", "handoff", switch_start, switch_cycles, {});
  j.thread(wafer, kClassifier, "final norm + classifier (" + std::to_string(pl.classifier_regions.size()) + " regions)",
           1);
  const int regions = trace.new_process("layer regions");
  const size_t nr = pl.layer_regions.size();
  auto region_tid = [](size_t r) { return 100 + int(r); };
  for (size_t r = 0; r < nr; ++r) {
    int64_t first = -1, last = -1;
    for (size_t l = 0; l < pl.region_of_layer.size(); ++l)
      if (pl.region_of_layer[l] == int32_t(r)) {
        if (first < 0) first = int64_t(l);
        last = int64_t(l);
      }
    const Region& R = pl.layer_regions[r];
    j.thread(regions, region_tid(r),
             "region " + std::to_string(r) + " (" + std::to_string(R.x0) + ", " + std::to_string(R.y0) + ") " +
                 std::to_string(R.w) + " x " + std::to_string(R.h) + ": layers " + std::to_string(first) + "-" +
                 std::to_string(last),
             int(r));
  }
  std::vector<uint64_t> sram_last(nr, UINT64_MAX);
  for (size_t p = 0; p < positions.size(); ++p) {
    const model::TokenCycles& tc = *positions[p].tc;
    const std::string& label = positions[p].label;
    const int64_t pos = int64_t(p);
    j.span(wafer, kPositions, label, "position", tc.start, tc.total, {{"position", pos}});
    // Per region: the position's span, its layers, their phases.
    struct Extent {
      uint64_t lo = UINT64_MAX, hi = 0;
      void add(uint64_t a, uint64_t b) { lo = std::min(lo, a), hi = std::max(hi, b); }
    };
    std::vector<Extent> region_ext(nr);
    std::map<int32_t, Extent> layer_ext;
    std::map<int32_t, std::array<uint64_t, 3>> layer_sum;  // compute, allreduce, kv
    for (const PhaseSpan& s : tc.spans) {
      const uint64_t dur = s.end - s.start;
      if (s.kind == PhaseSpan::Kind::classifier) {
        uint64_t bytes = 0;
        for (size_t i = nr; i < tc.noc_bytes.size(); ++i) bytes += tc.noc_bytes[i];
        j.span(wafer, kClassifier, s.name, kind_name(s.kind), s.start, dur, {{"position", pos}});
        if (!tc.noc_bytes.empty() && dur > 0) {
          j.counter(wafer, "NoC bytes/us, classifier (mean over the span)", s.start,
                    {{"bytes/us", double(bytes) / (double(dur) / j.cycles_per_us())}});
          j.counter(wafer, "NoC bytes/us, classifier (mean over the span)", s.end, {{"bytes/us", 0.0}});
        }
        continue;
      }
      if (s.region < 0 || size_t(s.region) >= nr) continue;
      region_ext[size_t(s.region)].add(s.start, s.end);
      const int tid = region_tid(size_t(s.region));
      io::TraceJson::Args args = {{"position", pos}, {"layer", int64_t(s.layer)}};
      if (dur == 0) continue;
      if (s.layer >= 0) {
        layer_ext[s.layer].add(s.start, s.end);
        auto& sum = layer_sum[s.layer];
        if (s.kind == PhaseSpan::Kind::gemv) sum[0] += s.compute, sum[1] += dur - s.compute;
        else if (s.kind == PhaseSpan::Kind::compute) sum[0] += dur;
        else if (s.kind == PhaseSpan::Kind::allreduce) sum[1] += dur;
        else if (s.kind == PhaseSpan::Kind::kv) sum[2] += dur;
      }
      j.span(regions, tid, s.name, kind_name(s.kind), s.start, dur, args, 2);
      if (s.kind == PhaseSpan::Kind::gemv) {
        if (s.compute) j.span(regions, tid, "multiply-accumulate", "compute", s.start, s.compute, args, 3);
        if (dur > s.compute)
          j.span(regions, tid, "reduction", "allreduce", s.start + s.compute, dur - s.compute, args, 3);
      }
    }
    for (const auto& [l, e] : layer_ext) {
      const auto& sum = layer_sum[l];
      j.span(regions, region_tid(size_t(pl.region_of_layer[size_t(l)])), "layer " + std::to_string(l), "layer", e.lo,
             e.hi - e.lo,
             {{"position", pos},
              {"layer", int64_t(l)},
              {"compute_cycles", int64_t(sum[0])},
              {"allreduce_cycles", int64_t(sum[1])},
              {"kv_cycles", int64_t(sum[2])}},
             1);
    }
    for (size_t r = 0; r < nr; ++r) {
      const Extent& e = region_ext[r];
      if (e.lo > e.hi) continue;
      j.span(regions, region_tid(r), label, "position", e.lo, e.hi - e.lo, {{"position", pos}});
      if (r < tc.noc_bytes.size() && e.hi > e.lo) {
        const std::string name = "NoC bytes/us, region " + std::to_string(r) + " (mean over the position)";
        j.counter(regions, name, e.lo, {{"bytes/us", double(tc.noc_bytes[r]) / (double(e.hi - e.lo) / j.cycles_per_us())}});
        j.counter(regions, name, e.hi, {{"bytes/us", 0.0}});
      }
    }
    for (const model::SramSample& s : tc.sram) {
      if (s.region < 0 || size_t(s.region) >= nr || sram_last[size_t(s.region)] == s.bytes) continue;
      sram_last[size_t(s.region)] = s.bytes;
      j.counter(regions, "SRAM in use, region " + std::to_string(s.region) + " (busiest PE)", s.at,
                {{"bytes", double(s.bytes)}});
    }
  }
}

}  // namespace wm::cli
