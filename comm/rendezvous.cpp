// The rendezvous store on Boost.Asio: an asynchronous server on one thread (so the store needs no
// lock; the liveness board locks only for wait_for_leaves), and a synchronous client whose every
// step runs under a deadline.
#include "comm/rendezvous.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio.hpp>
#include <functional>
#include <limits>
#include <map>
#include <stdexcept>
#include <thread>
#include <vector>

#include "comm/liveness_board.hpp"
#include "comm/rendezvous_wire.hpp"

namespace troupe {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr std::size_t clock_bytes = 8;

std::string encode_i64(std::int64_t value) {
  const auto v = static_cast<std::uint64_t>(value);
  std::string out(clock_bytes, '\0');
  for (std::size_t i = 0; i < clock_bytes; ++i)
    out[i] = static_cast<char>((v >> (56 - 8 * i)) & 0xFF);
  return out;
}

std::int64_t decode_i64(const std::string& in) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < clock_bytes; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return static_cast<std::int64_t>(v);
}

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// What a request is, for messages: "set 'KEY'", "get 'KEY'", "clock request".
std::string request_text(char op, const std::string& key) {
  if (op == 'c') return "clock request";
  return std::string(op == 's' ? "set" : "get") + " '" + key + "'";
}

}  // namespace

// ---- server ----

struct RendezvousServer::Impl {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::map<std::string, std::string> store;
  // Answers owed to clients blocked in get(), per key.
  std::map<std::string, std::vector<std::function<void(const std::string&)>>> waiting;
  // After io: it holds watch connections, which must close while their io_context still exists.
  LivenessBoard board;
  std::thread thread;

  void accept();
};

namespace {

// One client connection: reads a request, answers it (at once, or when a get's key is set), and
// reads the next. A watch request hands the connection over to the liveness board.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::map<std::string, std::string>& store,
          std::map<std::string, std::vector<std::function<void(const std::string&)>>>& waiting,
          LivenessBoard& board)
      : socket_(std::move(socket)), store_(store), waiting_(waiting), board_(board) {}

  void read_request() {
    reader_.read(socket_,
                 [self = shared_from_this()](boost::system::error_code ec, wire::Frame request) {
                   if (!ec) self->serve(std::move(request));
                 });
  }

 private:
  void serve(wire::Frame request) {
    if (request.op == 's') {
      auto parked = waiting_.find(request.key);
      if (parked != waiting_.end()) {
        for (auto& answer : parked->second) answer(request.value);
        waiting_.erase(parked);
      }
      store_[request.key] = std::move(request.value);
      answer("");
    } else if (request.op == 'g') {
      auto found = store_.find(request.key);
      if (found != store_.end()) {
        answer(found->second);
      } else {
        waiting_[request.key].push_back(
            [self = shared_from_this()](const std::string& value) { self->answer(value); });
      }
    } else if (request.op == 'w') {
      board_.watch(std::move(socket_), request);
    } else if (request.op == 'c') {
      answer(encode_i64(steady_ns()));
    } else {
      spdlog::warn("rendezvous: unknown request op {:d}, closing the connection", request.op);
      socket_.close();
    }
  }

  // One answer in flight per session: a client sends its next request only after this one.
  void answer(const std::string& value) {
    reply_.assign(4, '\0');
    wire::put_u32(reply_.data(), static_cast<std::uint32_t>(value.size()));
    reply_ += value;
    asio::async_write(socket_, asio::buffer(reply_),
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        if (!ec) self->read_request();
                      });
  }

  tcp::socket socket_;
  std::map<std::string, std::string>& store_;
  std::map<std::string, std::vector<std::function<void(const std::string&)>>>& waiting_;
  LivenessBoard& board_;
  wire::FrameReader reader_;
  std::string reply_;
};

}  // namespace

void RendezvousServer::Impl::accept() {
  acceptor.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec) return;  // the acceptor was closed: the server is shutting down
    std::make_shared<Session>(std::move(socket), store, waiting, board)->read_request();
    accept();
  });
}

RendezvousServer::RendezvousServer(const std::string& host, std::uint16_t port)
    : impl_(std::make_unique<Impl>()) {
  try {
    tcp::resolver resolver(impl_->io);
    const tcp::endpoint endpoint = *resolver.resolve(host, std::to_string(port)).begin();
    impl_->acceptor.open(endpoint.protocol());
    impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
    impl_->acceptor.bind(endpoint);
    impl_->acceptor.listen();
  } catch (const boost::system::system_error& e) {
    throw std::runtime_error("rendezvous: cannot listen on " + host + ":" + std::to_string(port) +
                             " (" + e.code().message() + ")");
  }
  impl_->accept();
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
  spdlog::debug("rendezvous: serving on {}:{}", host, this->port());
}

RendezvousServer::~RendezvousServer() {
  impl_->io.stop();
  impl_->thread.join();
}

std::uint16_t RendezvousServer::port() const {
  return impl_->acceptor.local_endpoint().port();
}

std::vector<int> RendezvousServer::wait_for_leaves(int world, std::chrono::milliseconds timeout) {
  return impl_->board.wait_for_leaves(world, timeout);
}

// ---- client ----

struct RendezvousClient::Impl {
  asio::io_context io;
  tcp::socket socket{io};
};

RendezvousClient::RendezvousClient(std::string host, std::uint16_t port,
                                   std::chrono::milliseconds timeout)
    : host_(std::move(host)), port_(port), timeout_(timeout), impl_(std::make_unique<Impl>()) {
  const auto last =
      wire::connect_until(impl_->io, impl_->socket, host_, port_, wire::Clock::now() + timeout_);
  if (!last) return;
  throw std::runtime_error("rendezvous: cannot reach the master at " + address() + " within " +
                           wire::seconds_text(timeout_) + " (" + last.message() +
                           "); check that rank 0 is running and MASTER_ADDR/MASTER_PORT");
}

RendezvousClient::~RendezvousClient() = default;

std::string RendezvousClient::address() const {
  return host_ + ":" + std::to_string(port_);
}

void RendezvousClient::set(const std::string& key, const std::string& value) {
  request('s', key, value);
}

std::string RendezvousClient::get(const std::string& key) {
  return request('g', key, "");
}

ClockOffset RendezvousClient::measure_clock_offset(int samples) {
  if (samples < 1)
    throw std::invalid_argument("rendezvous: measure_clock_offset needs samples >= 1, got " +
                                std::to_string(samples));
  ClockOffset best{0, std::numeric_limits<double>::infinity()};
  for (int i = 0; i < samples; ++i) {
    const std::int64_t sent = steady_ns();
    const std::string reply = request('c', "", "");
    const std::int64_t received = steady_ns();
    if (reply.size() != clock_bytes)
      throw std::runtime_error("rendezvous: the master at " + address() + " answered a clock " +
                               "request with " + std::to_string(reply.size()) + " bytes, not " +
                               std::to_string(clock_bytes));
    // In integer nanoseconds, so that the clocks' large epochs cost no precision.
    const double rtt_us = static_cast<double>(received - sent) / 1000.0;
    if (rtt_us < best.rtt_us) {
      const std::int64_t midpoint = sent + (received - sent) / 2;
      best = ClockOffset{static_cast<double>(decode_i64(reply) - midpoint) / 1000.0, rtt_us};
    }
  }
  return best;
}

std::string RendezvousClient::request(char op, const std::string& key, const std::string& value) {
  const std::string what = request_text(op, key);
  if (!impl_->socket.is_open()) {
    throw std::runtime_error("rendezvous: " + what + ": the connection to " + address() +
                             " was lost earlier");
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  const std::string message = wire::encode(op, key, value);
  std::array<char, 4> length{};
  std::string reply;
  auto ec = wire::run_until(impl_->io, impl_->socket, deadline, [&](auto handler) {
    asio::async_write(impl_->socket, asio::buffer(message), handler);
  });
  if (!ec) {
    ec = wire::run_until(impl_->io, impl_->socket, deadline, [&](auto handler) {
      asio::async_read(impl_->socket, asio::buffer(length), handler);
    });
  }
  if (!ec) {
    reply.resize(wire::get_u32(length.data()));
    ec = wire::run_until(impl_->io, impl_->socket, deadline, [&](auto handler) {
      asio::async_read(impl_->socket, asio::buffer(reply), handler);
    });
  }
  if (ec == asio::error::timed_out) {
    throw std::runtime_error("rendezvous: " + what + " at " + address() + " timed out after " +
                             wire::seconds_text(timeout_) +
                             (op == 'g' ? " (no rank set it: did a peer fail to start?)" : ""));
  }
  if (ec) {
    impl_->socket.close();
    throw std::runtime_error("rendezvous: " + what + " at " + address() + " failed (" +
                             ec.message() + ")");
  }
  return reply;
}

}  // namespace troupe
