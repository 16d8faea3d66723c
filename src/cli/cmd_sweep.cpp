// `wafermesh sweep --study FILE.ini`: runs the cross product of a study's values as points of one
// MPI job, each point an ordinary command (demo, bench gemm, ...) run in-process on the rank
// count the point asks for, its results handed to a sink (Context::sink) instead of a file of
// its own. Every finished point is appended to one HDF5 file:
//
//   FILE.partial        while points remain; after every point a copy is extended and renamed
//                       over it, so a killed job leaves every finished point readable
//   FILE                when every point of the study is in it (renamed from FILE.partial)
//
// Running the same study again skips the points already in FILE.partial (or FILE): resume after
// a crash or a SLURM time limit. Layout: results/README.md.
#include <fcntl.h>
#include <mpi.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <sstream>
#include <streambuf>

#include "wafermesh/cli/commands.hpp"
#include "wafermesh/cli/rank0.hpp"
#include "wafermesh/cli/result_sink.hpp"
#include "wafermesh/cli/study.hpp"
#include "wafermesh/io/progress.hpp"
#include "wafermesh/io/remove_on_signal.hpp"
#include "wafermesh/io/results_file.hpp"
#include "wafermesh/mesh/mpi_handles.hpp"
#include "wafermesh/mesh/mpi_traits.hpp"
#include "wafermesh/util/error.hpp"
#include "wafermesh/util/options.hpp"

namespace wm::cli {

namespace {

class NullBuf : public std::streambuf {
 protected:
  int overflow(int c) override { return c; }
};

struct SweepOptions {
  std::string study;
  std::string output;
  bool verbose = false;
  double heartbeat_s = 30;
  bool list = false;
  std::string shard;
  std::vector<ParamSpec> specs() {
    return {
        param_text("study", &study, "study file (configs/studies/NAME.ini): command, [vary] and [fixed] options"),
        param_text("output", &output,
                   "HDF5 results file (default results/NAME.h5 after the study file's name); FILE.partial "
                   "while points remain"),
        param_flag("verbose", &verbose, "also print each point's own output"),
        param_real("heartbeat_s", &heartbeat_s, "s", "print a line every this many seconds while a point runs (0: never)",
                   0, 1e9),
        param_flag("list", &list, "check the study and list its points (done or not), run nothing"),
        param_text("shard", &shard,
                   "I/N: run only the points whose number (from 0, in study order) is I modulo N, e.g. one "
                   "task of a SLURM job array each (default output results/NAME.shardIofN.h5)"),
    };
  }
};

// Idle ranks of a point that runs on fewer ranks than the job wait at this poll interval.
constexpr std::chrono::milliseconds kIdlePoll{1};

bool file_exists(const std::string& p) {
  std::error_code ec;
  return std::filesystem::exists(p, ec);
}

std::string point_group(int64_t index) {
  char b[32];
  std::snprintf(b, sizeof b, "points/%06lld", static_cast<long long>(index));
  return b;
}

// Column kind of a [vary] key: integer if every value is one, real if every value is a number.
io::ColumnKind vary_kind(const std::vector<std::string>& vals) {
  bool all_int = true, all_num = true;
  for (const auto& v : vals) {
    char* end = nullptr;
    (void)std::strtoll(v.c_str(), &end, 10);
    all_int = all_int && end == v.c_str() + v.size();
    (void)std::strtod(v.c_str(), &end);
    all_num = all_num && end == v.c_str() + v.size();
  }
  return all_int ? io::ColumnKind::integer : all_num ? io::ColumnKind::real : io::ColumnKind::text;
}

io::Table::Cell vary_cell(io::ColumnKind k, const std::string& v) {
  if (k == io::ColumnKind::integer) return int64_t(std::strtoll(v.c_str(), nullptr, 10));
  if (k == io::ColumnKind::real) return std::strtod(v.c_str(), nullptr);
  return v;
}

// The summary tables of the file (sweep/points and sweep/<group>), grown point by point.
struct Summary {
  std::map<std::string, io::Table> tables;  // "points", "gemm", ...

  void append(const std::string& name, const io::Table& row_table, const std::string& file) {
    auto it = tables.find(name);
    if (it == tables.end()) {
      tables.emplace(name, row_table);
      return;
    }
    io::Table& t = it->second;
    const auto& a = t.columns();
    const auto& b = row_table.columns();
    bool same = a.size() == b.size();
    for (size_t i = 0; same && i < a.size(); ++i) same = a[i].name == b[i].name && a[i].kind == b[i].kind;
    if (!same) {
      std::string ca, cb;
      for (const auto& c : a) ca += (ca.empty() ? "" : ",") + c.name;
      for (const auto& c : b) cb += (cb.empty() ? "" : ",") + c.name;
      throw UsageError("results file '" + file + "': summary table sweep/" + name + " has columns " + ca +
                       " but this point's are " + cb + " (written by another version? use another --output)");
    }
    for (const auto& r : row_table.rows()) t.append_row(r);
  }
};

// A zombie (exited, not yet reaped: common in containers whose init does not reap) is not alive.
bool process_alive(long pid) {
  if (kill(pid_t(pid), 0) != 0 && errno == ESRCH) return false;
  std::ifstream st("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(st, line)) return true;  // no /proc: trust kill()
  const size_t close = line.rfind(')');
  return !(close != std::string::npos && close + 2 < line.size() && (line[close + 2] == 'Z' || line[close + 2] == 'X'));
}

// FILE.lock holds "host pid" of the sweep writing FILE: a second sweep on the same file stops
// with an error; a lock left by a dead process on this host is taken over. SIGTERM (a SLURM time
// limit, scancel, mpirun passing on a Ctrl-C) removes the lock before the process dies
// (io::RemoveOnSignal), so that the next job, maybe on another node, can resume the file.
// FILE.partial is consistent at every moment; a temporary copy left behind is removed by the next
// sweep.
class SweepLock {
 public:
  explicit SweepLock(std::string path) : path_(std::move(path)) {
    const std::string me = io::host_name() + " " + std::to_string(getpid());
    for (int attempt = 0; attempt < 2; ++attempt) {
      const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);  // exclusive create
      if (fd >= 0) {
        guard_ = std::make_unique<io::RemoveOnSignal>(path_);
        const bool written = ::write(fd, me.data(), me.size()) == ssize_t(me.size());
        ::close(fd);
        if (!written) {  // (no destructor runs for a constructor that throws)
          guard_.reset();
          std::remove(path_.c_str());
          throw UsageError("cannot write lock file '" + path_ + "'");
        }
        held_ = true;
        return;
      }
      if (errno != EEXIST)  // not another sweep: the directory does not take files
        throw UsageError("cannot create lock file '" + path_ + "' beside the results file: " + std::strerror(errno));
      struct stat st {};
      if (::lstat(path_.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
        throw UsageError("lock file '" + path_ + "' exists and is not a regular file (remove it, or use another --output)");
      std::ifstream in(path_);
      std::string host;
      long pid = 0;
      in >> host >> pid;
      if (host.empty() || pid <= 0)
        throw UsageError("lock file '" + path_ + "' exists but names no sweep (\"host pid\"): remove it if no sweep is "
                         "writing this results file");
      const bool dead = host == io::host_name() && !process_alive(pid);
      if (!dead)
        throw UsageError("another sweep (" + host + " pid " + std::to_string(pid) + ") is writing this results file: '" +
                         path_ + "' exists (remove it if that sweep is gone)");
      std::remove(path_.c_str());  // stale: its process is gone
    }
    throw UsageError("cannot create lock file '" + path_ + "'");
  }
  ~SweepLock() {
    if (!held_) return;
    guard_.reset();
    std::remove(path_.c_str());
  }

 private:
  std::string path_;
  bool held_ = false;
  std::unique_ptr<io::RemoveOnSignal> guard_;
};

// Removes FILE.partial.tmpPID copies left by a killed sweep (the lock says no sweep is writing).
void remove_stale_copies(const std::string& partial) {
  const std::filesystem::path p(partial);
  const std::filesystem::path dir = p.parent_path().empty() ? "." : p.parent_path();
  const std::string prefix = p.filename().string() + ".tmp";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.path().filename().string().rfind(prefix, 0) == 0) std::filesystem::remove(e.path(), ec);
}

}  // namespace

int cmd_sweep(const Context& ctx, const std::vector<std::string>& args) {
  SweepOptions o;
  OptionSet opts;
  opts.add(o.specs());
  opts.parse(args);
  if (opts.help_requested()) {
    opts.print_help(*ctx.out,
                    "usage: wafermesh sweep --study configs/studies/NAME.ini [--output FILE.h5] [options]\n\n"
                    "Runs every point of a study (the cross product of its [vary] lists and rank counts) in this\n"
                    "MPI job and appends each finished point to one HDF5 file. Running the same study again\n"
                    "skips the points already in the file (resume). A progress line per point shows elapsed\n"
                    "and estimated remaining wall time. Study format: configs/studies/README.md.");
    return 0;
  }
  if (o.study.empty()) throw UsageError("option --study is required (a study file, e.g. configs/studies/gemm_algorithms.ini)");
  const Study study = read_study(o.study, ctx.size);
  std::vector<StudyPoint> points = expand_study(study, ctx.size);
  std::string shard_suffix;
  if (!o.shard.empty()) {
    long si = -1, sn = 0;
    char slash = 0, extra = 0;
    const int got = std::sscanf(o.shard.c_str(), "%ld%c%ld%c", &si, &slash, &sn, &extra);
    if (got != 3 || slash != '/' || sn < 1 || si < 0 || si >= sn)
      throw UsageError("option --shard = '" + o.shard + "': must be I/N with N >= 1 and 0 <= I < N");
    std::vector<StudyPoint> mine;
    for (size_t i = 0; i < points.size(); ++i)
      if (long(i % size_t(sn)) == si) mine.push_back(points[i]);
    points = std::move(mine);
    shard_suffix = ".shard" + std::to_string(si) + "of" + std::to_string(sn);
    if (points.empty()) {
      *ctx.out << "sweep: shard " << o.shard << " of study " << o.study << " has no points" << std::endl;
      return 0;
    }
  }
  if (o.output.empty())
    o.output = "results/" + std::filesystem::path(o.study).stem().string() + shard_suffix + ".h5";
  const std::string partial = o.output + ".partial";
  const std::string cmd0 = study.command.front();
  const std::string signature = study_signature(study);

  // Every point's options are checked (on every rank, identically) before anything runs.
  NullBuf null_buf;
  std::ostream null_out(&null_buf);
  for (size_t i = 0; i < points.size(); ++i) {
    ResultSink dummy;
    Context check{MPI_COMM_SELF, 0, points[i].ranks, &null_out, "", &dummy, true};
    try {
      dispatch(check, cmd0, points[i].args);
    } catch (const std::exception& e) {
      throw UsageError("study '" + o.study + "', point " + std::to_string(i + 1) + " (" + points[i].key + "): " + e.what());
    }
    if (!dummy.tables.empty())
      throw UsageError("study '" + o.study + "': command '" + join_words(study.command) +
                       "' ignores sweep's option check (Context::parse_only) and cannot be swept");
  }

  // Which points are in the file already (rank 0 reads, everybody learns).
  std::vector<char> done(points.size(), 0);
  std::string base;  // file to continue from; "" = none yet
  Summary summary;
  int64_t next_index = 0;
  std::unique_ptr<SweepLock> lock;
  on_rank0(ctx, [&] {
    if (!o.list) {
      io::check_output_path(o.output);  // a regular file or nothing; its directory takes files
      io::check_output_path(partial);
      std::error_code ec;
      const auto parent = std::filesystem::path(o.output).parent_path();
      if (!parent.empty()) std::filesystem::create_directories(parent, ec);  // for the lock
      lock = std::make_unique<SweepLock>(o.output + ".lock");
      remove_stale_copies(partial);
    }
    base = file_exists(partial) ? partial : file_exists(o.output) ? o.output : "";
    if (base.empty()) return;
    io::ResultsReader r(base);
    const std::string sig = r.attribute("/", "study_signature");
    if (sig != signature)
      throw UsageError("results file '" + base + "' holds study '" + sig + "', not '" + signature +
                       "' (same command and [fixed] options needed to continue it; use another --output)");
    std::set<std::string> keys;
    for (const std::string& p : r.children("points")) {
      keys.insert(r.attribute("points/" + p, "key"));
      next_index = std::max<int64_t>(next_index, std::strtoll(p.c_str(), nullptr, 10) + 1);
    }
    for (size_t i = 0; i < points.size(); ++i) done[i] = keys.count(points[i].key) ? 1 : 0;
    for (const std::string& g : r.children("sweep")) summary.tables.emplace(g, r.read_table("sweep/" + g));
  });
  bcast_string(ctx.comm, base);
  MPI_Bcast(&next_index, 1, mpi_type<int64_t>(), 0, ctx.comm);
  MPI_Bcast(done.data(), int(done.size()), mpi_type<char>(), 0, ctx.comm);
  int n_done = 0;
  for (char d : done) n_done += d;

  std::ostream& out = *ctx.out;
  out << "sweep: study " << o.study << " (" << join_words(study.command) << "), " << points.size() << " point"
      << (points.size() == 1 ? "" : "s") << ", " << n_done << " already in " << (base.empty() ? o.output : base)
      << "; job of " << ctx.size << " rank(s)" << std::endl;
  if (o.list) {
    for (size_t i = 0; i < points.size(); ++i)
      out << "  [" << i + 1 << "/" << points.size() << "] " << points[i].key << (done[i] ? "  (done)" : "") << "\n";
    return 0;
  }
  if (n_done == int(points.size()) && base == o.output) {
    out << "all points are in " << o.output << "; nothing to run" << std::endl;
    return 0;
  }

  if (base.empty()) {  // a new file: the sweep's provenance and the study itself
    on_rank0(ctx, [&] {
      io::Provenance prov;
      prov.command_line = ctx.command_line;
      for (const ParamSpec& sp : opts.specs())
        prov.params.push_back({sp.name, param_value_text(sp), sp.unit, opts.source(sp.name)});
      prov.ranks = ctx.size;
      prov.ranks_x = prov.ranks_y = 0;  // each point records its own layout
      io::ResultsWriter w(partial, prov);
      w.write_attribute("/", "study_path", study.path);
      w.write_attribute("/", "study_text", study.text);
      w.write_attribute("/", "study_signature", signature);
      w.write_attribute("/", "study_command", join_words(study.command));
      w.write_attribute("/", "study_description", study.description);
      w.write_attribute("/", "points_total", int64_t(points.size()));
      w.write_attribute("/", "points_done", int64_t(0));
      w.write_attribute("/", "complete", std::string("no"));
      w.commit();
    });
    base = partial;
  }

  std::vector<io::ColumnKind> kinds;
  for (const auto& [k, vals] : study.vary) kinds.push_back(vary_kind(vals));
  const std::string run_start = io::iso_time_now();
  io::Progress progress(ctx.rank == 0 ? ctx.out : nullptr, int(points.size()), n_done, o.heartbeat_s);
  int failed = 0, at_limit = 0;
  for (size_t i = 0; i < points.size(); ++i) {
    if (done[i]) continue;
    const StudyPoint& pt = points[i];
    progress.begin(int(i + 1), pt.key);
    const std::string point_start = io::iso_time_now();
    // The point runs on ranks 0 .. pt.ranks-1; the others wait without spinning.
    const MpiComm sub = split_comm(ctx.comm, ctx.rank < pt.ranks ? 0 : MPI_UNDEFINED, ctx.rank);
    ResultSink sink;
    std::string status = "ok", fatal;
    const std::string point_cmdline = "wafermesh " + cmd0 + " " + join_words(pt.args);
    if (sub) {
      Context pc{sub.get(), 0, pt.ranks, o.verbose ? ctx.out : &null_out, point_cmdline, &sink, false};
      MPI_Comm_rank(sub.get(), &pc.rank);
      try {
        const int rc = dispatch(pc, cmd0, pt.args);
        if (rc != 0) status = "failed: exit code " + std::to_string(rc);
      } catch (const LimitError& e) {
        status = std::string("limit: ") + e.what();
      } catch (const UsageError& e) {
        fatal = e.what();
      }
    }
    polite_barrier(ctx.comm, kIdlePoll);
    const double wall_s = progress.end(fatal.empty() ? status : "error");
    bcast_string(ctx.comm, fatal);
    if (!fatal.empty())
      throw UsageError("study '" + o.study + "', point " + std::to_string(i + 1) + " (" + pt.key + "): " + fatal);
    if (status != "ok" && status.rfind("limit:", 0) != 0) ++failed;
    if (status.rfind("limit:", 0) == 0) ++at_limit;

    // Rank 0 extends a copy of the file with the point's tables and the summaries; the point's
    // ranks add their per-PE maps in parallel; rank 0 renames the copy over FILE.partial.
    std::unique_ptr<io::ResultsWriter> w;
    std::string tmp;
    const int64_t index = next_index;
    on_rank0(ctx, [&] {
      w = std::make_unique<io::ResultsWriter>(partial, base, io::ResultsWriter::Continue{});
      const std::string g = point_group(index);
      w->write_attribute(g, "key", pt.key);
      w->write_attribute(g, "status", status);
      w->write_attribute(g, "ranks", int64_t(pt.ranks));
      w->write_attribute(g, "wall_s", wall_s);
      w->write_attribute(g, "wall_s_units", std::string("s"));
      w->write_attribute(g, "start_time", point_start);
      w->write_attribute(g, "sweep_run_start_time", run_start);
      w->write_attribute(g, "host", io::host_name());
      w->write_attribute(g, "command_line", point_cmdline);
      for (const auto& [k, v] : pt.values) w->write_attribute(g, k, v);
      int64_t gx = 0, gy = 0;
      if (!sink.tables.empty()) {
        const io::Provenance& prov = sink.tables.front().prov;
        gx = prov.ranks_x;
        gy = prov.ranks_y;
        w->write_attribute(g, "rank_grid_x", gx);
        w->write_attribute(g, "rank_grid_y", gy);
        if (prov.seed >= 0) w->write_attribute(g, "seed", prov.seed);
        for (const auto& p : prov.params) {
          const std::string pg = g + "/parameters/" + p.at(0);
          w->write_attribute(pg, "value", p.at(1));
          w->write_attribute(pg, "units", p.at(2));
          w->write_attribute(pg, "source", p.at(3));
        }
      }
      for (const auto& te : sink.tables) w->write_table(g + "/" + te.group, te.table);

      // sweep/points: one row per point.
      io::Table prow;
      prow.add_column("point", "", io::ColumnKind::integer);
      prow.add_column("key", "", io::ColumnKind::text);
      prow.add_column("ranks", "ranks", io::ColumnKind::integer);
      prow.add_column("rank_grid_x", "ranks", io::ColumnKind::integer);
      prow.add_column("rank_grid_y", "ranks", io::ColumnKind::integer);
      for (size_t k = 0; k < study.vary.size(); ++k) prow.add_column(study.vary[k].first, "", kinds[k]);
      prow.add_column("point_status", "", io::ColumnKind::text);
      prow.add_column("point_wall_s", "s", io::ColumnKind::real);
      std::vector<io::Table::Cell> cells{index, pt.key, int64_t(pt.ranks), gx, gy};
      for (size_t k = 0; k < study.vary.size(); ++k) cells.push_back(vary_cell(kinds[k], pt.values[k].second));
      cells.push_back(status);
      cells.push_back(wall_s);
      prow.append_row(cells);
      summary.append("points", prow, base);
      // sweep/<group>: the command's rows, prefixed with the point's number, ranks and values.
      for (const auto& te : sink.tables) {
        if (te.group == "points") continue;
        std::set<std::string> own;
        for (const auto& c : te.table.columns()) own.insert(c.name);
        io::Table t;
        t.add_column("point", "", io::ColumnKind::integer);
        t.add_column("ranks", "ranks", io::ColumnKind::integer);
        std::vector<size_t> extra;
        for (size_t k = 0; k < study.vary.size(); ++k)
          if (!own.count(study.vary[k].first) && study.vary[k].first != "ranks" && study.vary[k].first != "point") {
            t.add_column(study.vary[k].first, "", kinds[k]);
            extra.push_back(k);
          }
        t.add_column("point_wall_s", "s", io::ColumnKind::real);
        for (const auto& c : te.table.columns())
          if (c.name != "point" && c.name != "ranks" && c.name != "point_wall_s") t.add_column(c.name, c.unit, c.kind);
        for (const auto& r : te.table.rows()) {
          std::vector<io::Table::Cell> row{index, int64_t(pt.ranks)};
          for (size_t k : extra) row.push_back(vary_cell(kinds[k], pt.values[k].second));
          row.push_back(wall_s);
          for (size_t c = 0; c < r.size(); ++c) {
            const std::string& n = te.table.columns()[c].name;
            if (n != "point" && n != "ranks" && n != "point_wall_s") row.push_back(r[c]);
          }
          t.append_row(row);
        }
        std::string flat = te.group;  // "generate/tokens" -> sweep/generate_tokens: one level, resumable
        for (char& c : flat)
          if (c == '/') c = '_';
        summary.append(flat, t, base);
      }
      for (const auto& [name, t] : summary.tables) {
        w->remove("sweep/" + name);
        w->write_table("sweep/" + name, t);
      }
      w->write_attribute("/", "points_done", int64_t(summary.tables.at("points").rows().size()));
      w->close_for_parallel();
      tmp = w->temporary_path();
    });
    bcast_string(ctx.comm, tmp);
    if (sub) {
      for (const auto& m : sink.maps)
        io::append_pe_maps(sub.get(), tmp, point_group(index) + "/" + m.group, m.region_w, m.region_h, m.local_x,
                           m.local_y, m.local_w, m.local_h, m.maps);
    }
    polite_barrier(ctx.comm, kIdlePoll);
    on_rank0(ctx, [&] { w->commit(); });
    base = partial;
    ++next_index;
  }

  // Every point is in: the finished file gets its final name.
  on_rank0(ctx, [&] {
    io::ResultsWriter w(o.output, partial, io::ResultsWriter::Continue{});
    w.write_attribute("/", "complete", std::string("yes"));
    w.write_attribute("/", "finish_time", io::iso_time_now());
    w.commit();
    std::filesystem::remove(partial);
  });
  out << "wrote " << o.output << " (" << points.size() << " points"
      << (failed ? ", " + std::to_string(failed) + " failed" : "")
      << (at_limit ? ", " + std::to_string(at_limit) + " stopped at a machine or data limit (status 'limit: ...')" : "")
      << ")" << std::endl;
  return failed ? 1 : 0;
}

}  // namespace wm::cli
