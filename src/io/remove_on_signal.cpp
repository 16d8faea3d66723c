#include "wafermesh/io/remove_on_signal.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <stdexcept>

namespace wm::io {

namespace {

constexpr int kSlots = 32;
constexpr size_t kPathBytes = 4096;
char g_paths[kSlots][kPathBytes];
volatile sig_atomic_t g_used[kSlots];  // 1 once g_paths[i] is complete
constexpr int kSignals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};

extern "C" void remove_and_die(int sig) {
  for (int i = 0; i < kSlots; ++i)
    if (g_used[i]) unlink(g_paths[i]);
  signal(sig, SIG_DFL);
  raise(sig);
}

void install_once() {
  static bool installed = false;
  if (installed) return;
  installed = true;
  for (int sig : kSignals) {
    struct sigaction old {};
    if (sigaction(sig, nullptr, &old) != 0) continue;
    if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL) continue;  // ignored, or someone's handler
    struct sigaction sa {};
    sa.sa_handler = remove_and_die;
    sigemptyset(&sa.sa_mask);
    for (int other : kSignals) sigaddset(&sa.sa_mask, other);  // one handler run at a time
    sigaction(sig, &sa, nullptr);
  }
}

}  // namespace

RemoveOnSignal::RemoveOnSignal(const std::string& path) {
  if (path.size() >= kPathBytes) throw std::length_error("RemoveOnSignal: path longer than 4095 bytes: " + path);
  for (int i = 0; i < kSlots; ++i)
    if (!g_used[i]) {
      std::memcpy(g_paths[i], path.c_str(), path.size() + 1);
      std::atomic_signal_fence(std::memory_order_seq_cst);  // the path is complete before it is used
      g_used[i] = 1;
      slot_ = i;
      install_once();
      return;
    }
  throw std::length_error("RemoveOnSignal: more than 32 paths registered");
}

RemoveOnSignal::~RemoveOnSignal() {
  if (slot_ >= 0) g_used[slot_] = 0;
}

}  // namespace wm::io
