#pragma once
// Files that must not outlive an interrupted process: a results file's temporary copy, a sweep's
// lock. While a RemoveOnSignal object lives, its path is unlinked if the process is ended by
// SIGTERM (mpirun passing on a kill or Ctrl-C, a SLURM time limit, scancel), SIGINT, SIGHUP or
// SIGQUIT; the signal then takes its default action (the process dies of it, as it would have).
// SIGKILL cannot be caught: a process killed by it leaves its files behind (a temporary copy
// `X.tmpPID` is never mistaken for a results file; a stale sweep lock is taken over by the next
// sweep on the same host).
//
// The handler only calls unlink(), signal() and raise() (async-signal-safe). Handlers are
// installed for signals whose disposition is the default one, the first time a path is
// registered; a signal the process ignores stays ignored. Register from one thread.
#include <string>

namespace wm::io {

class RemoveOnSignal {
 public:
  // Registers `path` (up to 32 paths of up to 4095 bytes at once; more or longer are a
  // std::length_error, as a fixed table is all a signal handler may read).
  explicit RemoveOnSignal(const std::string& path);
  ~RemoveOnSignal();  // unregisters (does not remove the file)
  RemoveOnSignal(const RemoveOnSignal&) = delete;
  RemoveOnSignal& operator=(const RemoveOnSignal&) = delete;

 private:
  int slot_ = -1;
};

}  // namespace wm::io
