// PeerWatch on Boost.Asio: registration runs on the caller's thread under the connect deadline, so
// the constructor either returns registered or throws; then one thread of its own runs the
// heartbeat, the read loop and the master's silence timer, so they need no lock.
#include "comm/peer_watch.hpp"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <set>
#include <stdexcept>
#include <thread>

#include "comm/rendezvous_wire.hpp"
#include "comm/silence_timer.hpp"

namespace troupe {

namespace asio = boost::asio;
using wire::tcp;

struct PeerWatch::Impl {
  Impl(std::string host_, std::uint16_t port_, int rank_, LostCallback on_lost_,
       PeerWatchOptions options_)
      : host(std::move(host_)),
        port(port_),
        rank(rank_),
        on_lost(std::move(on_lost_)),
        options(options_),
        silence(io.get_executor(), options.timeout) {}

  std::string address() const { return host + ":" + std::to_string(port); }

  void register_rank();
  void run();

  // On the watch's thread:
  void beat_next();
  void read_next();
  void on_frame(const wire::Frame& frame);
  void master_gone(const std::string& how);
  void report(int lost_rank, const std::string& reason);
  void start_leave();
  void close();

  std::string host;
  std::uint16_t port;
  int rank;
  LostCallback on_lost;
  PeerWatchOptions options;
  asio::io_context io;
  tcp::socket socket{io};
  asio::steady_timer beat{io};
  SilenceTimer silence;  // the master's
  wire::FrameReader reader;
  wire::FrameWriter writer;
  std::set<int> reported;
  bool leaving = false;  // a leave was sent: wait for its acknowledgement, report nothing more
  bool closed = false;
  std::thread thread;
};

void PeerWatch::Impl::register_rank() {
  const auto deadline = wire::Clock::now() + options.connect_timeout;
  auto ec = wire::connect_until(io, socket, host, port, deadline);
  const std::string request =
      wire::encode('w', std::to_string(rank), std::to_string(options.timeout.count()));
  if (!ec) {
    ec = wire::run_until(io, socket, deadline, [&](auto handler) {
      asio::async_write(socket, asio::buffer(request), handler);
    });
  }
  wire::Frame answer;
  if (!ec) {
    ec = wire::run_until(io, socket, deadline, [&](auto handler) {
      reader.read(socket,
                  [&answer, handler](boost::system::error_code read_ec, wire::Frame frame) mutable {
                    answer = std::move(frame);
                    handler(read_ec);
                  });
    });
  }
  if (ec) {
    throw std::runtime_error(fmt::format(
        "peer watch: rank {} cannot register with the rendezvous master at {} within {} ({}); "
        "check that rank 0 is running and MASTER_ADDR/MASTER_PORT",
        rank, address(), wire::seconds_text(options.connect_timeout), ec.message()));
  }
  if (answer.op == 'e') {
    throw std::runtime_error(
        fmt::format("peer watch: the rendezvous master at {} refused rank {}: {}", address(), rank,
                    answer.value));
  }
  if (answer.op != 'a') {
    throw std::runtime_error(fmt::format(
        "peer watch: rank {} got an unexpected answer (op {:d}) from {}: is it a troupe "
        "rendezvous server?",
        rank, answer.op, address()));
  }
  spdlog::debug("peer watch: rank {} registered with {} (heartbeat every {}, timeout {})", rank,
                address(), wire::seconds_text(options.interval),
                wire::seconds_text(options.timeout));
}

void PeerWatch::Impl::run() {
  io.restart();
  read_next();
  beat_next();
  silence.start([this] {
    master_gone("no answer to heartbeats for " + wire::seconds_text(options.timeout));
  });
  io.run();  // until close(): then nothing is left to wait for
}

void PeerWatch::Impl::beat_next() {
  // A failed write needs no handling of its own: the read loop sees the broken connection.
  writer.send(socket, wire::encode('h'), [](boost::system::error_code) {});
  beat.expires_after(options.interval);
  beat.async_wait([this](boost::system::error_code ec) {
    if (!ec && !leaving && !closed) beat_next();
  });
}

void PeerWatch::Impl::read_next() {
  reader.read(socket, [this](boost::system::error_code ec, wire::Frame frame) {
    if (ec) {
      if (!closed) master_gone("connection closed: " + ec.message());
      return;
    }
    on_frame(frame);
  });
}

void PeerWatch::Impl::on_frame(const wire::Frame& frame) {
  silence.heard();
  if (frame.op == 'd') {
    int lost_rank = -1;
    const char* end = frame.key.data() + frame.key.size();
    const auto parsed = std::from_chars(frame.key.data(), end, lost_rank);
    if (parsed.ec == std::errc() && parsed.ptr == end) {
      report(lost_rank, frame.value);
    } else {
      spdlog::warn("peer watch (rank {}): a loss report from {} names no rank ('{}'): {}", rank,
                   address(), frame.key, frame.value);
    }
  } else if (frame.op == 'l' && leaving) {
    close();
    return;
  } else if (frame.op != 'h') {
    spdlog::warn("peer watch (rank {}): ignoring an unknown message (op {:d}) from {}", rank,
                 frame.op, address());
  }
  read_next();
}

void PeerWatch::Impl::master_gone(const std::string& how) {
  if (!leaving) {
    report(0, fmt::format("rank 0 lost: the rendezvous master at {} is gone ({})", address(), how));
  }
  close();
}

void PeerWatch::Impl::report(int lost_rank, const std::string& reason) {
  if (!reported.insert(lost_rank).second) return;
  spdlog::warn("peer watch (rank {}): {}", rank, reason);
  try {
    on_lost(lost_rank, reason);
  } catch (const std::exception& e) {
    spdlog::error("peer watch (rank {}): the on_lost callback for rank {} threw: {}", rank,
                  lost_rank, e.what());
  }
}

void PeerWatch::Impl::start_leave() {
  if (closed || leaving) return;
  leaving = true;
  beat.cancel();
  // The acknowledgement closes the connection; the silence timer bounds the wait for it.
  writer.send(socket, wire::encode('l'), [](boost::system::error_code) {});
}

void PeerWatch::Impl::close() {
  closed = true;
  beat.cancel();
  silence.stop();
  boost::system::error_code ignored;
  socket.close(ignored);
}

PeerWatch::PeerWatch(std::string host, std::uint16_t port, int rank, LostCallback on_lost,
                     PeerWatchOptions options) {
  if (rank < 0) {
    throw std::invalid_argument(fmt::format("peer watch: rank must be >= 0, got {}", rank));
  }
  if (!on_lost) throw std::invalid_argument("peer watch: on_lost must be a callable, got none");
  if (options.interval.count() <= 0 || options.timeout <= options.interval) {
    throw std::invalid_argument(fmt::format(
        "peer watch: the heartbeat interval ({}) must be > 0 and below the timeout ({})",
        wire::seconds_text(options.interval), wire::seconds_text(options.timeout)));
  }
  impl_ = std::make_unique<Impl>(std::move(host), port, rank, std::move(on_lost), options);
  impl_->register_rank();
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

PeerWatch::~PeerWatch() {
  leave();
}

void PeerWatch::leave() {
  if (!impl_->thread.joinable()) return;
  if (impl_->thread.get_id() == std::this_thread::get_id()) {
    throw std::logic_error(
        "PeerWatch::leave: called from the on_lost callback, which runs on the watch's own thread "
        "(leave from another thread)");
  }
  asio::post(impl_->io, [impl = impl_.get()] { impl->start_leave(); });
  impl_->thread.join();
}

std::string PeerWatch::address() const {
  return impl_->address();
}

}  // namespace troupe
