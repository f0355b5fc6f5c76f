// Frames on Boost.Asio sockets, and the deadline-bound connect every rendezvous client uses.
#include "comm/rendezvous_wire.hpp"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <thread>

namespace troupe::wire {

void put_u32(char* out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (24 - 8 * i)) & 0xFF);
}

std::uint32_t get_u32(const char* in) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}

std::string encode(char op, const std::string& key, const std::string& value) {
  std::string bytes(header_bytes, '\0');
  bytes[0] = op;
  put_u32(bytes.data() + 1, static_cast<std::uint32_t>(key.size()));
  put_u32(bytes.data() + 5, static_cast<std::uint32_t>(value.size()));
  bytes += key;
  bytes += value;
  return bytes;
}

std::string seconds_text(std::chrono::milliseconds ms) {
  return fmt::format("{:g} s", static_cast<double>(ms.count()) / 1000.0);
}

void FrameReader::read(tcp::socket& socket, Done done) {
  asio::async_read(
      socket, asio::buffer(header_),
      [this, &socket, done = std::move(done)](boost::system::error_code ec, std::size_t) mutable {
        if (ec) return done(ec, Frame{});
        const std::size_t key_len = get_u32(header_.data() + 1);
        body_.resize(key_len + get_u32(header_.data() + 5));
        asio::async_read(
            socket, asio::buffer(body_),
            [this, key_len, done = std::move(done)](boost::system::error_code ec, std::size_t) {
              if (ec) return done(ec, Frame{});
              done(ec, Frame{header_[0], body_.substr(0, key_len), body_.substr(key_len)});
            });
      });
}

void FrameWriter::send(tcp::socket& socket, std::string frame, Sent sent) {
  queue_.emplace_back(std::move(frame), std::move(sent));
  if (queue_.size() == 1) write_front(socket);
}

void FrameWriter::write_front(tcp::socket& socket) {
  // The deque keeps the front frame's bytes in place while later frames are queued behind it.
  asio::async_write(socket, asio::buffer(queue_.front().first),
                    [this, &socket, sent = std::move(queue_.front().second)](
                        boost::system::error_code ec, std::size_t) {
                      queue_.pop_front();
                      // Start the next write before `sent`, which may queue one more.
                      if (!queue_.empty()) write_front(socket);
                      sent(ec);
                    });
}

boost::system::error_code connect_until(asio::io_context& io, tcp::socket& socket,
                                        const std::string& host, std::uint16_t port,
                                        Clock::time_point deadline) {
  boost::system::error_code last;
  tcp::resolver resolver(io);
  while (true) {
    const auto endpoints = resolver.resolve(host, std::to_string(port), last);
    if (!last) {
      last = run_until(io, socket, deadline,
                       [&](auto handler) { asio::async_connect(socket, endpoints, handler); });
      if (!last) return last;
    }
    const auto now = Clock::now();
    if (now >= deadline) return last;
    std::this_thread::sleep_for(
        std::min<Clock::duration>(std::chrono::milliseconds(100), deadline - now));
  }
}

}  // namespace troupe::wire
