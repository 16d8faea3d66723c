#pragma once
// Trace-event JSON, the format of Chrome's about://tracing and the Perfetto UI ("Trace Event
// Format": a JSON object whose "traceEvents" array holds the events). Three kinds are written:
//   "X"  a complete event: a span with a start ("ts") and a duration ("dur") on one track;
//   "C"  a counter sample: the values of one or more series from "ts" until the next sample;
//   "M"  metadata naming a process ("pid": a group of tracks) and a thread ("tid": one track).
// Spans of one track nest by time: a span that lies inside another is drawn beneath it.
//
// Times are given in integer cycles of a clock and written in microseconds, as the format wants
// them, rounded to whole nanoseconds (three decimals): viewers keep times as integer nanoseconds,
// and a span ends exactly where the next one starts when both come from one rounded figure
// (end = round(start + cycles), never round(start) + round(cycles)). The cycle figures themselves
// go into each span's "args" (start_cycle, cycles) for exact arithmetic. No "displayTimeUnit" is
// written: some viewers take "ns" there to mean nanosecond timestamps.
// Events are written sorted by track, start, longest first and depth, so a parent precedes the
// spans it contains. Generic: knows no model or algorithm.
#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace wm::io {

class TraceJson {
 public:
  using Value = std::variant<int64_t, double, std::string>;
  using Args = std::vector<std::pair<std::string, Value>>;

  // cycles_per_us: the clock that turns cycles into microseconds (1100 at 1.1 GHz).
  explicit TraceJson(double cycles_per_us) : cycles_per_us_(cycles_per_us) {}

  // Names a process / a thread (track); sort_index orders them in the viewer.
  void process(int pid, const std::string& name, int sort_index);
  void thread(int pid, int tid, const std::string& name, int sort_index);
  // A span [start, start + cycles) on track (pid, tid). Its args carry start_cycle and cycles too.
  // `depth` orders spans of equal extent (the outer one has the smaller depth).
  void span(int pid, int tid, const std::string& name, const std::string& category, uint64_t start, uint64_t cycles,
            Args args = {}, int depth = 0);
  // A counter sample of process pid at `at`: each series of `name` holds its value until the next
  // sample of `name`.
  void counter(int pid, const std::string& name, uint64_t at, const std::vector<std::pair<std::string, double>>& series);
  // A key of the top-level "otherData" object (what the trace shows, its units).
  void note(const std::string& key, const std::string& value);

  size_t spans() const { return spans_.size(); }
  double cycles_per_us() const { return cycles_per_us_; }
  // The document.
  std::string text() const;

 private:
  struct Span {
    int pid, tid;
    uint64_t start, cycles;
    int depth;
    std::string text;  // the event, ready to write
  };
  int64_t ns(uint64_t cycles) const;
  static std::string us_text(int64_t ns);

  double cycles_per_us_;
  std::vector<std::string> meta_;
  std::vector<Span> spans_;
  std::vector<std::pair<std::pair<int, uint64_t>, std::string>> counters_;  // ((pid, at), event)
  std::vector<std::pair<std::string, std::string>> notes_;
};

// `s` as a JSON string literal (quotes, escapes).
std::string json_quote(const std::string& s);

}  // namespace wm::io
