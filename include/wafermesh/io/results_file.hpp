#pragma once
// HDF5 results files. A file is written under a temporary name and renamed when complete, so an
// interrupted run never leaves a file that looks finished; only a regular file (or nothing) is
// ever replaced. Provenance goes into attributes of the
// root group; a table goes into a group as one compound dataset "table" (one field per column)
// plus one dataset per column, each with a "units" attribute. Generic: knows no algorithm.
//
// Serial HDF5 calls from one rank (the caller decides which); per-PE maps written in parallel
// belong to the sweep layer.
#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace wm::io {

enum class ColumnKind { real, integer, text };

class Table {
 public:
  using Cell = std::variant<double, int64_t, std::string>;
  size_t add_column(std::string name, std::string unit, ColumnKind kind);
  // One value per column, of the column's kind.
  void append_row(std::vector<Cell> row);

  struct Column {
    std::string name, unit;
    ColumnKind kind;
  };
  const std::vector<Column>& columns() const { return cols_; }
  const std::vector<std::vector<Cell>>& rows() const { return rows_; }

 private:
  std::vector<Column> cols_;
  std::vector<std::vector<Cell>> rows_;
};

struct Provenance {
  std::string command_line;
  std::vector<std::vector<std::string>> params;  // {name, value, unit, source}
  int ranks = 1;
  int ranks_x = 1, ranks_y = 1;
  int64_t seed = -1;  // -1: none
};

class RemoveOnSignal;

// Checks, before any work, that `path` can receive a results file: if it exists it must be a
// regular file (a device such as /dev/null, a FIFO, a socket, a directory or a symbolic link is
// refused, so nothing is ever renamed over it), and its directory must take a file (probed by
// creating and removing `path`.tmpPID there; when the directory does not exist yet, its nearest
// existing ancestor is probed, and nothing is created). Throws wm::UsageError with one line
// naming the path and the reason. "" is accepted (no file).
void check_output_path(const std::string& path);

// Writes `text` to `path` as results files are written: as `path`.tmpPID (parent directories
// created), removed on failure or when a signal ends the process, then renamed over `path`, which
// must be a regular file or absent. Throws wm::UsageError naming the path.
void write_text_file(const std::string& path, const std::string& text);

class ResultsWriter {
 public:
  // Creates `path`.tmpPID (parent directories too); removed by the destructor unless committed,
  // and by SIGTERM/SIGINT/SIGHUP/SIGQUIT (RemoveOnSignal). Throws wm::UsageError naming the path on
  // failure, or when `path` exists and is not a regular file (checked again by commit()).
  ResultsWriter(std::string path, const Provenance& prov);
  // Continues an existing results file: copies `existing` to `path`.tmpPID and opens the copy, so
  // `existing` stays intact until commit() renames the copy to `path` (which may equal `existing`).
  struct Continue {};
  ResultsWriter(std::string path, const std::string& existing, Continue);
  ~ResultsWriter();  // an uncommitted file is removed
  ResultsWriter(const ResultsWriter&) = delete;
  ResultsWriter& operator=(const ResultsWriter&) = delete;

  void write_table(const std::string& group, const Table& t);
  void write_attribute(const std::string& group, const std::string& name, const std::string& value);
  void write_attribute(const std::string& group, const std::string& name, int64_t value);
  void write_attribute(const std::string& group, const std::string& name, double value);
  // Deletes a group or dataset if it exists (to rewrite it).
  void remove(const std::string& object);
  // Closes the file and renames it to its final name.
  void commit();
  // Closes the file (still under its temporary name) so that all ranks can add per-PE maps with
  // append_pe_maps; commit() renames it afterwards.
  void close_for_parallel();
  const std::string& path() const { return path_; }
  const std::string& temporary_path() const { return tmp_; }

 private:
  void write_provenance(const Provenance& prov);

  std::string path_, tmp_;
  int64_t file_ = -1;  // hid_t
  bool committed_ = false;
  std::unique_ptr<RemoveOnSignal> guard_;  // tmp_ removed if a signal ends the process
};

// Reads what ResultsWriter wrote (serial HDF5, one process). Errors name the file.
class ResultsReader {
 public:
  explicit ResultsReader(const std::string& path);  // throws wm::UsageError if not an HDF5 file
  ~ResultsReader();
  ResultsReader(const ResultsReader&) = delete;
  ResultsReader& operator=(const ResultsReader&) = delete;
  bool exists(const std::string& object) const;
  std::vector<std::string> children(const std::string& group) const;  // sorted names
  // A string or integer attribute as text; "" when absent.
  std::string attribute(const std::string& object, const std::string& name) const;
  // The compound dataset `group`/table with the units of the column datasets beside it.
  Table read_table(const std::string& group) const;

 private:
  std::string path_;
  int64_t file_ = -1;
};

// Per-PE maps of a region written in parallel: every rank writes the rectangle of the region it
// owns as a hyperslab of H x W datasets `group`/<name> (each with a "units" attribute), through
// parallel HDF5 (MPI-IO). Collective over `comm`; `tmp_path` must be the same on every rank and
// the file closed by its writer (ResultsWriter::close_for_parallel).
struct PeMap {
  std::string name, unit;
  std::vector<uint64_t> values;  // (local.h, local.w) row-major: this rank's part of the region
};
void append_pe_maps(MPI_Comm comm, const std::string& tmp_path, const std::string& group, int32_t region_w,
                    int32_t region_h, int32_t local_x, int32_t local_y, int32_t local_w, int32_t local_h,
                    const std::vector<PeMap>& maps);

// "host", "start time" and the full command line of this process, for provenance.
std::string host_name();
std::string iso_time_now();

}  // namespace wm::io
