#include "wafermesh/io/results_file.hpp"

#include <fcntl.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <stdexcept>

#include "wafermesh/io/remove_on_signal.hpp"
#include "wafermesh/util/error.hpp"
#include "wafermesh/version.hpp"

namespace wm::io {

size_t Table::add_column(std::string name, std::string unit, ColumnKind kind) {
  if (!rows_.empty()) throw std::logic_error("add columns before rows");
  cols_.push_back({std::move(name), std::move(unit), kind});
  return cols_.size() - 1;
}

void Table::append_row(std::vector<Cell> row) {
  if (row.size() != cols_.size()) throw std::logic_error("row width differs from the table's");
  for (size_t i = 0; i < row.size(); ++i) {
    const bool ok = (cols_[i].kind == ColumnKind::real && std::holds_alternative<double>(row[i])) ||
                    (cols_[i].kind == ColumnKind::integer && std::holds_alternative<int64_t>(row[i])) ||
                    (cols_[i].kind == ColumnKind::text && std::holds_alternative<std::string>(row[i]));
    if (!ok) throw std::logic_error("cell of the wrong kind in column " + cols_[i].name);
  }
  rows_.push_back(std::move(row));
}

namespace {

void check(herr_t rc, const char* what) {
  if (rc < 0) throw std::runtime_error(std::string("HDF5: ") + what + " failed");
}
hid_t checked(hid_t id, const char* what) {
  if (id < 0) throw std::runtime_error(std::string("HDF5: ") + what + " failed");
  return id;
}

void put_string_attr(hid_t obj, const std::string& name, const std::string& value) {
  const hid_t t = checked(H5Tcopy(H5T_C_S1), "type");
  check(H5Tset_size(t, value.empty() ? 1 : value.size()), "set size");
  check(H5Tset_strpad(t, H5T_STR_NULLTERM), "strpad");
  const hid_t sp = checked(H5Screate(H5S_SCALAR), "space");
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  const hid_t a = checked(H5Acreate2(obj, name.c_str(), t, sp, H5P_DEFAULT, H5P_DEFAULT), "attribute");
  check(H5Awrite(a, t, value.empty() ? "" : value.c_str()), "write attribute");
  H5Aclose(a);
  H5Sclose(sp);
  H5Tclose(t);
}

void put_int_attr(hid_t obj, const std::string& name, int64_t v) {
  const hid_t sp = checked(H5Screate(H5S_SCALAR), "space");
  const hid_t a = checked(H5Acreate2(obj, name.c_str(), H5T_NATIVE_INT64, sp, H5P_DEFAULT, H5P_DEFAULT), "attribute");
  check(H5Awrite(a, H5T_NATIVE_INT64, &v), "write attribute");
  H5Aclose(a);
  H5Sclose(sp);
}

hid_t open_or_create_group(hid_t file, const std::string& path) {
  if (path.empty() || path == "/") return checked(H5Gopen2(file, "/", H5P_DEFAULT), "open root");
  const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t g;
  if (H5Lexists(file, path.c_str(), H5P_DEFAULT) > 0)
    g = H5Gopen2(file, path.c_str(), H5P_DEFAULT);
  else
    g = H5Gcreate2(file, path.c_str(), lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5Pclose(lcpl);
  return checked(g, "group");
}

// What a non-regular file is, for messages ("" for a regular file).
const char* file_kind(mode_t m) {
  if (S_ISREG(m)) return "";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISLNK(m)) return "a symbolic link";
  return "not a regular file";
}

// Throws UsageError when `path` exists and is anything but a regular file (a symbolic link is
// not followed: it is refused too). `what` names the path's role in the message.
void refuse_non_regular(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    throw UsageError(what + " '" + path + "': " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode))
    throw UsageError(what + " '" + path + "' is " + file_kind(st.st_mode) +
                     ", not a regular file: nothing is written over it (give the path of a file)");
}

std::string temporary_path_for(const std::string& path) { return path + ".tmp" + std::to_string(getpid()); }

}  // namespace

void check_output_path(const std::string& path) {
  if (path.empty()) return;
  refuse_non_regular(path, "output");
  const std::string tmp = temporary_path_for(path);
  refuse_non_regular(tmp, "temporary results file");
  // The directory that will hold the file must take one: probed by creating and removing a file
  // there (permissions, a read-only or pseudo file system such as /proc). A directory still to be
  // created is not created here (the writer does that): its nearest existing ancestor is probed.
  namespace fs = std::filesystem;
  const fs::path parent = fs::path(path).parent_path();
  fs::path dir = parent.empty() ? fs::path(".") : parent;
  std::error_code ec;
  while (!fs::exists(fs::symlink_status(dir, ec)) && dir != dir.parent_path())
    dir = dir.has_parent_path() ? dir.parent_path() : fs::path(".");  // "results" -> "."
  if (!fs::is_directory(dir, ec))
    throw UsageError("output '" + path + "': '" + dir.string() + "' is not a directory");
  const std::string probe =
      dir == (parent.empty() ? fs::path(".") : parent) ? tmp : (dir / (".wafermesh-probe." + std::to_string(getpid()))).string();
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0)
    throw UsageError("output '" + path + "': cannot create a file in '" + dir.string() + "': " + std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

void write_text_file(const std::string& path, const std::string& text) {
  const std::string tmp = temporary_path_for(path);
  refuse_non_regular(path, "output");
  refuse_non_regular(tmp, "temporary output file");
  std::error_code ec;
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  const RemoveOnSignal guard(tmp);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw UsageError("cannot create '" + tmp + "': " + std::strerror(errno));
  const bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  const bool closed = std::fclose(f) == 0;
  if (!written || !closed) {
    std::remove(tmp.c_str());
    throw UsageError("cannot write '" + tmp + "' (disk full?)");
  }
  try {
    refuse_non_regular(path, "output");  // again at the last moment, as ResultsWriter::commit
  } catch (const UsageError&) {
    std::remove(tmp.c_str());
    throw;
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw UsageError("cannot rename '" + tmp + "' to '" + path + "': " + ec.message());
  }
}

std::string host_name() {
  char b[256] = {0};
  gethostname(b, sizeof b - 1);
  return b;
}

std::string iso_time_now() {
  const std::time_t t = std::time(nullptr);
  char b[64];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return b;
}

ResultsWriter::ResultsWriter(std::string path, const Provenance& prov)
    : path_(std::move(path)), tmp_(temporary_path_for(path_)) {
  refuse_non_regular(path_, "output");
  refuse_non_regular(tmp_, "temporary results file");
  std::error_code ec;
  const auto parent = std::filesystem::path(path_).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  guard_ = std::make_unique<RemoveOnSignal>(tmp_);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors become exceptions with our own message
  file_ = H5Fcreate(tmp_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file_ < 0) throw UsageError("cannot create results file '" + tmp_ + "' (is the directory writable?)");
  try {
    write_provenance(prov);
  } catch (...) {  // no destructor runs for a constructor that throws
    H5Fclose(hid_t(file_));
    std::remove(tmp_.c_str());
    throw;
  }
}

void ResultsWriter::write_provenance(const Provenance& prov) {
  const hid_t root = H5Gopen2(file_, "/", H5P_DEFAULT);
  put_string_attr(root, "wafermesh_version", kVersion);
  put_string_attr(root, "git_commit", kGitCommit);
  put_string_attr(root, "command_line", prov.command_line);
  put_string_attr(root, "host", host_name());
  put_string_attr(root, "start_time", iso_time_now());
  put_int_attr(root, "mpi_ranks", prov.ranks);
  put_int_attr(root, "rank_grid_x", prov.ranks_x);
  put_int_attr(root, "rank_grid_y", prov.ranks_y);
  if (prov.seed >= 0) put_int_attr(root, "seed", prov.seed);
  H5Gclose(root);
  // Every effective parameter as an attribute "value" with "units" and "source" beside it.
  const hid_t pg = open_or_create_group(file_, "parameters");
  for (const auto& p : prov.params) {
    const hid_t g = open_or_create_group(pg, p.at(0));
    put_string_attr(g, "value", p.at(1));
    put_string_attr(g, "units", p.at(2));
    put_string_attr(g, "source", p.at(3));
    H5Gclose(g);
  }
  H5Gclose(pg);
}

ResultsWriter::ResultsWriter(std::string path, const std::string& existing, Continue)
    : path_(std::move(path)), tmp_(temporary_path_for(path_)) {
  refuse_non_regular(path_, "output");
  refuse_non_regular(existing, "results file");
  refuse_non_regular(tmp_, "temporary results file");
  guard_ = std::make_unique<RemoveOnSignal>(tmp_);
  std::error_code ec;
  std::filesystem::copy_file(existing, tmp_, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) {
    std::remove(tmp_.c_str());
    throw UsageError("cannot copy results file '" + existing + "' to '" + tmp_ + "': " + ec.message());
  }
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  file_ = H5Fopen(tmp_.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (file_ < 0) {
    std::remove(tmp_.c_str());
    throw UsageError("cannot open results file '" + existing + "' for appending (not an HDF5 file?)");
  }
}

void ResultsWriter::write_attribute(const std::string& group, const std::string& name, int64_t value) {
  const hid_t g = open_or_create_group(file_, group);
  if (H5Aexists(g, name.c_str()) > 0) H5Adelete(g, name.c_str());
  put_int_attr(g, name, value);
  H5Gclose(g);
}

void ResultsWriter::write_attribute(const std::string& group, const std::string& name, double value) {
  const hid_t g = open_or_create_group(file_, group);
  if (H5Aexists(g, name.c_str()) > 0) H5Adelete(g, name.c_str());
  const hid_t sp = checked(H5Screate(H5S_SCALAR), "space");
  const hid_t a = checked(H5Acreate2(g, name.c_str(), H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, H5P_DEFAULT), "attribute");
  check(H5Awrite(a, H5T_NATIVE_DOUBLE, &value), "write attribute");
  H5Aclose(a);
  H5Sclose(sp);
  H5Gclose(g);
}

void ResultsWriter::remove(const std::string& object) {
  if (H5Lexists(file_, object.c_str(), H5P_DEFAULT) > 0) check(H5Ldelete(file_, object.c_str(), H5P_DEFAULT), "delete");
}

ResultsReader::ResultsReader(const std::string& path) : path_(path) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  file_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file_ < 0) throw UsageError("cannot read results file '" + path + "' (not an HDF5 file?)");
}

ResultsReader::~ResultsReader() {
  if (file_ >= 0) H5Fclose(hid_t(file_));
}

bool ResultsReader::exists(const std::string& object) const {
  // Every intermediate link must exist for H5Lexists to answer.
  std::string at;
  size_t pos = 0;
  while (pos != std::string::npos) {
    const size_t next = object.find('/', pos + 1);
    at = object.substr(0, next);
    if (!at.empty() && at != "/" && H5Lexists(file_, at.c_str(), H5P_DEFAULT) <= 0) return false;
    pos = next;
  }
  return true;
}

std::vector<std::string> ResultsReader::children(const std::string& group) const {
  std::vector<std::string> names;
  if (!exists(group)) return names;
  const hid_t g = H5Gopen2(file_, group.c_str(), H5P_DEFAULT);
  if (g < 0) return names;
  H5G_info_t info;
  if (H5Gget_info(g, &info) >= 0)
    for (hsize_t i = 0; i < info.nlinks; ++i) {
      const ssize_t n = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
      std::string name(size_t(std::max<ssize_t>(n, 0)), '\0');
      H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size() + 1, H5P_DEFAULT);
      names.push_back(name);
    }
  H5Gclose(g);
  return names;
}

std::string ResultsReader::attribute(const std::string& object, const std::string& name) const {
  if (!exists(object) || H5Aexists_by_name(file_, object.c_str(), name.c_str(), H5P_DEFAULT) <= 0) return "";
  const hid_t a = H5Aopen_by_name(file_, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT);
  const hid_t t = H5Aget_type(a);
  std::string v;
  if (H5Tget_class(t) == H5T_STRING) {
    const size_t n = H5Tget_size(t);
    std::string b(n + 1, '\0');
    const hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, n + 1);
    H5Aread(a, mt, b.data());
    H5Tclose(mt);
    v = b.c_str();
  } else if (H5Tget_class(t) == H5T_INTEGER) {
    int64_t x = 0;
    H5Aread(a, H5T_NATIVE_INT64, &x);
    v = std::to_string(x);
  } else if (H5Tget_class(t) == H5T_FLOAT) {
    double x = 0;
    H5Aread(a, H5T_NATIVE_DOUBLE, &x);
    char b[64];
    std::snprintf(b, sizeof b, "%.17g", x);
    v = b;
  }
  H5Tclose(t);
  H5Aclose(a);
  return v;
}

Table ResultsReader::read_table(const std::string& group) const {
  const std::string path = group + "/table";
  if (!exists(path)) throw UsageError("results file '" + path_ + "' has no table " + path);
  const hid_t ds = checked(H5Dopen2(file_, path.c_str(), H5P_DEFAULT), "open table");
  const hid_t ft = checked(H5Dget_type(ds), "table type");
  const hid_t sp = checked(H5Dget_space(ds), "table space");
  const hssize_t n = H5Sget_simple_extent_npoints(sp);
  const int nm = H5Tget_nmembers(ft);
  const size_t row_bytes = H5Tget_size(ft);
  std::vector<unsigned char> buf(std::max<size_t>(row_bytes * size_t(std::max<hssize_t>(n, 0)), 1));
  if (n > 0) check(H5Dread(ds, ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), "read table");
  Table t;
  std::vector<size_t> off(size_t(std::max(nm, 0))), width(off.size());
  for (int i = 0; i < nm; ++i) {
    char* name = H5Tget_member_name(ft, unsigned(i));
    const std::string col = name;
    H5free_memory(name);
    const H5T_class_t cls = H5Tget_member_class(ft, unsigned(i));
    const hid_t mt = H5Tget_member_type(ft, unsigned(i));
    width[size_t(i)] = H5Tget_size(mt);
    H5Tclose(mt);
    off[size_t(i)] = H5Tget_member_offset(ft, unsigned(i));
    const ColumnKind kind = cls == H5T_FLOAT ? ColumnKind::real : cls == H5T_INTEGER ? ColumnKind::integer : ColumnKind::text;
    t.add_column(col, attribute(group + "/" + col, "units"), kind);
  }
  for (hssize_t r = 0; r < n; ++r) {
    std::vector<Table::Cell> row;
    for (int i = 0; i < nm; ++i) {
      const unsigned char* at = buf.data() + size_t(r) * row_bytes + off[size_t(i)];
      switch (t.columns()[size_t(i)].kind) {
        case ColumnKind::real: {
          double v;
          std::memcpy(&v, at, 8);
          row.emplace_back(v);
          break;
        }
        case ColumnKind::integer: {
          int64_t v;
          std::memcpy(&v, at, 8);
          row.emplace_back(v);
          break;
        }
        case ColumnKind::text:
          row.emplace_back(std::string(reinterpret_cast<const char*>(at), strnlen(reinterpret_cast<const char*>(at), width[size_t(i)])));
          break;
      }
    }
    t.append_row(std::move(row));
  }
  H5Sclose(sp);
  H5Tclose(ft);
  H5Dclose(ds);
  return t;
}

ResultsWriter::~ResultsWriter() {
  if (file_ >= 0) H5Fclose(hid_t(file_));
  if (!committed_) std::remove(tmp_.c_str());
}

void ResultsWriter::write_attribute(const std::string& group, const std::string& name, const std::string& value) {
  const hid_t g = open_or_create_group(file_, group);
  put_string_attr(g, name, value);
  H5Gclose(g);
}

void ResultsWriter::write_table(const std::string& group, const Table& t) {
  const hid_t g = open_or_create_group(file_, group);
  const auto& cols = t.columns();
  const auto& rows = t.rows();
  const hsize_t n = rows.size();
  // Compound row type: doubles, int64s and fixed-length strings.
  std::vector<size_t> offset(cols.size()), width(cols.size());
  size_t row_bytes = 0;
  for (size_t c = 0; c < cols.size(); ++c) {
    size_t w = 8;
    if (cols[c].kind == ColumnKind::text) {
      w = 1;
      for (const auto& r : rows) w = std::max(w, std::get<std::string>(r[c]).size() + 1);
    }
    offset[c] = row_bytes;
    width[c] = w;
    row_bytes += w;
  }
  const hid_t ct = checked(H5Tcreate(H5T_COMPOUND, std::max<size_t>(row_bytes, 1)), "compound");
  std::vector<hid_t> str_types;
  for (size_t c = 0; c < cols.size(); ++c) {
    hid_t ft = cols[c].kind == ColumnKind::real ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64;
    if (cols[c].kind == ColumnKind::text) {
      ft = H5Tcopy(H5T_C_S1);
      H5Tset_size(ft, width[c]);
      str_types.push_back(ft);
    }
    check(H5Tinsert(ct, cols[c].name.c_str(), offset[c], ft), "insert field");
  }
  std::vector<unsigned char> buf(std::max<size_t>(row_bytes * n, 1), 0);
  for (size_t r = 0; r < n; ++r)
    for (size_t c = 0; c < cols.size(); ++c) {
      unsigned char* at = buf.data() + r * row_bytes + offset[c];
      if (cols[c].kind == ColumnKind::real) {
        const double v = std::get<double>(rows[r][c]);
        std::memcpy(at, &v, 8);
      } else if (cols[c].kind == ColumnKind::integer) {
        const int64_t v = std::get<int64_t>(rows[r][c]);
        std::memcpy(at, &v, 8);
      } else {
        const std::string& s = std::get<std::string>(rows[r][c]);
        std::memcpy(at, s.data(), s.size());
      }
    }
  const hid_t sp = checked(H5Screate_simple(1, &n, nullptr), "space");
  const hid_t ds = checked(H5Dcreate2(g, "table", ct, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "dataset");
  if (n) check(H5Dwrite(ds, ct, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), "write table");
  std::string units;
  for (size_t c = 0; c < cols.size(); ++c) units += (c ? "," : "") + cols[c].name + "=" + cols[c].unit;
  put_string_attr(ds, "units", units);
  H5Dclose(ds);
  // One dataset per column, with its unit.
  for (size_t c = 0; c < cols.size(); ++c) {
    hid_t ft = cols[c].kind == ColumnKind::real ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64;
    std::vector<unsigned char> col(std::max<size_t>(width[c] * n, 1), 0);
    for (size_t r = 0; r < n; ++r) std::memcpy(col.data() + r * width[c], buf.data() + r * row_bytes + offset[c], width[c]);
    hid_t st = -1;
    if (cols[c].kind == ColumnKind::text) {
      st = H5Tcopy(H5T_C_S1);
      H5Tset_size(st, width[c]);
      ft = st;
    }
    const hid_t d = checked(H5Dcreate2(g, cols[c].name.c_str(), ft, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "column");
    if (n) check(H5Dwrite(d, ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, col.data()), "write column");
    put_string_attr(d, "units", cols[c].unit);
    H5Dclose(d);
    if (st >= 0) H5Tclose(st);
  }
  for (hid_t st : str_types) H5Tclose(st);
  H5Sclose(sp);
  H5Tclose(ct);
  H5Gclose(g);
}

void ResultsWriter::close_for_parallel() {
  if (file_ >= 0) check(H5Fclose(hid_t(file_)), "close");
  file_ = -1;
}

void append_pe_maps(MPI_Comm comm, const std::string& tmp_path, const std::string& group, int32_t region_w,
                    int32_t region_h, int32_t local_x, int32_t local_y, int32_t local_w, int32_t local_h,
                    const std::vector<PeMap>& maps) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const hid_t fapl = checked(H5Pcreate(H5P_FILE_ACCESS), "fapl");
  check(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL), "set MPI-IO");
  const hid_t file = H5Fopen(tmp_path.c_str(), H5F_ACC_RDWR, fapl);
  H5Pclose(fapl);
  if (file < 0) throw std::runtime_error("HDF5: cannot reopen '" + tmp_path + "' for parallel writes");
  const hid_t g = open_or_create_group(file, group);
  const hsize_t dims[2] = {hsize_t(region_h), hsize_t(region_w)};
  const hid_t fspace = checked(H5Screate_simple(2, dims, nullptr), "file space");
  const hsize_t start[2] = {hsize_t(local_y), hsize_t(local_x)}, count[2] = {hsize_t(local_h), hsize_t(local_w)};
  const hid_t mspace = checked(H5Screate_simple(2, count, nullptr), "memory space");
  const hid_t dxpl = checked(H5Pcreate(H5P_DATASET_XFER), "dxpl");
  check(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE), "collective transfer");
  for (const PeMap& m : maps) {
    // Creation and attributes are collective: every rank makes the same calls.
    const hid_t d = checked(H5Dcreate2(g, m.name.c_str(), H5T_NATIVE_UINT64, fspace, H5P_DEFAULT, H5P_DEFAULT,
                                       H5P_DEFAULT), "map dataset");
    put_string_attr(d, "units", m.unit);
    const hid_t sel = H5Scopy(fspace);
    if (local_w > 0 && local_h > 0) {
      check(H5Sselect_hyperslab(sel, H5S_SELECT_SET, start, nullptr, count, nullptr), "hyperslab");
      check(H5Dwrite(d, H5T_NATIVE_UINT64, mspace, sel, dxpl, m.values.data()), "write map");
    } else {
      H5Sselect_none(sel);
      const hid_t none = H5Scopy(mspace);
      H5Sselect_none(none);
      check(H5Dwrite(d, H5T_NATIVE_UINT64, none, sel, dxpl, nullptr), "write map");
      H5Sclose(none);
    }
    H5Sclose(sel);
    H5Dclose(d);
  }
  H5Pclose(dxpl);
  H5Sclose(mspace);
  H5Sclose(fspace);
  H5Gclose(g);
  check(H5Fclose(file), "close");
}

void ResultsWriter::commit() {
  if (committed_) return;
  if (file_ >= 0) check(H5Fclose(hid_t(file_)), "close");
  file_ = -1;
  // Checked again at the last moment: whatever appeared under the name meanwhile, if it is not a
  // regular file, it is not replaced.
  try {
    refuse_non_regular(path_, "output");
  } catch (const UsageError&) {
    std::remove(tmp_.c_str());
    committed_ = true;  // nothing left to remove
    throw;
  }
  std::error_code ec;
  std::filesystem::rename(tmp_, path_, ec);
  if (ec) throw UsageError("cannot rename '" + tmp_ + "' to '" + path_ + "': " + ec.message());
  committed_ = true;
  guard_.reset();
}

}  // namespace wm::io
