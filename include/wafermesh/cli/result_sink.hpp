#pragma once
// Where a command run by `wafermesh sweep` hands its results instead of writing a file of its
// own (Context::sink). cli/bench_common fills it: the tables on rank 0 of the command's
// communicator, the per-PE maps on every rank (its own block). The sweep writes them into its
// one results file after the command returns.
#include <cstdint>
#include <string>
#include <vector>

#include "wafermesh/io/results_file.hpp"

namespace wm::cli {

struct ResultSink {
  struct TableEntry {
    std::string group;  // "gemm", "demo", ...
    io::Table table;
    io::Provenance prov;  // the command's effective options, rank layout, seed
  };
  struct MapsEntry {
    std::string group;  // "demo/pe_maps", ...
    int32_t region_w = 0, region_h = 0;
    int32_t local_x = 0, local_y = 0, local_w = 0, local_h = 0;  // this rank's part
    std::vector<io::PeMap> maps;
  };
  std::vector<TableEntry> tables;
  std::vector<MapsEntry> maps;
};

}  // namespace wm::cli
