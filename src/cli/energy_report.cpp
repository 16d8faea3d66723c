#include "wafermesh/cli/energy_report.hpp"

#include <iomanip>
#include <ostream>
#include <sstream>
#include <string>

namespace wm::cli {

namespace {
// Joules with a unit that keeps three to four significant digits.
std::string joules(double j) {
  std::ostringstream s;
  const double a = j < 0 ? -j : j;
  if (a >= 1) s << std::fixed << std::setprecision(3) << j << " J";
  else if (a >= 1e-3) s << std::fixed << std::setprecision(3) << j * 1e3 << " mJ";
  else if (a >= 1e-6) s << std::fixed << std::setprecision(3) << j * 1e6 << " uJ";
  else s << std::fixed << std::setprecision(3) << j * 1e9 << " nJ";
  return s.str();
}
std::string split(const EnergySplit& e) {
  return "compute " + joules(e.compute_j) + ", SRAM " + joules(e.sram_j) + ", NoC " + joules(e.noc_j) + ", static " +
         joules(e.static_j);
}
// An energy split as columns `prefix`j, `prefix`compute_j, ... static_j, and a row's cells in that order.
void add_split_columns(io::Table& t, const std::string& prefix) {
  for (const char* part : {"", "compute_", "sram_", "noc_", "static_"})
    t.add_column(prefix + part + "j", "J", io::ColumnKind::real);
}
void append_split(std::vector<io::Table::Cell>& row, const EnergySplit& e) {
  for (double v : {e.total_j(), e.compute_j, e.sram_j, e.noc_j, e.static_j}) row.push_back(v);
}
}  // namespace

RunEnergy run_energy(const MachineParams& mp, const std::vector<const model::TokenCycles*>& positions, int64_t first,
                     int64_t layers) {
  const EnergyModel em = EnergyModel::from(mp);
  const uint64_t pes = uint64_t(mp.width_pes) * uint64_t(mp.height_pes);
  RunEnergy r;
  const int64_t n = int64_t(positions.size());
  double all_j = 0, all_s = 0;
  for (int64_t i = 0; i < n; ++i) {
    const model::TokenCycles& tc = *positions[size_t(i)];
    const EnergySplit e = em.of(tc.work, pes, tc.total);
    r.positions.push_back(e);
    r.position_ops.push_back(tc.work.ops);
    (i < first ? r.prompt : r.decode) += e;
    if (i >= first) r.decode_ops += tc.work.ops;
    const double s = double(tc.total) / em.clock_hz;
    all_j += e.total_j();
    all_s += s;
    if (s > 0 && e.total_j() / s > r.peak_w) r.peak_w = e.total_j() / s, r.peak_position = i;
  }
  r.decoded = n - first;
  r.average_w = all_s > 0 ? all_j / all_s : 0;
  if (r.decoded > 0) {
    const double k = 1.0 / double(r.decoded);
    r.per_token = {r.decode.compute_j * k, r.decode.sram_j * k, r.decode.noc_j * k, r.decode.static_j * k};
    r.tokens_per_j = r.per_token.total_j() > 0 ? 1.0 / r.per_token.total_j() : 0;
  }
  // Per layer: the decoded positions (or the last one), like the per-layer table.
  r.layers.assign(size_t(layers), {});
  const int64_t from = r.decoded > 0 ? first : n - 1, count = r.decoded > 0 ? r.decoded : 1;
  for (int64_t i = std::max<int64_t>(from, 0); i < n; ++i)
    for (const model::PhaseSpan& sp : positions[size_t(i)]->spans) {
      if (sp.layer < 0 || sp.layer >= layers) continue;
      RunEnergy::Layer& L = r.layers[size_t(sp.layer)];
      const WorkCounts ops{sp.work.ops, 0, 0, 0}, msgs{{}, sp.work.bytes_sent, sp.work.bytes_received, sp.work.byte_hops};
      const double all = em.of(sp.work, 0, 0).total_j();
      switch (sp.kind) {
        case model::PhaseSpan::Kind::gemv:
          L.compute_j += em.of(ops, 0, 0).total_j();
          L.allreduce_j += em.of(msgs, 0, 0).total_j();
          break;
        case model::PhaseSpan::Kind::compute: L.compute_j += all; break;
        case model::PhaseSpan::Kind::allreduce: L.allreduce_j += all; break;
        case model::PhaseSpan::Kind::kv: L.kv_j += all; break;
        default: break;
      }
      L.static_j += em.of({}, pes, sp.end - sp.start).static_j;
    }
  for (RunEnergy::Layer& L : r.layers) {
    const double k = 1.0 / double(count);
    L.compute_j *= k, L.allreduce_j *= k, L.kv_j *= k, L.static_j *= k;
  }
  return r;
}

void print_energy(std::ostream& out, const MachineParams& mp, const RunEnergy& e) {
  out << "energy (modelled: energy.* parameters; static power on all " << mp.width_pes * mp.height_pes
      << " PEs of the mesh):\n";
  auto line = [&out](const char* label, const EnergySplit& s) {
    out << "  " << std::left << std::setw(22) << label << std::right << joules(s.total_j()) << " (" << split(s) << ")";
  };
  if (e.decoded > 0) {
    line("per decoded token", e.per_token);
    out << " -> " << std::setprecision(3) << std::defaultfloat << e.tokens_per_j << " tokens/J\n";
    const double k = 1.0 / double(e.decoded);
    out << "  operations per token  " << std::setprecision(4) << double(e.decode_ops.fp_macs) * k << " fp MACs ("
        << mp.wafer_dtype << "), " << double(e.decode_ops.elem_ops) * k << " fp element, "
        << double(e.decode_ops.ternary_ops) * k << " ternary, " << double(e.decode_ops.int_ops) * k << " integer\n";
  }
  line("prompt", e.prompt);
  out << "\n"
      << "  wafer power           average " << std::fixed << std::setprecision(1) << e.average_w << " W, peak "
      << e.peak_w << " W (position " << e.peak_position << ")\n"
      << std::defaultfloat << std::flush;
}

void add_energy_summary_columns(io::Table& t) {
  add_split_columns(t, "energy_per_token_");
  t.add_column("tokens_per_j", "tokens/J", io::ColumnKind::real);
  add_split_columns(t, "energy_prompt_");
  t.add_column("average_power_w", "W", io::ColumnKind::real);
  t.add_column("peak_power_w", "W", io::ColumnKind::real);
}

void append_energy_summary(std::vector<io::Table::Cell>& row, const RunEnergy& e) {
  append_split(row, e.per_token);
  row.push_back(e.tokens_per_j);
  append_split(row, e.prompt);
  row.push_back(e.average_w);
  row.push_back(e.peak_w);
}

void add_energy_position_columns(io::Table& t) {
  add_split_columns(t, "energy_");
  t.add_column("power_w", "W", io::ColumnKind::real);
  add_ops_columns(t);
}

void append_energy_position(std::vector<io::Table::Cell>& row, const RunEnergy& e, int64_t position, uint64_t cycles,
                            const MachineParams& mp) {
  const EnergySplit& s = e.positions[size_t(position)];
  const double secs = double(cycles) / (mp.clock_ghz * 1e9);
  append_split(row, s);
  row.push_back(secs > 0 ? s.total_j() / secs : 0.0);
  append_ops(row, e.position_ops[size_t(position)]);
}

void add_ops_columns(io::Table& t) {
  t.add_column("fp_macs", "MACs", io::ColumnKind::integer);
  t.add_column("elem_ops", "ops", io::ColumnKind::integer);
  t.add_column("ternary_ops", "ops", io::ColumnKind::integer);
  t.add_column("int_ops", "ops", io::ColumnKind::integer);
}

void append_ops(std::vector<io::Table::Cell>& row, const OpCounts& o) {
  for (uint64_t v : {o.fp_macs, o.elem_ops, o.ternary_ops, o.int_ops}) row.push_back(int64_t(v));
}

void add_energy_layer_columns(io::Table& t) {
  t.add_column("energy_compute_j", "J", io::ColumnKind::real);
  t.add_column("energy_allreduce_j", "J", io::ColumnKind::real);
  t.add_column("energy_kv_j", "J", io::ColumnKind::real);
  t.add_column("energy_static_j", "J", io::ColumnKind::real);
  t.add_column("energy_j", "J", io::ColumnKind::real);
}

void append_energy_layer(std::vector<io::Table::Cell>& row, const RunEnergy& e, int64_t layer) {
  const RunEnergy::Layer& L = e.layers[size_t(layer)];
  for (double v : {L.compute_j, L.allreduce_j, L.kv_j, L.static_j, L.total_j()}) row.push_back(v);
}

}  // namespace wm::cli
