// Results files never replace what is not a regular file, and leave no temporary file behind when
// the process is ended by a signal: check_output_path before any work, ResultsWriter and its
// commit(), io::RemoveOnSignal.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "wafermesh/io/remove_on_signal.hpp"
#include "wafermesh/io/results_file.hpp"
#include "wafermesh/util/error.hpp"

namespace fs = std::filesystem;
using wm::UsageError;

namespace {

std::string scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("wm_io_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

std::string check_error(const std::string& path) {
  try {
    wm::io::check_output_path(path);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

std::string writer_error(const std::string& path) {
  try {
    wm::io::ResultsWriter w(path, wm::io::Provenance{});
    w.commit();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

// Nothing but the listed names in dir.
std::string listing(const std::string& dir) {
  std::string s;
  for (const auto& e : fs::directory_iterator(dir)) s += e.path().filename().string() + " ";
  return s;
}

}  // namespace

TEST(OutputPath, NonRegularFilesAreRefusedAndLeftAlone) {
  const std::string d = scratch("nonregular");
  ASSERT_EQ(mkfifo((d + "/fifo.h5").c_str(), 0644), 0);
  fs::create_directory(d + "/dir.h5");
  std::ofstream(d + "/target.h5") << "mine";
  fs::create_symlink(d + "/target.h5", d + "/link.h5");
  const int sock = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string sock_path = d + "/sock.h5";
  ASSERT_LT(sock_path.size(), sizeof addr.sun_path);
  std::strcpy(addr.sun_path, sock_path.c_str());
  ASSERT_EQ(bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::pair<const char*, const char*> cases[] = {
      {"fifo.h5", "a FIFO"}, {"dir.h5", "a directory"}, {"link.h5", "a symbolic link"}, {"sock.h5", "a socket"}};
  for (const auto& [name, kind] : cases) {
    const std::string p = d + "/" + name;
    const std::string want =
        "output '" + p + "' is " + kind + ", not a regular file: nothing is written over it (give the path of a file)";
    EXPECT_EQ(check_error(p), want);
    EXPECT_EQ(writer_error(p), want);
  }
  EXPECT_EQ(check_error("/dev/null"), "output '/dev/null' is a character device, not a regular file: nothing is "
                                      "written over it (give the path of a file)");
  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(d + "/fifo.h5")));
  EXPECT_TRUE(fs::is_symlink(fs::symlink_status(d + "/link.h5")));
  EXPECT_TRUE(fs::is_socket(fs::symlink_status(d + "/sock.h5")));
  EXPECT_TRUE(fs::is_character_file(fs::symlink_status("/dev/null")));
  EXPECT_EQ(listing(d).size(), std::string("fifo.h5 dir.h5 target.h5 link.h5 sock.h5 ").size());  // no X.tmpPID
  close(sock);
  fs::remove_all(d);
}

TEST(OutputPath, DirectoriesThatTakeNoFileAndMissingOnesCreateNothing) {
  const std::string d = scratch("dirs");
  std::ofstream(d + "/file.txt") << "x";
  EXPECT_EQ(check_error(d + "/file.txt/out.h5"), "output '" + d + "/file.txt/out.h5': Not a directory");
  // /proc takes no file, not even from root: the probe says so (not "another sweep", not later).
  EXPECT_EQ(check_error("/proc/wm_test_out.h5").rfind("output '/proc/wm_test_out.h5': cannot create a file in '/proc': ", 0),
            0u)
      << check_error("/proc/wm_test_out.h5");
  // A directory still to be made: its nearest existing ancestor is probed, nothing is created.
  EXPECT_EQ(check_error(d + "/a/b/out.h5"), "");
  EXPECT_EQ(check_error(d + "/out.h5"), "");
  // The same with relative paths, from inside d ("results/x.h5" is the commands' default).
  const fs::path cwd = fs::current_path();
  fs::current_path(d);
  EXPECT_EQ(check_error("results/demo.h5"), "");
  EXPECT_EQ(check_error("a/b/out.h5"), "");
  EXPECT_EQ(check_error("out.h5"), "");
  fs::current_path(cwd);
  EXPECT_EQ(listing(d), "file.txt ");
  fs::remove_all(d);
}

// Something that is not a regular file appears under the name while the file is written: commit()
// leaves it in place and removes its temporary copy.
TEST(ResultsWriter, CommitReplacesNothingButARegularFile) {
  const std::string d = scratch("commit");
  const std::string p = d + "/out.h5";
  {
    wm::io::ResultsWriter w(p, wm::io::Provenance{});
    ASSERT_EQ(mkfifo(p.c_str(), 0644), 0);
    try {
      w.commit();
      ADD_FAILURE() << "commit renamed its file over a FIFO";
    } catch (const UsageError& e) {
      EXPECT_EQ(std::string(e.what()), "output '" + p + "' is a FIFO, not a regular file: nothing is written over it "
                                       "(give the path of a file)");
    }
  }
  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(p)));
  EXPECT_EQ(listing(d), "out.h5 ");
  fs::remove(p);
  std::ofstream(p) << "old results";
  {
    wm::io::ResultsWriter w(p, wm::io::Provenance{});
    w.write_attribute("/", "answer", int64_t(42));
    w.commit();
  }
  EXPECT_EQ(wm::io::ResultsReader(p).attribute("/", "answer"), "42");  // a regular file is replaced
  fs::remove_all(d);
}

// SIGTERM (mpirun ending a job, a SLURM time limit) while the file is written: the temporary
// copy goes with the process, which still dies of the signal.
TEST(ResultsWriter, TemporaryFileIsRemovedWhenASignalEndsTheProcess) {
  const std::string d = scratch("signal");
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      wm::io::ResultsWriter w(d + "/out.h5", wm::io::Provenance{});
      if (!fs::exists(w.temporary_path())) _exit(3);
      raise(sig);
      _exit(4);  // not reached
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == sig) << "status " << status;
    EXPECT_EQ(listing(d), "") << "signal " << sig;
  }
  fs::remove_all(d);
}

// A signal the process ignores stays ignored; an unregistered path is not removed.
TEST(RemoveOnSignal, RegistersAndUnregisters) {
  const std::string d = scratch("registry");
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    signal(SIGHUP, SIG_IGN);
    std::ofstream(d + "/kept") << "k";
    std::ofstream(d + "/removed") << "r";
    { wm::io::RemoveOnSignal gone(d + "/kept"); }
    wm::io::RemoveOnSignal guard(d + "/removed");
    raise(SIGHUP);  // ignored: still alive
    raise(SIGTERM);
    _exit(4);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << "status " << status;
  EXPECT_EQ(listing(d), "kept ");
  fs::remove_all(d);
}
