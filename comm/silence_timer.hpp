// The peer watch's clock (internal to comm/): calls a handler once nothing has been heard on a
// connection for `timeout`. Both ends use it: the server to declare a silent rank lost, a rank to
// declare a silent master lost. Hearing something only moves the deadline; the one pending wait
// re-arms itself when it fires early, so a heartbeat costs no timer cancellation.
#pragma once

// Before Asio: Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio.hpp>
#include <chrono>
#include <functional>

namespace troupe {

class SilenceTimer {
 public:
  using Clock = std::chrono::steady_clock;

  SilenceTimer(const boost::asio::any_io_executor& executor, std::chrono::milliseconds timeout)
      : timer_(executor), timeout_(timeout) {}

  std::chrono::milliseconds timeout() const { return timeout_; }

  // Starts the deadline at now + timeout; `on_silence` runs on the executor when it passes (what
  // it captures keeps the owner, and so this timer, alive while it waits).
  void start(std::function<void()> on_silence) {
    heard();
    wait(std::move(on_silence));
  }
  void heard() { last_heard_ = Clock::now(); }
  // After stop(), on_silence never runs (a wait that already fired is ignored too).
  void stop() {
    stopped_ = true;
    timer_.cancel();
  }

 private:
  void wait(std::function<void()> on_silence) {
    timer_.expires_at(last_heard_ + timeout_);
    timer_.async_wait([this, on_silence = std::move(on_silence)](boost::system::error_code ec) {
      if (ec || stopped_) return;
      if (Clock::now() >= last_heard_ + timeout_) {
        on_silence();
      } else {
        wait(on_silence);
      }
    });
  }

  boost::asio::steady_timer timer_;
  std::chrono::milliseconds timeout_;
  Clock::time_point last_heard_{};
  bool stopped_ = false;
};

}  // namespace troupe
