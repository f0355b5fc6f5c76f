// SIGINT / SIGTERM → a stop request (see stop_signals.hpp).
#include "tools/stop_signals.hpp"

#include <atomic>
#include <csignal>

namespace troupe {
namespace {

std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free store");

extern "C" void remember_stop_request(int signal) {
  int none = 0;
  g_stop_signal.compare_exchange_strong(none, signal);
}

}  // namespace

void install_stop_signal_handlers() {
  g_stop_signal.store(0);
  struct sigaction action {};
  action.sa_handler = remember_stop_request;
  action.sa_flags = SA_RESTART | SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

int stop_signal() {
  return g_stop_signal.load();
}

}  // namespace troupe
