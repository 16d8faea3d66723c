#include "wafermesh/io/trace_json.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace wm::io {

std::string json_quote(const std::string& s) {
  std::string o = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\t': o += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", unsigned(static_cast<unsigned char>(c)));
          o += b;
        } else {
          o += c;
        }
    }
  }
  return o + "\"";
}

namespace {
std::string number(double v) {
  if (!std::isfinite(v)) return "null";
  char b[40];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}
std::string value_text(const TraceJson::Value& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&v)) return number(*d);
  return json_quote(std::get<std::string>(v));
}
}  // namespace

int64_t TraceJson::ns(uint64_t cycles) const { return std::llround(double(cycles) * 1e3 / cycles_per_us_); }

std::string TraceJson::us_text(int64_t ns) {
  char b[48];
  std::snprintf(b, sizeof b, "%lld.%03lld", static_cast<long long>(ns / 1000), static_cast<long long>(ns % 1000));
  return b;
}

void TraceJson::process(int pid, const std::string& name, int sort_index) {
  meta_.push_back("{\"ph\":\"M\",\"pid\":" + std::to_string(pid) + ",\"name\":\"process_name\",\"args\":{\"name\":" +
                  json_quote(name) + "}}");
  meta_.push_back("{\"ph\":\"M\",\"pid\":" + std::to_string(pid) +
                  ",\"name\":\"process_sort_index\",\"args\":{\"sort_index\":" + std::to_string(sort_index) + "}}");
}

void TraceJson::thread(int pid, int tid, const std::string& name, int sort_index) {
  const std::string ids = "\"pid\":" + std::to_string(pid) + ",\"tid\":" + std::to_string(tid);
  meta_.push_back("{\"ph\":\"M\"," + ids + ",\"name\":\"thread_name\",\"args\":{\"name\":" + json_quote(name) + "}}");
  meta_.push_back("{\"ph\":\"M\"," + ids + ",\"name\":\"thread_sort_index\",\"args\":{\"sort_index\":" +
                  std::to_string(sort_index) + "}}");
}

void TraceJson::span(int pid, int tid, const std::string& name, const std::string& category, uint64_t start,
                     uint64_t cycles, Args args, int depth) {
  std::string e = "{\"ph\":\"X\",\"pid\":" + std::to_string(pid) + ",\"tid\":" + std::to_string(tid) +
                  ",\"name\":" + json_quote(name) + ",\"cat\":" + json_quote(category) + ",\"ts\":" + us_text(ns(start)) +
                  ",\"dur\":" + us_text(ns(start + cycles) - ns(start)) + ",\"args\":{\"start_cycle\":" + std::to_string(start) +
                  ",\"cycles\":" + std::to_string(cycles);
  for (const auto& [k, v] : args) e += "," + json_quote(k) + ":" + value_text(v);
  e += "}}";
  spans_.push_back({pid, tid, start, cycles, depth, std::move(e)});
}

void TraceJson::counter(int pid, const std::string& name, uint64_t at,
                        const std::vector<std::pair<std::string, double>>& series) {
  std::string e = "{\"ph\":\"C\",\"pid\":" + std::to_string(pid) + ",\"name\":" + json_quote(name) +
                  ",\"ts\":" + us_text(ns(at)) + ",\"args\":{";
  for (size_t i = 0; i < series.size(); ++i)
    e += (i ? "," : "") + json_quote(series[i].first) + ":" + number(series[i].second);
  e += "}}";
  counters_.push_back({{pid, at}, std::move(e)});
}

void TraceJson::note(const std::string& key, const std::string& value) { notes_.push_back({key, value}); }

std::string TraceJson::text() const {
  std::vector<const Span*> order;
  order.reserve(spans_.size());
  for (const Span& s : spans_) order.push_back(&s);
  std::stable_sort(order.begin(), order.end(), [](const Span* a, const Span* b) {
    if (a->pid != b->pid) return a->pid < b->pid;
    if (a->tid != b->tid) return a->tid < b->tid;
    if (a->start != b->start) return a->start < b->start;
    if (a->cycles != b->cycles) return a->cycles > b->cycles;  // the enclosing span first
    return a->depth < b->depth;
  });
  std::vector<const std::pair<std::pair<int, uint64_t>, std::string>*> cs;
  for (const auto& c : counters_) cs.push_back(&c);
  std::stable_sort(cs.begin(), cs.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
  std::string o = "{\"otherData\":{";
  for (size_t i = 0; i < notes_.size(); ++i)
    o += (i ? "," : "") + json_quote(notes_[i].first) + ":" + json_quote(notes_[i].second);
  o += "},\"traceEvents\":[\n";
  bool first = true;
  auto put = [&](const std::string& e) {
    if (!first) o += ",\n";
    o += e;
    first = false;
  };
  for (const std::string& m : meta_) put(m);
  for (const Span* s : order) put(s->text);
  for (const auto* c : cs) put(c->second);
  o += "\n]}\n";
  return o;
}

}  // namespace wm::io
