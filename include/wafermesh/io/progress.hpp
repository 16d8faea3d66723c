#pragma once
// Progress of a long job made of points: one line per finished point with its own wall time, the
// elapsed wall time and an estimate of the remaining time (mean wall time of the points run so
// far in this process times the points left), and a heartbeat line every `heartbeat_s` seconds
// while a point runs. Generic: knows nothing of what a point is. Call from one thread of one
// rank; the heartbeat runs on a thread of its own that only prints.
#include <chrono>
#include <condition_variable>
#include <iosfwd>
#include <mutex>
#include <string>
#include <thread>

namespace wm::io {

// "1:02:03" / "2:03" for a duration in seconds.
std::string format_duration(double seconds);

class Progress {
 public:
  // `total` points, of which `skipped` are already done (they are not run and not timed).
  // out == nullptr: silent.
  Progress(std::ostream* out, int total, int skipped, double heartbeat_s);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void begin(int index, const std::string& label);  // index: 1-based position among `total`
  // Prints "[index/total] label: status, point wall s | elapsed, ~remaining left" and returns the point's wall s.
  double end(const std::string& status);

 private:
  void heartbeat_loop();
  std::ostream* out_;
  int total_, skipped_, finished_ = 0, index_ = 0;
  double heartbeat_s_;
  std::string label_;
  std::chrono::steady_clock::time_point t0_, point_t0_;
  double run_s_ = 0;  // wall time of the points finished by this process
  std::mutex mu_;
  std::condition_variable cv_;
  bool running_ = false, stop_ = false;
  std::thread thread_;
};

}  // namespace wm::io
