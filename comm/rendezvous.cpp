// The rendezvous store on Boost.Asio: an asynchronous server on one thread (so the store needs no
// lock), and a synchronous client whose every step runs under a deadline.
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

namespace troupe {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr std::size_t header_bytes = 9;  // op, key length, value length

void put_u32(char* out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (24 - 8 * i)) & 0xFF);
}

std::uint32_t get_u32(const char* in) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}

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

std::string seconds_text(std::chrono::milliseconds ms) {
  return fmt::format("{:g} s", static_cast<double>(ms.count()) / 1000.0);
}

}  // namespace

// ---- server ----

struct RendezvousServer::Impl {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::map<std::string, std::string> store;
  // Answers owed to clients blocked in get(), per key.
  std::map<std::string, std::vector<std::function<void(const std::string&)>>> waiting;
  std::thread thread;

  void accept();
};

namespace {

// One client connection: reads a request, answers it (at once, or when a get's key is set), and
// reads the next.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::map<std::string, std::string>& store,
          std::map<std::string, std::vector<std::function<void(const std::string&)>>>& waiting)
      : socket_(std::move(socket)), store_(store), waiting_(waiting) {}

  void read_request() {
    asio::async_read(socket_, asio::buffer(header_),
                     [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                       if (!ec) self->read_body();
                     });
  }

 private:
  void read_body() {
    const std::size_t key_len = get_u32(header_.data() + 1);
    const std::size_t value_len = get_u32(header_.data() + 5);
    body_.resize(key_len + value_len);
    asio::async_read(
        socket_, asio::buffer(body_),
        [self = shared_from_this(), key_len](boost::system::error_code ec, std::size_t) {
          if (!ec) self->serve(key_len);
        });
  }

  void serve(std::size_t key_len) {
    std::string key = body_.substr(0, key_len);
    if (header_[0] == 's') {
      std::string value = body_.substr(key_len);
      auto parked = waiting_.find(key);
      if (parked != waiting_.end()) {
        for (auto& answer : parked->second) answer(value);
        waiting_.erase(parked);
      }
      store_[key] = std::move(value);
      answer("");
    } else if (header_[0] == 'g') {
      auto found = store_.find(key);
      if (found != store_.end()) {
        answer(found->second);
      } else {
        waiting_[key].push_back(
            [self = shared_from_this()](const std::string& value) { self->answer(value); });
      }
    } else if (header_[0] == 'c') {
      answer(encode_i64(steady_ns()));
    } else {
      spdlog::warn("rendezvous: unknown request op {:d}, closing the connection", header_[0]);
      socket_.close();
    }
  }

  // One answer in flight per session: a client sends its next request only after this one.
  void answer(const std::string& value) {
    reply_.assign(4, '\0');
    put_u32(reply_.data(), static_cast<std::uint32_t>(value.size()));
    reply_ += value;
    asio::async_write(socket_, asio::buffer(reply_),
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        if (!ec) self->read_request();
                      });
  }

  tcp::socket socket_;
  std::map<std::string, std::string>& store_;
  std::map<std::string, std::vector<std::function<void(const std::string&)>>>& waiting_;
  std::array<char, header_bytes> header_{};
  std::string body_;
  std::string reply_;
};

}  // namespace

void RendezvousServer::Impl::accept() {
  acceptor.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec) return;  // the acceptor was closed: the server is shutting down
    std::make_shared<Session>(std::move(socket), store, waiting)->read_request();
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

// ---- client ----

struct RendezvousClient::Impl {
  asio::io_context io;
  tcp::socket socket{io};

  // Starts an asynchronous step and runs it until it completes or `deadline` passes; returns its
  // error (timed_out when the deadline passed).
  template <class Start>
  boost::system::error_code run_until(std::chrono::steady_clock::time_point deadline, Start start) {
    boost::system::error_code result = asio::error::would_block;
    start([&result](boost::system::error_code ec, auto&&...) { result = ec; });
    io.restart();
    io.run_until(deadline);
    if (result == asio::error::would_block) {
      socket.close();  // cancels the step; its handler runs with operation_aborted
      io.restart();
      io.run();
      return asio::error::timed_out;
    }
    return result;
  }
};

RendezvousClient::RendezvousClient(std::string host, std::uint16_t port,
                                   std::chrono::milliseconds timeout)
    : host_(std::move(host)), port_(port), timeout_(timeout), impl_(std::make_unique<Impl>()) {
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  boost::system::error_code last;
  tcp::resolver resolver(impl_->io);
  while (true) {
    const auto endpoints = resolver.resolve(host_, std::to_string(port_), last);
    if (!last) {
      last = impl_->run_until(
          deadline, [&](auto handler) { asio::async_connect(impl_->socket, endpoints, handler); });
      if (!last) return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    // The master may not be listening yet: retry at a short interval until the deadline.
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
        std::chrono::milliseconds(100), deadline - now));
  }
  throw std::runtime_error("rendezvous: cannot reach the master at " + address() + " within " +
                           seconds_text(timeout_) + " (" + last.message() +
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
  std::string message(header_bytes, '\0');
  message[0] = op;
  put_u32(message.data() + 1, static_cast<std::uint32_t>(key.size()));
  put_u32(message.data() + 5, static_cast<std::uint32_t>(value.size()));
  message += key;
  message += value;
  std::array<char, 4> length{};
  std::string reply;
  auto ec = impl_->run_until(deadline, [&](auto handler) {
    asio::async_write(impl_->socket, asio::buffer(message), handler);
  });
  if (!ec) {
    ec = impl_->run_until(deadline, [&](auto handler) {
      asio::async_read(impl_->socket, asio::buffer(length), handler);
    });
  }
  if (!ec) {
    reply.resize(get_u32(length.data()));
    ec = impl_->run_until(deadline, [&](auto handler) {
      asio::async_read(impl_->socket, asio::buffer(reply), handler);
    });
  }
  if (ec == asio::error::timed_out) {
    throw std::runtime_error("rendezvous: " + what + " at " + address() + " timed out after " +
                             seconds_text(timeout_) +
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
