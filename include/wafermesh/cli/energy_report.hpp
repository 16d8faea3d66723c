#pragma once
// The energy of a `generate` run (noc/energy.hpp): every position's work on the whole mesh and
// the static power of all its PEs over the position's cycles; the prompt (time to first token)
// and the decoded tokens apart; per layer, the dynamic energy of its phases (a GEMV's
// multiply-accumulates and their SRAM count as compute, its messages as allreduce) and the
// static energy of the wafer over the layer's cycles.
#include <cstdint>
#include <iosfwd>
#include <vector>

#include "wafermesh/io/results_file.hpp"
#include "wafermesh/model/mesh_transformer.hpp"
#include "wafermesh/noc/energy.hpp"
#include "wafermesh/noc/params.hpp"

namespace wm::cli {

struct RunEnergy {
  std::vector<EnergySplit> positions;  // per position
  std::vector<OpCounts> position_ops;  // per position: its operations on the whole mesh, by kind
  EnergySplit prompt, decode;          // positions [0, first) and [first, n)
  OpCounts decode_ops;                 // the operations of positions [first, n)
  int64_t decoded = 0;
  EnergySplit per_token;               // decode / decoded (0 without a decoded token)
  double tokens_per_j = 0;
  double average_w = 0;                // all positions' energy over their time
  double peak_w = 0;                   // the most power of one position
  int64_t peak_position = -1;
  // Per layer, mean per decoded token (else of the last position): dynamic energy of the compute,
  // allreduce and kv phases, the wafer's static energy over the layer's cycles.
  struct Layer {
    double compute_j = 0, allreduce_j = 0, kv_j = 0, static_j = 0;
    double total_j() const { return compute_j + allreduce_j + kv_j + static_j; }
  };
  std::vector<Layer> layers;
};

// positions: every position's figures in order; the first `first` are the prompt's.
RunEnergy run_energy(const MachineParams& mp, const std::vector<const model::TokenCycles*>& positions, int64_t first,
                     int64_t layers);
void print_energy(std::ostream& out, const MachineParams& mp, const RunEnergy& e);
// Columns of the summary, tokens and layers tables, and a row's cells in the same order.
void add_energy_summary_columns(io::Table& t);
void append_energy_summary(std::vector<io::Table::Cell>& row, const RunEnergy& e);
void add_energy_position_columns(io::Table& t);
void append_energy_position(std::vector<io::Table::Cell>& row, const RunEnergy& e, int64_t position, uint64_t cycles,
                            const MachineParams& mp);
void add_energy_layer_columns(io::Table& t);
// The operations by kind of work (OpCounts) as columns fp_macs, elem_ops, ternary_ops, int_ops, and
// a row's cells in that order (also the tokens table's last four columns).
void add_ops_columns(io::Table& t);
void append_ops(std::vector<io::Table::Cell>& row, const OpCounts& o);
void append_energy_layer(std::vector<io::Table::Cell>& row, const RunEnergy& e, int64_t layer);

}  // namespace wm::cli
