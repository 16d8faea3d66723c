#include "wafermesh/io/progress.hpp"

#include <cmath>
#include <cstdio>
#include <ostream>

namespace wm::io {

std::string format_duration(double seconds) {
  if (!(seconds >= 0)) seconds = 0;
  const long s = long(std::lround(seconds));
  char b[64];
  if (s >= 3600)
    std::snprintf(b, sizeof b, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else
    std::snprintf(b, sizeof b, "%ld:%02ld", s / 60, s % 60);
  return b;
}

Progress::Progress(std::ostream* out, int total, int skipped, double heartbeat_s)
    : out_(out), total_(total), skipped_(skipped), heartbeat_s_(heartbeat_s), t0_(std::chrono::steady_clock::now()) {
  if (out_ && heartbeat_s_ > 0) thread_ = std::thread([this] { heartbeat_loop(); });
}

Progress::~Progress() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Progress::begin(int index, const std::string& label) {
  std::lock_guard<std::mutex> l(mu_);
  index_ = index;
  label_ = label;
  point_t0_ = std::chrono::steady_clock::now();
  running_ = true;
  cv_.notify_all();
}

double Progress::end(const std::string& status) {
  std::lock_guard<std::mutex> l(mu_);
  running_ = false;
  const auto now = std::chrono::steady_clock::now();
  const double point_s = std::chrono::duration<double>(now - point_t0_).count();
  const double elapsed = std::chrono::duration<double>(now - t0_).count();
  run_s_ += point_s;
  ++finished_;
  const int left = total_ - skipped_ - finished_;
  const double remaining = finished_ > 0 ? run_s_ / finished_ * left : 0;
  if (out_) {
    char b[96];
    std::snprintf(b, sizeof b, "%.2f s", point_s);
    *out_ << "[" << index_ << "/" << total_ << "] " << label_ << ": " << status << ", " << b << " | elapsed "
          << format_duration(elapsed) << ", ~" << format_duration(remaining) << " left (" << left << " point"
          << (left == 1 ? "" : "s") << ")" << std::endl;
  }
  cv_.notify_all();
  return point_s;
}

void Progress::heartbeat_loop() {
  std::unique_lock<std::mutex> l(mu_);
  const auto period = std::chrono::duration<double>(heartbeat_s_);
  while (!stop_) {
    if (!running_) {
      cv_.wait(l, [&] { return stop_ || running_; });
      continue;
    }
    const int index = index_;
    // Wake at the next multiple of the period since the point began (or earlier on end/stop).
    const auto since = std::chrono::steady_clock::now() - point_t0_;
    const long beats = long(std::chrono::duration<double>(since) / period) + 1;
    const auto wake = point_t0_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(period * double(beats));
    if (cv_.wait_until(l, wake, [&] { return stop_ || !running_ || index_ != index; })) continue;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - point_t0_).count();
    *out_ << "  ... [" << index_ << "/" << total_ << "] " << label_ << ": still running, " << format_duration(s)
          << std::endl;
  }
}

}  // namespace wm::io
