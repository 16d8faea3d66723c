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
    (i < first ? r.prompt : r.decode) += e;
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
      const WorkCounts macs{sp.work.macs, 0, 0, 0}, msgs{0, sp.work.bytes_sent, sp.work.bytes_received, sp.work.byte_hops};
      const double all = em.of(sp.work, 0, 0).total_j();
      switch (sp.kind) {
        case model::PhaseSpan::Kind::gemv:
          L.compute_j += em.of(macs, 0, 0).total_j();
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
  if (e.decoded > 0)
    out << "  per decoded token     " << joules(e.per_token.total_j()) << " (" << split(e.per_token) << ") -> "
        << std::setprecision(3) << std::defaultfloat << e.tokens_per_j << " tokens/J\n";
  out << "  prompt                " << joules(e.prompt.total_j()) << " (" << split(e.prompt) << ")\n"
      << "  wafer power           average " << std::fixed << std::setprecision(1) << e.average_w << " W, peak "
      << e.peak_w << " W (position " << e.peak_position << ")\n"
      << std::defaultfloat << std::flush;
}

void add_energy_summary_columns(io::Table& t) {
  t.add_column("energy_per_token_j", "J", io::ColumnKind::real);
  t.add_column("energy_per_token_compute_j", "J", io::ColumnKind::real);
  t.add_column("energy_per_token_sram_j", "J", io::ColumnKind::real);
  t.add_column("energy_per_token_noc_j", "J", io::ColumnKind::real);
  t.add_column("energy_per_token_static_j", "J", io::ColumnKind::real);
  t.add_column("tokens_per_j", "tokens/J", io::ColumnKind::real);
  t.add_column("energy_prompt_j", "J", io::ColumnKind::real);
  t.add_column("energy_prompt_compute_j", "J", io::ColumnKind::real);
  t.add_column("energy_prompt_sram_j", "J", io::ColumnKind::real);
  t.add_column("energy_prompt_noc_j", "J", io::ColumnKind::real);
  t.add_column("energy_prompt_static_j", "J", io::ColumnKind::real);
  t.add_column("average_power_w", "W", io::ColumnKind::real);
  t.add_column("peak_power_w", "W", io::ColumnKind::real);
}

void append_energy_summary(std::vector<io::Table::Cell>& row, const RunEnergy& e) {
  for (double v : {e.per_token.total_j(), e.per_token.compute_j, e.per_token.sram_j, e.per_token.noc_j,
                   e.per_token.static_j, e.tokens_per_j, e.prompt.total_j(), e.prompt.compute_j, e.prompt.sram_j,
                   e.prompt.noc_j, e.prompt.static_j, e.average_w, e.peak_w})
    row.push_back(v);
}

void add_energy_position_columns(io::Table& t) {
  t.add_column("energy_j", "J", io::ColumnKind::real);
  t.add_column("energy_compute_j", "J", io::ColumnKind::real);
  t.add_column("energy_sram_j", "J", io::ColumnKind::real);
  t.add_column("energy_noc_j", "J", io::ColumnKind::real);
  t.add_column("energy_static_j", "J", io::ColumnKind::real);
  t.add_column("power_w", "W", io::ColumnKind::real);
}

void append_energy_position(std::vector<io::Table::Cell>& row, const RunEnergy& e, int64_t position, uint64_t cycles,
                            const MachineParams& mp) {
  const EnergySplit& s = e.positions[size_t(position)];
  const double secs = double(cycles) / (mp.clock_ghz * 1e9);
  for (double v : {s.total_j(), s.compute_j, s.sram_j, s.noc_j, s.static_j, secs > 0 ? s.total_j() / secs : 0.0})
    row.push_back(v);
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
